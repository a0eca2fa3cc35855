/**
 * Options objects take only the keys they know: a misspelt key (`areanBytes`) would otherwise be
 * ignored and its default used without a word. The refusal names the known key the unknown one
 * resembles, when one is close.
 */
import { invalidArgValue } from './errors.js';

/**
 * Refuses an own key of `options` that `known` lacks: ERR_INVALID_ARG_VALUE naming it, the
 * known key it resembles (when one is within a few edits) and every known key.
 */
export function checkKeys(name: string, options: object, known: Readonly<Record<string, true>>): void {
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    const names = Object.keys(known);
    const near = nearest(key, names);
    throw invalidArgValue(name, `an object with only known keys (${names.join(', ')})`, `unknown key '${key}'${near === undefined ? '' : ` (did you mean '${near}'?)`}`);
  }
}

/** The name in `names` closest to `key` (ignoring case), if it is within a third of `key`'s length in edits (at least one). */
function nearest(key: string, names: readonly string[]): string | undefined {
  const bound = Math.max(1, Math.floor(key.length / 3));
  let best: string | undefined;
  let bestDistance = bound + 1;
  for (const name of names) {
    const d = distance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best;
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`: the optimal string alignment distance. */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}
