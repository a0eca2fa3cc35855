/**
 * The cluster example's lookup table: one segment of Uint32 words, [version, keys, value of key
 * 0, value of key 1, ...]. Every value is a hash of (version, key), so an answer that mixes up
 * versions or keys, or comes from memory that no longer holds a table, is caught.
 */

/** A decoded table: what a worker caches, and answers from. */
export interface Table {
  version: number;
  values: Map<number, number>;
}

/** The segment size of a table of `keys` keys. */
export function tableBytes(keys: number): number {
  return (2 + keys) * 4;
}

/** The value of `key` in table `version`: a hash of both. */
export function valueFor(version: number, key: number): number {
  return (Math.imul(key + 1, 0x9e3779b1) ^ Math.imul(version, 0x85ebca6b)) >>> 0;
}

/** Writes table `version` of `keys` keys into a segment's view. */
export function fill(view: Uint32Array, version: number, keys: number): void {
  view[0] = version;
  view[1] = keys;
  for (let key = 0; key < keys; key++) view[2 + key] = valueFor(version, key);
}

/** Decodes a segment's view into a table (a copy: the view is valid only inside its section). */
export function decode(view: Uint32Array): Table {
  const values = new Map<number, number>();
  for (let key = 0; key < view[1]!; key++) values.set(key, view[2 + key]!);
  return { version: view[0]!, values };
}
