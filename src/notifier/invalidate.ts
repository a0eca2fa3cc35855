/**
 * Floor 4 of src/ (docs/LAYERS.md), notifier/: MMU notifiers over the control block: records,
 * registration, delivery in the target's thread, the library wait, and the invalidation that
 * every VM operation runs through (this file). Uses floors 1 to 3; the space it runs for is an
 * interface (Invalidator here, Waiting in wait.ts, Registrar in notifier.ts), which mm.ts implements.
 *
 * The invalidation protocol: every VM operation on a segment runs through `invalidate`, whose
 * five steps read top to bottom (DESIGN section 4):
 *
 *   1. holdOff  seq(S) odd: no new section or map() on S until step 5.
 *   2. start    invalidateStart to every overlapping notifier, each in its own thread; wait for
 *               every target's ack (a dead target counts as acked).
 *   3. drain    wait until no live space holds a section on S (the rwlock's exclusive side).
 *   4. apply    the operation itself (copy, free, change the permit), drained and held off.
 *   5. end      seq(S) even, wake waiters; the record turns END: each target runs
 *               invalidateEnd on exactly the notifiers it started, in its own thread, and acks.
 *
 * The invalidator does not wait for the ends: the operation is done when the window closes
 * (the range is consistent again; Linux runs invalidate_range_end in the invalidator's context,
 * so nothing there waits on another thread for it either), but its targets are told and woken
 * before it returns. Each target completes an end before any later start on the same segment
 * (delivery.ts): a later invalidator waits in step 2 for a slow end, which bounds the records a
 * segment holds. A later record allocation frees the record once every target acked its end,
 * and an operation that finds no record free waits for one in step 1 (record.ts).
 *
 * A deadline passing in step 2 or 3 skips step 4 (nothing was changed: the rollback) and still
 * runs step 5; the operation then fails with ERR_XPMEM_TIMEOUT naming the space that did not
 * answer. VM operations on one segment are serialized by its operation lock (SEG_OPLOCK).
 */
import { aboutSegment, blamed, xpmemError, type XpmemError } from '../errors.js';
import {
  AT_LENGTH,
  AT_NEXT,
  AT_NOTIFIERS,
  AT_OFFSET,
  AT_SPACE,
  H_MUTEX,
  H_REGSEQ,
  IV_EVENT,
  IV_INVALIDATOR,
  IV_LENGTH,
  IV_OFFSET,
  IV_SEG,
  IV_SNAP,
  SEG_DRAINER,
  SEG_NOTIFIERS,
  SEG_OPLOCK,
  SEG_OWNER,
  SEG_RMAP,
  SEG_SEQ,
  SEG_GEN,
  SP_NOTIFIERS,
  SP_STATE,
  SPACE_LIVE,
  IV_STATE,
  IV_END,
  EVENTS,
  idOf,
  slotBase,
  blame,
  type InvalidateEvent,
} from '../layout.js';
import type { ControlBlock } from '../control/control.js';
import { holderOf } from '../sync/rwlock.js';
import { writeBegin, writeEnd } from '../sync/seqcount.js';
import { deadlineIn, remaining } from '../sync/futex.js';
import { sleeping, type Tx } from '../sync/mutex.js';
import { post, wakeSegmentWaiters } from '../sync/doorbell.js';
import { openRecord, endRecord, firstPending, hasBit, maskAt, recordAvailable, setBit, waitingForRecord, ENDED, STARTED, TARGETS } from './record.js';
import { slowWait } from './slow.js';
import { OperationTrace } from './traced.js';
import type { Recorder } from '../trace/recorder.js';
import type { WaitFor, Waits } from './wait.js';
import { count, ST_INVALIDATIONS } from '../stats.js';
import { DRAIN_SPIN, answered, fixedSpin, spinForAnswers, spinning, type Spin } from './spin.js';
import { invalidateChannel, published } from '../diagnostics.js';

/** What an operation is called in traces and xpmem:slow reports (its event alone does not tell swapOut from swapIn). */
export type OperationName = 'remove' | 'release' | 'migrate' | 'resize' | 'protect' | 'swapOut' | 'swapIn' | 'compact' | 'reclaim' | 'fault';

/** One VM operation on one segment. */
export interface Operation {
  /** Segment slot. */
  readonly seg: number;
  /** Segment id (for diagnostics). */
  readonly id: number;
  readonly event: InvalidateEvent;
  readonly name: OperationName;
  /**
   * Under the operation lock, before step 1: validates and returns the range to invalidate, or
   * null when there is nothing to do (e.g. a swap-in that another thread already did). Throws to
   * fail (nothing done).
   */
  prepare(): { offset: number; length: number } | null;
  /** Step 4, drained and held off. Throws to fail; must then have changed nothing. */
  apply(): void;
  /**
   * After step 5 when apply succeeded, still under the operation lock (e.g. free the segment
   * slot of a removal; the reaper does it for an invalidator that died before).
   */
  finish?(): void;
}

/** The invalidating space (an Mm, mm.ts). Its own thread only. */
export interface Invalidator {
  readonly cb: ControlBlock;
  readonly slot: number;
  /** This space's trace recorder. */
  readonly trace: Recorder;
  /** True if this thread is inside a section on segment `seg` (with `sync` false: an async one). */
  holds(seg: number, sync?: boolean): boolean;
  /** True if a callback of this thread for an invalidation of `seg` runs, or returned a promise not yet settled. */
  unsettledFor(seg: number): boolean;
  /** Runs this space's pending notifier events now (its own end, after its operation). */
  deliverInline(): void;
}

/** Wait options of one operation. */
export interface Bounds {
  readonly deadline: number;
  readonly signal?: AbortSignal | undefined;
  /** True when run by runSync: waiting on this thread's own section would never end. */
  readonly sync: boolean;
  /**
   * The non-blocking path (reclaim, compaction): a busy operation lock or a section held on the
   * segment fails at once with ERR_XPMEM_BUSY instead of being waited for.
   */
  readonly nonblocking?: boolean;
}

/**
 * Runs `op` as one invalidation. May sleep (yields its waits). Throws the operation's error,
 * ERR_XPMEM_TIMEOUT, WOULD_DEADLOCK (this thread holds a section on the segment, or an
 * invalidation of it waits for this thread's own callback), BUSY or ABORTED. Returns false when
 * prepare() found nothing to do (no invalidation ran).
 */
export function* invalidate(me: Invalidator, op: Operation, bounds: Bounds): Waits<boolean> {
  const traced = me.trace.on ? new OperationTrace(me.trace, me.cb, op) : undefined;
  let failure: unknown;
  try {
    refuseSelf(me, op, bounds);
    // Generators cost ~60 ns each on Node 20: each step below makes one only when it may wait.
    if (!tryOperationLock(me.cb, me.slot, op.seg)) {
      traced?.phase('waiting for the operation lock');
      yield* lockOperation(me, op, bounds);
    }
    const began = invalidateChannel.hasSubscribers ? performance.now() : 0;
    let rec: Published | undefined;
    try {
      const range = bounds.sync ? synchronously(me, bounds.deadline, op.prepare) : yield* transaction(me, bounds, bounds.deadline, op.prepare); // prepare may take the mutex
      if (range === null) return false;
      traced?.note({ bytes: range.length });
      const told = traced?.phase('hold-off'); // flows start here, before the record is published: a target may start at once
      rec = openWindow(me.cb, op.seg) ? undefined : yield* holdOff(me, op, range, bounds);
      if (rec !== undefined) {
        traced?.flows(rec.r, STARTED, rec.targets, 'invalidateStart', told);
        traced?.note({ targets: traced.spaces(rec.targets) });
        traced?.phase('waiting for starts', rec.targets);
        failure = yield* start(me, op, rec, bounds);
      }
      if (failure === undefined) failure = refuseDrain(me, op, bounds);
      const holder = failure === undefined ? holderOf(me.cb.words, me.cb.layout, op.seg, -1) : -1;
      if (holder >= 0) {
        traced?.phase('drain', [holder]);
        failure = yield* drain(me, op, bounds);
      }
      if (failure === undefined) {
        traced?.phase('change');
        try {
          if (bounds.sync) synchronously(me, bounds.deadline, op.apply);
          else yield* transaction(me, bounds, bounds.deadline, op.apply);
        } catch (error) {
          failure = error;
        }
      }
      traced?.phase(undefined);
      closeWindow(me.cb, op.seg);
      if (rec !== undefined) {
        traced?.flows(rec.r, ENDED, rec.targets, 'invalidateEnd');
        endRecord(me.cb.words, me.cb.layout, rec.r, rec.targets);
      }
      // Under the lock: a death before it is the reaper's to finish.
      if (failure === undefined && op.finish !== undefined) {
        if (bounds.sync) op.finish();
        else yield* transaction(me, bounds, undefined, op.finish);
      }
    } finally {
      unlockOperation(me.cb, op.seg);
    }
    if (rec?.targets.includes(me.slot)) me.deliverInline(); // our own end, before we return
    count(me.cb.words, ST_INVALIDATIONS);
    if (began > 0) published(op, rec?.targets.length ?? 0, performance.now() - began, failure);
    if (failure !== undefined) throw failure;
    return true;
  } catch (error) {
    failure = aboutSegment(error, op.id); // every error of an operation names its segment
    throw failure;
  } finally {
    traced?.end(failure);
  }
}

/**
 * Refuses, before anything is locked or changed, what could only wait for this thread itself:
 * a section it is inside on the segment. A synchronous run would block on any; an asynchronous
 * one on an async section, whose code may be awaiting it (`await seg.migrate()` inside
 * `att.writeAsync`), while a sync section ends before the run's first wait. Like the nesting
 * rule, this counts every async section of the thread, awaiting the operation or not. The
 * non-blocking path skips the segment instead. Never sleeps.
 */
function refuseSelf(me: Invalidator, op: Operation, bounds: Bounds): void {
  if (!me.holds(op.seg, bounds.sync) || !named(me.cb, op)) return; // a stale handle's slot: prepare() says REMOVED
  if (bounds.nonblocking) throw busy('section', me.cb, me.slot, 'this thread holds a section on the segment');
  throw xpmemError(
    'ERR_XPMEM_WOULD_DEADLOCK',
    `this thread holds a section on segment ${op.id}; a VM operation on it would wait for that section, which waits for the operation: end the section first`,
    { segId: op.id },
  );
}

/** True while segment slot `op.seg` still holds the segment `op.id` names. Never sleeps. */
function named(cb: ControlBlock, op: Operation): boolean {
  const { words, layout } = cb;
  return idOf(layout.segments, op.seg, Atomics.load(words, slotBase(layout.segments, op.seg) + SEG_GEN)) === op.id;
}

/**
 * Runs step `run` of a synchronous run: its transactions wait for the domain mutex only until
 * `until` (the operation's deadline), not the domain's. May sleep on the mutex.
 */
function synchronously<T>(me: Invalidator, until: number, run: () => T): T {
  return me.cb.patiently(remaining(until), run);
}

/**
 * Step 1, the window: seq(S) odd. Returns true when nobody can hear the invalidation (see
 * unwatched): no record, no thread hop, nobody to start or end. Never sleeps.
 */
function openWindow(cb: ControlBlock, seg: number): boolean {
  writeBegin(cb.words, slotBase(cb.layout.segments, seg) + SEG_SEQ);
  return unwatched(cb, seg);
}

/** A record holdOff published: its slot and the spaces it targets. */
interface Published {
  readonly r: number;
  readonly targets: readonly number[];
}

/**
 * Step 1, the record (window open): publishes it (step 2 rings its targets); returns it, or
 * undefined when no notifier overlaps the range after all. When every record is in use, waits
 * for one within the deadline (waitForRecord). On failure, closes the window. May sleep (on the
 * mutex, and for a record).
 */
function* holdOff(me: Invalidator, op: Operation, range: { offset: number; length: number }, bounds: Bounds): Waits<Published | undefined> {
  const { cb } = me;
  const { layout } = cb;
  let targets: number[] = [];
  let r = FULL;
  try {
    for (;;) {
      r = yield* transacted(me, bounds, bounds.deadline, (tx) => {
        targets = targetsOf(cb, tx.get.bind(tx), op.seg, range, op.event === 'remove' || op.event === 'release');
        if (targets.length === 0) return -1; // nobody to tell: no record, no thread hop
        const rec = openRecord(tx, cb, (r, base) => {
          tx.set(base + IV_SEG, op.seg);
          tx.set(base + IV_OFFSET, range.offset);
          tx.set(base + IV_LENGTH, range.length);
          tx.set(base + IV_EVENT, EVENTS.indexOf(op.event));
          tx.set(base + IV_SNAP, tx.get(H_REGSEQ));
          tx.set(base + IV_INVALIDATOR, me.slot);
          for (const t of targets) {
            const w = maskAt(layout, r, TARGETS, t >>> 5);
            tx.set(w, tx.get(w) | (1 << (t & 31)));
          }
        });
        return rec < 0 ? FULL : rec;
      });
      if (r !== FULL) break;
      yield* waitForRecord(me, op, bounds);
    }
  } catch (error) {
    closeWindow(cb, op.seg);
    throw error;
  }
  return r < 0 ? undefined : { r, targets };
}

/** holdOff's transaction found every record in use. */
const FULL = -2;

/**
 * Waits until a record is free or reusable (every end of it acked), counted as a waiter so the
 * last end ack rings us (record.ts). At the deadline: ERR_XPMEM_TIMEOUT naming a space whose end
 * keeps a record in use, or ERR_XPMEM_NO_MEMORY when every record is still starting.
 */
function* waitForRecord(me: Invalidator, op: Operation, bounds: Bounds): Waits<void> {
  const { words, layout } = me.cb;
  waitingForRecord(words, layout, me.slot, 1);
  try {
    yield {
      seg: -1,
      slow: slowWait(me.cb, op, 'record', () => []),
      deadline: bounds.deadline,
      signal: bounds.signal,
      until: () => recordAvailable(words, layout),
      timeout: () => recordsTaken(me),
    };
  } finally {
    waitingForRecord(words, layout, me.slot, -1);
  }
}

/** The error of a wait for a record that found none free by its deadline. Never sleeps. */
function recordsTaken(me: Invalidator): XpmemError {
  const { words, layout } = me.cb;
  const { capacity } = layout.invalidations;
  for (let r = 0; r < capacity; r++) {
    if (Atomics.load(words, slotBase(layout.invalidations, r) + IV_STATE) !== IV_END) continue;
    const slow = firstPending(words, layout, r, ENDED);
    if (slow >= 0) return unresponsive(me, slow, `did not finish an invalidateEnd within the deadline while all ${capacity} invalidation records were in use; the operation was rolled back`);
  }
  return xpmemError('ERR_XPMEM_NO_MEMORY', `too many invalidations in flight (capacity ${capacity}); raise capacity.invalidations`);
}

/**
 * True when no notifier can hear an invalidation of `seg` whose window is open: no range
 * notifier on any of its attachments and no space-wide notifier of its owner. Two loads, no
 * mutex, no record: a registration these loads miss commits after the window opened, and a
 * notifier registered while an invalidation is in flight gets neither its start nor its end.
 * (Attachments without notifiers hear nothing; their sections are what the drain waits for.)
 */
function unwatched(cb: ControlBlock, seg: number): boolean {
  const { words, layout } = cb;
  const base = slotBase(layout.segments, seg);
  return Atomics.load(words, base + SEG_NOTIFIERS) === 0 && Atomics.load(words, slotBase(layout.spaces, Atomics.load(words, base + SEG_OWNER)) + SP_NOTIFIERS) === 0;
}

/**
 * Live spaces with a notifier overlapping the range: the owner's space-wide ones, then the
 * rmap's. `everyRange` (a removal): every range notifier on the segment, also one past a shrunk
 * end. A dead space is never a target, though its notifiers stay linked until its reaper drops
 * them: the reaper acks only the records opened before the space died (workers/reap.ts).
 */
export function targetsOf(cb: ControlBlock, get: (i: number) => number, seg: number, range: { offset: number; length: number }, everyRange = false): number[] {
  const { layout } = cb;
  const targets = new Set<number>();
  const live = (space: number): boolean => get(slotBase(layout.spaces, space) + SP_STATE) === SPACE_LIVE;
  const segBase = slotBase(layout.segments, seg);
  const owner = get(segBase + SEG_OWNER);
  if (get(slotBase(layout.spaces, owner) + SP_NOTIFIERS) > 0 && live(owner)) targets.add(owner);
  if (get(segBase + SEG_NOTIFIERS) === 0) return [...targets]; // no range notifier: the rmap has nobody to tell
  for (let a = get(segBase + SEG_RMAP); a >= 0; a = get(slotBase(layout.attachments, a) + AT_NEXT)) {
    const base = slotBase(layout.attachments, a);
    if (get(base + AT_NOTIFIERS) === 0) continue;
    const off = get(base + AT_OFFSET);
    const space = get(base + AT_SPACE);
    if ((everyRange || (off < range.offset + range.length && range.offset < off + get(base + AT_LENGTH))) && live(space)) targets.add(space);
  }
  return [...targets];
}

/**
 * Step 2: rings the record's targets and waits for their acks. While this thread spins for them
 * (spinning() from before the ring, so a target that answers at once sees it), a target
 * expects the end soon and may spin for it (notifier/spin.ts). Returns the timeout error
 * instead of throwing it, so step 5 still runs.
 */
function* start(me: Invalidator, op: Operation, rec: Published, bounds: Bounds): Waits<unknown> {
  const { words, layout } = me.cb;
  const spin = spinFor(me, rec);
  if (spin.ms > 0) spinning(words, layout, me.slot, true);
  try {
    for (const t of rec.targets) post(words, layout, t);
    yield acks(me, op, rec, bounds, spin);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    if (spin.ms > 0) spinning(words, layout, me.slot, false);
  }
}

/**
 * How long the non-blocking path waits for sections already inside the segment to leave (none
 * can enter: the window is open). Sections are short by contract; one that is not gets skipped.
 */
const NONBLOCKING_DRAIN_MS = 100;

/**
 * The spin of the start wait on record `rec` (notifier/spin.ts): none when we are a target
 * ourselves (an async run's own dispatcher cannot answer while it spins).
 */
function spinFor(me: Invalidator, rec: Published): Spin {
  return rec.targets.includes(me.slot) ? NO_SPIN : spinForAnswers(me.cb.words, me.cb.layout, rec.targets);
}

const NO_SPIN = fixedSpin(0);

/**
 * Step 3, before any wait: refuses again (as refuseSelf) when this thread entered a section on
 * the segment while the operation waited for its lock or its acks (another async task of the
 * thread; a blocking run cannot), then names the drainer that sections leaving ring.
 * Returns the refusal, or undefined. Never sleeps.
 */
function refuseDrain(me: Invalidator, op: Operation, bounds: Bounds): unknown {
  const { words, layout } = me.cb;
  try {
    refuseSelf(me, op, bounds);
  } catch (error) {
    return error;
  }
  Atomics.store(words, slotBase(layout.segments, op.seg) + SEG_DRAINER, me.slot + 1);
  return undefined;
}

/** Step 3: the rwlock's exclusive side, waiting for the sections inside to leave (none can enter). */
function* drain(me: Invalidator, op: Operation, bounds: Bounds): Waits<unknown> {
  const { words, layout } = me.cb;
  const { seg } = op;
  let holder = -1;
  try {
    yield {
      seg: -1,
      spin: DRAIN_SPIN,
      slow: slowWait(me.cb, op, 'drain', () => (holder < 0 ? [] : [holder])),
      deadline: bounds.nonblocking ? Math.min(bounds.deadline, deadlineIn(NONBLOCKING_DRAIN_MS)) : bounds.deadline,
      signal: bounds.signal,
      until: () => (holder = holderOf(words, layout, seg, -1)) < 0,
      timeout: () =>
        bounds.nonblocking
          ? busy('section', me.cb, holder, 'still holds a section on the segment')
          : unresponsive(me, holder, 'held a section on the segment past the deadline; the operation was rolled back'),
    };
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Step 5, the window: seq(S) even, and whoever waits on the segment woken. Never sleeps. */
function closeWindow(cb: ControlBlock, seg: number): void {
  const { words, layout } = cb;
  const segBase = slotBase(layout.segments, seg);
  Atomics.store(words, segBase + SEG_DRAINER, 0);
  writeEnd(words, segBase + SEG_SEQ);
  wakeSegmentWaiters(words, layout, seg, true);
}

/** How long an asynchronous run blocks on the mutex before it goes back to waiting without blocking. */
const MUTEX_TRY_MS = 20;

/**
 * Runs `run`, whose transactions either all happen or change nothing when they throw (a step of
 * the protocol, or an operation's apply or finish), waiting for the mutex until `until`
 * (undefined: the domain's deadline from now). A synchronous run blocks on the mutex. An
 * asynchronous run waits without blocking until the mutex is free, blocks on it only briefly,
 * and tries again: a holder that died is seized by its reaper, which may run on this very
 * thread's event loop, so blocking here could only end at the deadline.
 */
export function* transaction<T>(me: Invalidator, bounds: Bounds, until: number | undefined, run: () => T): Waits<T> {
  const deadline = until ?? deadlineIn(me.cb.deadlineMs);
  if (bounds.sync) return synchronously(me, deadline, run);
  for (;;) {
    if (Atomics.load(me.cb.words, H_MUTEX) !== 0) yield* mutexFree(me, deadline);
    try {
      return me.cb.patiently(MUTEX_TRY_MS, run);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_XPMEM_TIMEOUT' || remaining(deadline) === 0) throw error;
    }
  }
}

/** One transaction of `fn`, run as transaction() runs. */
export function transacted<T>(me: Invalidator, bounds: Bounds, deadline: number | undefined, fn: (tx: Tx) => T): Waits<T> {
  return transaction(me, bounds, deadline, () => me.cb.transact(me.slot, fn));
}

/** For an asynchronous run: waits without blocking until the domain mutex is free (see transaction). */
function* mutexFree(me: Invalidator, deadline: number): Waits<void> {
  const { words } = me.cb;
  let holder = 0;
  sleeping(words, 1); // counted before it sleeps: every unlock from now on notifies it
  try {
    yield {
      seg: -1,
      word: { index: H_MUTEX, value: () => holder }, // the holder seen, never 0: nobody would notify a free mutex
      deadline,
      until: () => (holder = Atomics.load(words, H_MUTEX)) === 0,
      timeout: () => (holder > 0 ? unresponsive(me, holder - 1, 'held the domain mutex past the deadline') : xpmemError('ERR_XPMEM_TIMEOUT', 'the domain mutex stayed taken past the deadline')),
    };
  } finally {
    sleeping(words, -1);
  }
}

/** Waits until every target of `rec` acked its start (spinning as `spin` says first); a target no longer live counts as acked. */
function acks(me: Invalidator, op: Operation, rec: Published, bounds: Bounds, spin: Spin): WaitFor {
  const { words, layout } = me.cb;
  const { r } = rec;
  const which = STARTED;
  let pending = -1;
  return {
    seg: -1,
    self: Atomics.load(words, slotBase(layout.invalidations, r) + IV_SEG), // our own callbacks may be among them
    spin,
    slow: slowWait(me.cb, op, 'invalidateStart', () => rec.targets.filter((t) => !hasBit(words, layout, r, STARTED, t) && Atomics.load(words, slotBase(layout.spaces, t) + SP_STATE) === SPACE_LIVE)),
    deadline: bounds.deadline,
    signal: bounds.signal,
    until: () => {
      for (;;) {
        pending = firstPending(words, layout, r, which);
        if (pending < 0) {
          answered();
          return true;
        }
        if (Atomics.load(words, slotBase(layout.spaces, pending) + SP_STATE) === SPACE_LIVE) return false;
        setBit(words, layout, r, which, pending);
      }
    },
    timeout: () => unresponsive(me, pending, 'did not finish invalidateStart within the deadline; the operation was rolled back'),
  };
}

/** Takes segment slot `seg`'s operation lock for space `self` if it is free. Never sleeps. */
export function tryOperationLock(cb: ControlBlock, self: number, seg: number): boolean {
  return Atomics.compareExchange(cb.words, slotBase(cb.layout.segments, seg) + SEG_OPLOCK, 0, self + 1) === 0;
}

/** Takes the segment's operation lock (serializes VM operations), which was taken when last tried. May sleep. */
function* lockOperation(me: Invalidator, op: Operation, bounds: Bounds): Waits<void> {
  const { words, layout } = me.cb;
  const { seg } = op;
  const at = slotBase(layout.segments, seg) + SEG_OPLOCK;
  let holder = 0;
  const take = (): boolean => (holder = Atomics.compareExchange(words, at, 0, me.slot + 1)) === 0;
  if (take()) return;
  if (bounds.nonblocking) throw busy('operation', me.cb, holder - 1, 'runs another VM operation on the segment');
  if (bounds.sync && holder === me.slot + 1) {
    throw xpmemError('ERR_XPMEM_WOULD_DEADLOCK', `this thread is already running a VM operation on segment ${op.id}; await it first`, { segId: op.id });
  }
  yield {
    seg,
    slow: slowWait(me.cb, op, 'operation lock', () => (holder > 0 ? [holder - 1] : [])),
    deadline: bounds.deadline,
    signal: bounds.signal,
    until: take,
    timeout: () => unresponsive(me, holder - 1, 'kept a VM operation on the segment running past the deadline'),
  };
}

/**
 * ERR_XPMEM_BUSY of the non-blocking path: the segment is skipped, nothing was changed. `space`
 * and `threadId` name the space in slot `holder` that keeps it busy (`what` it does); busyWith()
 * says with what.
 */
function busy(kind: BusyWith, cb: ControlBlock, holder: number, what: string): XpmemError {
  const about = blame(cb.words, cb.layout, holder);
  const error = xpmemError('ERR_XPMEM_BUSY', `${blamed(about)} ${what}; the non-blocking path skips it`, about);
  return Object.assign(error, { [BUSY_WITH]: kind });
}

/** What kept a segment busy for the non-blocking path. */
export type BusyWith = 'operation' | 'section';

const BUSY_WITH = Symbol('busyWith');

/** For an ERR_XPMEM_BUSY of the non-blocking path: what the segment was busy with. */
export function busyWith(error: unknown): BusyWith | undefined {
  return (error as { [BUSY_WITH]?: BusyWith } | null)?.[BUSY_WITH];
}

/** ERR_XPMEM_TIMEOUT naming the space in slot `slot` by its public id and its thread. */
function unresponsive(me: Invalidator, slot: number, what: string): XpmemError {
  const about = blame(me.cb.words, me.cb.layout, slot);
  return xpmemError('ERR_XPMEM_TIMEOUT', `${blamed(about)} ${what}`, about);
}

/** Releases segment slot `seg`'s operation lock and wakes whoever waits on the segment. Never sleeps. */
export function unlockOperation(cb: ControlBlock, seg: number): void {
  const { words, layout } = cb;
  Atomics.store(words, slotBase(layout.segments, seg) + SEG_OPLOCK, 0);
  wakeSegmentWaiters(words, layout, seg, false);
}
