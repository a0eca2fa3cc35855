/**
 * Invalidation records: one per VM operation in flight, shared by the invalidator and its
 * targets. TARGETS is written under the mutex when the record is made; STARTED and ENDED are
 * ack masks each target sets with Atomics.or (and the reaper sets for the dead).
 *
 * IV_STATE goes FREE (or END) -> START in the opening transaction, written last (openRecord), START -> END with one atomic store
 * when the invalidator (or the reaper of a dead one) closes the window, which can therefore never
 * fail, and END -> FREE in a later record allocation once every target acked its end (nobody
 * waits for that: the invalidator left at END). A record is freed only once END, so the atomic
 * store never races a transaction writing the same word.
 */
import { IV_END, IV_MASKS, IV_START, IV_STATE, SP_EVENTS, slotBase, type Layout } from '../layout.js';
import { bumpGeneration, freeSlot, takeSlot, type ControlBlock } from '../control/control.js';
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
 * Opens a record in `tx` (caller holds the mutex): takes a free one, or when none is free reuses
 * one whose every end was acked (END -> START, never FREE in between); frees the other fully
 * ended ones; clears its masks; lets `fill(r, base)` write its fields and TARGETS; and writes
 * IV_STATE = START last. The commit applies writes in first-write order (sync/mutex.ts) and no
 * earlier write of this transaction touched that state word, so a target that reads START reads
 * the whole record, and one still reading an earlier use of the slot sees its generation move
 * (the generation is written before the masks). Returns the record, or -1 if all are in use.
 * The scan reads IV_STATE with plain loads, before this transaction writes any: a record seen
 * START that just turned END is freed by a later opening.
 */
export function openRecord(tx: Tx, cb: ControlBlock, fill: (r: number, base: number) => void): number {
  const { layout, words } = cb;
  const list = cb.invalidationList;
  let r = takeSlot(tx, list); // before this transaction frees any: never a slot whose state it wrote
  for (let e = 0; e < layout.invalidations.capacity; e++) {
    const base = slotBase(layout.invalidations, e);
    if (words[base + IV_STATE] !== IV_END || firstPending(words, layout, e, ENDED) >= 0) continue;
    if (r >= 0) {
      freeSlot(tx, list, e);
    } else {
      r = e;
      bumpGeneration(tx, base);
    }
  }
  if (r < 0) return -1;
  for (let which = TARGETS; which <= ENDED; which++) {
    for (let w = 0; w < layout.maskWords; w++) tx.set(maskAt(layout, r, which, w), 0);
  }
  const base = slotBase(layout.invalidations, r);
  fill(r, base);
  tx.set(base + IV_STATE, IV_START);
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
 * asleep is woken only in this thread's next macrotask (postQuietly, wakeLater): nobody waits for
 * the ends, so an awaited operation resolves without paying for that wake-up. Any thread; never sleeps.
 */
export function endRecord(words: Int32Array, layout: Layout, r: number, targets: readonly number[], later = false): void {
  Atomics.store(words, slotBase(layout.invalidations, r) + IV_STATE, IV_END);
  for (const t of targets) {
    if (!later) post(words, layout, t);
    else {
      postQuietly(words, layout, t);
      wakeLater(words, layout, t);
    }
  }
}

/** Spaces told quietly in this thread, to wake in its next macrotask. */
const quiet: { words: Int32Array; layout: Layout; space: number }[] = [];

/** Wakes space `space` in this thread's next macrotask, unless it has run its events by then. Never sleeps. */
function wakeLater(words: Int32Array, layout: Layout, space: number): void {
  if (quiet.length === 0) setImmediate(wakeQuiet);
  quiet.push({ words, layout, space });
}

/**
 * Wakes the spaces told quietly that have not run their events since (SP_EVENTS still set: a
 * space clears it before it scans its records, so one that cleared it saw the END). Operations
 * back to back queue one entry each: without the check, each would wake a target that already
 * ran them and went back to sleep.
 */
function wakeQuiet(): void {
  for (const { words, layout, space } of quiet.splice(0)) {
    if (Atomics.load(words, slotBase(layout.spaces, space) + SP_EVENTS) !== 0) wake(words, layout, space);
  }
}
