/**
 * Invalidation records: one per VM operation in flight, shared by the invalidator and its
 * targets. TARGETS is written under the mutex when the record is made; STARTED and ENDED are
 * ack masks each target sets with Atomics.or (and the reaper sets for the dead).
 * A record is freed when every target has ENDED; if its invalidator stopped waiting earlier
 * (deadline), it is left IV_ORPHAN and freed by the next record allocation that finds it done.
 */
import { IV_MASKS, IV_STATE, IV_ORPHAN, slotBase, type Layout } from '../layout.js';
import { allocSlot, freeSlot, type ControlBlock } from '../control/control.js';
import type { Tx } from '../sync/mutex.js';

export const TARGETS = 0;
export const STARTED = 1;
export const ENDED = 2;

/** Word index of mask `which` (TARGETS / STARTED / ENDED) of record `r`, word `w`. */
export function maskAt(layout: Layout, r: number, which: number, w: number): number {
  return slotBase(layout.invalidations, r) + IV_MASKS + which * layout.maskWords + w;
}

/** Whether `space` is set in mask `which` of record `r`. Any thread. */
export function hasBit(words: Int32Array, layout: Layout, r: number, which: number, space: number): boolean {
  return (Atomics.load(words, maskAt(layout, r, which, space >>> 5)) & (1 << (space & 31))) !== 0;
}

/** Sets `space` in ack mask `which` of record `r`. Any thread; never sleeps. */
export function setBit(words: Int32Array, layout: Layout, r: number, which: number, space: number): void {
  Atomics.or(words, maskAt(layout, r, which, space >>> 5), 1 << (space & 31));
}

/** The first target of `r` not yet in ack mask `which`, or -1 when all acked. */
export function firstPending(words: Int32Array, layout: Layout, r: number, which: number): number {
  for (let w = 0; w < layout.maskWords; w++) {
    const missing = Atomics.load(words, maskAt(layout, r, TARGETS, w)) & ~Atomics.load(words, maskAt(layout, r, which, w));
    if (missing !== 0) return w * 32 + (31 - Math.clz32(missing & -missing));
  }
  return -1;
}

/** Allocates a record, first freeing finished orphans. Caller holds the mutex; -1 if full. */
export function allocRecord(tx: Tx, cb: ControlBlock): number {
  const { layout, words } = cb;
  for (let r = 0; r < layout.invalidations.capacity; r++) {
    if (tx.get(slotBase(layout.invalidations, r) + IV_STATE) === IV_ORPHAN && firstPending(words, layout, r, ENDED) < 0) freeRecord(tx, cb, r);
  }
  const r = allocSlot(tx, cb.invalidationList);
  if (r < 0) return -1;
  for (let which = TARGETS; which <= ENDED; which++) {
    for (let w = 0; w < layout.maskWords; w++) tx.set(maskAt(layout, r, which, w), 0);
  }
  return r;
}

/** Frees record `r`. Caller holds the mutex and knows every target has ENDED. */
export function freeRecord(tx: Tx, cb: ControlBlock, r: number): void {
  freeSlot(tx, cb.invalidationList, r);
}
