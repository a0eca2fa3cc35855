/**
 * Invalidation records: one per VM operation in flight, shared by the invalidator and its
 * targets. TARGETS is written under the mutex when the record is made; STARTED and ENDED are
 * ack masks each target sets with Atomics.or (and the reaper sets for the dead).
 *
 * IV_STATE goes FREE -> START in the opening transaction, written last (openRecord), START -> END with one atomic store
 * when the invalidator (or the reaper of a dead one) closes the window, which can therefore never
 * fail, and END -> FREE in a later record allocation once every target acked its end (the
 * invalidator left at END; only an operation that found no record free waits for that, and the
 * last end ack rings it). A record is freed only once END, so the atomic store never races a
 * transaction writing the same word. Only live spaces are made targets (invalidate.ts targetsOf):
 * a dead one's acks are the reaper's, which it gives for every record opened before it died.
 */
import {
  ENDED,
  H_RECORD_WAITERS,
  IV_END,
  IV_FREE,
  IV_GEN,
  IV_INVALIDATOR,
  IV_START,
  IV_STATE,
  SP_RECORD_WAIT,
  STARTED,
  TARGETS,
  maskAt,
  slotBase,
  spaceTop,
  unackedWord,
  type Layout,
} from '../layout.js';
import { freeSlot, takeSlot, type ControlBlock } from '../control/control.js';
import { post, ring } from '../sync/doorbell.js';
import type { Tx } from '../sync/mutex.js';

export { ENDED, STARTED, TARGETS, maskAt } from '../layout.js';

/** Whether `space` is set in mask `which` of record `r`. Any thread. */
export function hasBit(words: Int32Array, layout: Layout, r: number, which: number, space: number): boolean {
  return (Atomics.load(words, maskAt(layout, r, which, space >>> 5)) & (1 << (space & 31))) !== 0;
}

/** Sets `space` in ack mask `which` of record `r`. Any thread; never sleeps. */
export function setBit(words: Int32Array, layout: Layout, r: number, which: number, space: number): void {
  Atomics.or(words, maskAt(layout, r, which, space >>> 5), 1 << (space & 31));
}

/**
 * Space `space`'s ack of phase `which` of record `r`, given by the space itself or, for a dead
 * one, by its reaper. The last start ack rings the invalidator (it re-checks every mask when it
 * wakes, and acks dead targets itself): with many targets it wakes once, not once per target.
 * The last end ack makes the record reusable: it rings the operations waiting for a free record,
 * if any (no thread waits for the ends themselves). Any thread; never sleeps.
 */
export function ack(words: Int32Array, layout: Layout, r: number, which: number, space: number): void {
  setBit(words, layout, r, which, space);
  if (which === STARTED) {
    if (firstPending(words, layout, r, STARTED) < 0) ring(words, layout, Atomics.load(words, slotBase(layout.invalidations, r) + IV_INVALIDATOR));
  } else if (Atomics.load(words, H_RECORD_WAITERS) !== 0 && firstPending(words, layout, r, ENDED) < 0) {
    ringRecordWaiters(words, layout);
  }
}

/**
 * Rings every space with an operation waiting for a free record (waitForRecord). Each waiter
 * counts itself in H_RECORD_WAITERS and SP_RECORD_WAIT before it looks for a record, and a freer
 * makes the record reusable before it reads them: either it sees the waiter, or the waiter sees
 * the record. Any thread; never sleeps.
 */
function ringRecordWaiters(words: Int32Array, layout: Layout): void {
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_RECORD_WAIT) !== 0) ring(words, layout, s);
  }
}

/** True if a record can be opened now: one free, or ended with every end acked. Any thread. */
export function recordAvailable(words: Int32Array, layout: Layout): boolean {
  for (let r = 0; r < layout.invalidations.capacity; r++) {
    const state = Atomics.load(words, slotBase(layout.invalidations, r) + IV_STATE);
    if (state === IV_FREE || (state === IV_END && firstPending(words, layout, r, ENDED) < 0)) return true;
  }
  return false;
}

/**
 * Counts space `space` as waiting for a free record (by `by`: +1 before it looks, -1 when done),
 * so the last end ack of a record rings it (ringRecordWaiters). Any thread; never sleeps.
 */
export function waitingForRecord(words: Int32Array, layout: Layout, space: number, by: 1 | -1): void {
  Atomics.add(words, H_RECORD_WAITERS, by);
  Atomics.add(words, slotBase(layout.spaces, space) + SP_RECORD_WAIT, by);
}

/** The first target of `r` not yet in ack mask `which`, or -1 when all acked. */
export function firstPending(words: Int32Array, layout: Layout, r: number, which: number): number {
  for (let w = 0; w < layout.maskWords; w++) {
    const missing = unackedWord(words, layout, r, which, w);
    if (missing !== 0) return w * 32 + (31 - Math.clz32(missing & -missing));
  }
  return -1;
}

/** What one space read of an invalidation record (readRecord). */
export interface RecordView {
  readonly gen: number;
  readonly state: number;
  readonly targeted: boolean;
  readonly started: boolean;
  readonly ended: boolean;
}

/**
 * Record `r` as space `self` may act on it: its generation, state, and whether `self` is a target
 * that acked its start / end, read between two reads of the generation. A record is reopened
 * (its masks cleared) only once every target acked its end, and its generation moves first
 * (openRecord): without the second read, an END read before a reopening and masks read after it
 * would look like a record `self` never acked, and its ack would land on the new record. Any
 * thread; never sleeps.
 */
export function readRecord(words: Int32Array, layout: Layout, r: number, self: number): RecordView {
  const base = slotBase(layout.invalidations, r);
  for (;;) {
    const gen = Atomics.load(words, base + IV_GEN);
    const state = Atomics.load(words, base + IV_STATE);
    const targeted = hasBit(words, layout, r, TARGETS, self);
    const started = hasBit(words, layout, r, STARTED, self);
    const ended = hasBit(words, layout, r, ENDED, self);
    if (Atomics.load(words, base + IV_GEN) === gen) return { gen, state, targeted, started, ended };
  }
}

/** True while record `r` is in use: started, or ended with some target's end still to run. Any thread. */
export function inFlight(words: Int32Array, layout: Layout, r: number): boolean {
  const state = Atomics.load(words, slotBase(layout.invalidations, r) + IV_STATE);
  return state !== 0 && (state !== IV_END || firstPending(words, layout, r, ENDED) >= 0);
}

/**
 * Opens a record in `tx` (caller holds the mutex): takes a free one; frees every other record
 * whose every end was acked; clears its masks; lets `fill(r, base)` write its fields and
 * TARGETS; and writes IV_STATE = START last. The commit applies writes in first-write order
 * (sync/mutex.ts) and no earlier write of this transaction touched that state word, so a target
 * that reads START reads the whole record, and one still reading an earlier use of the slot sees
 * its generation move (takeSlot bumps it before the masks are cleared). Returns the record, or -1
 * if none was free: the ended records this transaction freed are for the next try.
 *
 * An ended record is never reopened in the transaction that frees it: while that commit ran, a
 * target would read the old use's END beside the new use's generation and cleared masks (one
 * use's END that it never acked), and ack the new use's end before its start ran, losing that
 * end (test/protocol.test.ts, "a record read while its slot is reopened"). Freed first, the slot
 * reads FREE until the opening commits START, and targets skip it. The scan reads IV_STATE with
 * plain loads, before this transaction writes any: a record seen START that just turned END is
 * freed by a later opening.
 */
export function openRecord(tx: Tx, cb: ControlBlock, fill: (r: number, base: number) => void): number {
  const { layout, words } = cb;
  const list = cb.invalidationList;
  const r = takeSlot(tx, list); // before this transaction frees any: never a slot whose state it wrote
  for (let e = 0; e < layout.invalidations.capacity; e++) {
    if (words[slotBase(layout.invalidations, e) + IV_STATE] === IV_END && firstPending(words, layout, e, ENDED) < 0) freeSlot(tx, list, e);
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
 * its ends (a record with no end left to run is reusable at once: its waiters are rung). The
 * invalidator, or the reaper of a dead one, calls it once. Any thread; never sleeps.
 */
export function endRecord(words: Int32Array, layout: Layout, r: number, targets: readonly number[]): void {
  Atomics.store(words, slotBase(layout.invalidations, r) + IV_STATE, IV_END);
  tellTargets(words, layout, r, targets);
}

/**
 * Posts record `r`'s END to each of `targets` (also what a reaper does for an invalidator that
 * died between its END store and its posts); rings the operations waiting for a record when
 * every end was already acked. Any thread; never sleeps.
 */
export function tellTargets(words: Int32Array, layout: Layout, r: number, targets: readonly number[]): void {
  for (const t of targets) post(words, layout, t);
  if (Atomics.load(words, H_RECORD_WAITERS) !== 0 && firstPending(words, layout, r, ENDED) < 0) ringRecordWaiters(words, layout);
}
