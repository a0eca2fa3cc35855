/**
 * Invalidation records: one per VM operation in flight, shared by the invalidator and its
 * targets. TARGETS is written under the mutex when the record is made; STARTED and ENDED are
 * ack masks each target sets with Atomics.or (and the reaper sets for the dead).
 *
 * IV_STATE goes FREE -> START in the allocating transaction, START -> END with one atomic store
 * when the invalidator (or the reaper of a dead one) closes the window, which can therefore never
 * fail, and END -> FREE in a later record allocation once every target acked its end (nobody
 * waits for that: the invalidator left at END). A record is freed only once END, so the atomic
 * store never races a transaction writing the same word.
 */
import { IV_END, IV_MASKS, IV_STATE, slotBase, type Layout } from '../layout.js';
import { allocSlot, freeSlot, type ControlBlock } from '../control/control.js';
import { post, postQuietly, wake } from '../sync/doorbell.js';
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

/** True while record `r` is in use: started, or ended with some target's end still to run. Any thread. */
export function inFlight(words: Int32Array, layout: Layout, r: number): boolean {
  const state = Atomics.load(words, slotBase(layout.invalidations, r) + IV_STATE);
  return state !== 0 && (state !== IV_END || firstPending(words, layout, r, ENDED) >= 0);
}

/**
 * Allocates a record, first freeing those whose every end was acked. Caller holds the mutex; -1
 * if full. The scan reads IV_STATE with plain loads, before this transaction writes any: a
 * record seen START that just turned END is freed by a later allocation.
 */
export function allocRecord(tx: Tx, cb: ControlBlock): number {
  const { layout, words } = cb;
  for (let r = 0; r < layout.invalidations.capacity; r++) {
    if (words[slotBase(layout.invalidations, r) + IV_STATE] === IV_END && firstPending(words, layout, r, ENDED) < 0) freeSlot(tx, cb.invalidationList, r);
  }
  const r = allocSlot(tx, cb.invalidationList);
  if (r < 0) return -1;
  for (let which = TARGETS; which <= ENDED; which++) {
    for (let w = 0; w < layout.maskWords; w++) tx.set(maskAt(layout, r, which, w), 0);
  }
  return r;
}

/** The spaces record `r` targets. Any thread. */
export function targetsOfRecord(words: Int32Array, layout: Layout, r: number): number[] {
  const targets: number[] = [];
  for (let t = 0; t < layout.spaces.capacity; t++) if (hasBit(words, layout, r, TARGETS, t)) targets.push(t);
  return targets;
}

/**
 * Step 5 for record `r` (its window closed) with `targets`: END, and every target told to run
 * its ends. The invalidator, or the reaper of a dead one, calls it once. With `later`, a target
 * asleep is woken only in this thread's next macrotask (postQuietly): nobody waits for the ends,
 * so an awaited operation resolves without paying for that wake-up. Any thread; never sleeps.
 */
export function endRecord(words: Int32Array, layout: Layout, r: number, targets: readonly number[], later = false): void {
  Atomics.store(words, slotBase(layout.invalidations, r) + IV_STATE, IV_END);
  if (!later) {
    for (const t of targets) post(words, layout, t);
    return;
  }
  for (const t of targets) postQuietly(words, layout, t);
  setImmediate(() => { for (const t of targets) wake(words, layout, t); });
}
