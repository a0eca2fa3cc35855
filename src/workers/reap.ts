/**
 * Reaping a dead space (exit_mmap for a thread that exited or was terminated). Runs in the
 * watcher's thread after the worker's 'exit' event, so the dead thread can no longer write:
 *
 *   1. the mutex, if the dead space held it, is seized and its committed journal replayed;
 *   2. the space is marked dead: its held sections stop counting (robust list), its pending
 *      acks count as done, its doorbell is never rung again;
 *   3. windows it left open as an invalidator are closed and their records ended (targets get
 *      their invalidateEnd), a removal it applied but did not finish frees its segment slot,
 *      operation locks it held are released;
 *   4. its notifiers, grants and attachments are dropped;
 *   5. every segment it owned is removed by one invalidation each, event 'release';
 *   6. the slot is freed.
 * No step waits on the dead space; step 5 waits only on live attachers (bounded by deadlines).
 * Steps 1 to 3 (stopSpace) also run in a thread of a shared domain that a synchronous wait
 * blocks, for a process that died meanwhile (stopDead).
 */
import {
  AT_SPACE,
  AT_STATE,
  GR_SPACE,
  GR_STATE,
  IV_FREE,
  IV_INVALIDATOR,
  IV_START,
  IV_STATE,
  NT_ATT,
  NT_SPACE,
  NT_STATE,
  SEG_DRAINER,
  SEG_GEN,
  SEG_LIVE,
  SEG_OPLOCK,
  SEG_REMOVED,
  SEG_OWNER,
  SEG_SEQ,
  SEG_STATE,
  SP_HELD,
  SP_NOTIFIERS,
  SP_PID,
  SP_PSTART,
  SP_REAPER,
  SP_STATE,
  SP_GEN,
  SP_THREAD,
  SP_TID,
  SP_TSTART,
  SPACE_DEAD,
  SPACE_FREE,
  SPACE_LIVE,
  spaceTop,
  type Layout,
  idOf,
  slotBase,
  blame,
} from '../layout.js';
import { reapChannel, type ReapMessage } from '../diagnostics.js';
import { freeSlot, type ControlBlock } from '../control/control.js';
import { seize } from '../sync/mutex.js';
import { ringAll, wakeSegmentWaiters } from '../sync/doorbell.js';
import { writeEnd } from '../sync/seqcount.js';
import { ENDED, STARTED, TARGETS, ack, endRecord, hasBit, tellTargets, targetsOfRecord } from '../notifier/record.js';
import { invalidate, transacted } from '../notifier/invalidate.js';
import type { Tx } from '../sync/mutex.js';
import { ofThisProcess, type KernelThread } from '../sync/robust.js';
import { removal } from '../vm/operations.js';
import { unlinkAttachment, unlinkGrant } from '../control/lists.js';
import type { Mm } from '../mm.js';
import type { XpmemError } from '../errors.js';

/**
 * A space to reap: its slot, and whose it was when it was found dead: its generation, its
 * recorded pid (negative once it left), its thread, its process's start time, and (a worker of
 * a shared domain) its thread's kernel id and start time.
 */
export interface DeadSpace extends KernelThread {
  readonly slot: number;
  readonly gen: number;
  readonly pid: number;
  readonly thread: number;
  readonly start: number;
}

/**
 * Space `slot` as it reads now, its state just read not free: its generation first, then who
 * holds it. Read while a join reuses the slot, the words may mix two members: claim() takes only
 * a space whose every word still reads the same once its state says it is whole. Any thread.
 */
export function spaceNow(words: Int32Array, layout: Layout, slot: number): DeadSpace {
  const base = slotBase(layout.spaces, slot);
  const gen = Atomics.load(words, base + SP_GEN);
  const at = (field: number): number => Atomics.load(words, base + field);
  return { slot, gen, pid: at(SP_PID), thread: at(SP_THREAD), start: at(SP_PSTART), tid: at(SP_TID), tstart: at(SP_TSTART) };
}

/** Live spaces of this process whose thread is `threadId`. Any thread. */
export function spacesOfThread(cb: ControlBlock, threadId: number): DeadSpace[] {
  const { words, layout } = cb;
  const found: DeadSpace[] = [];
  for (let s = 0; s < layout.spaces.capacity; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) !== SPACE_LIVE) continue;
    const space = spaceNow(words, layout, s);
    if (space.thread === threadId && ofThisProcess(space.pid, space.start)) found.push(space);
  }
  return found;
}

/**
 * Claims the reap of `dead` for `me`: true for exactly one claimant while the slot still holds
 * the member found dead (several processes may see one death), live or, when its reaper died
 * midway, dead and unclaimed (releaseClaims). The state is read first: not free, the slot is
 * whole (a join writes its state last), so a generation, pid, thread or start that differs from
 * what was found is another member, never reaped for that one's death. A claimed slot is freed
 * only by its reap, so none of it can move under the claimant. Any thread; never sleeps.
 */
function claim(words: Int32Array, layout: Layout, dead: DeadSpace, me: number): boolean {
  const base = slotBase(layout.spaces, dead.slot);
  if (Atomics.compareExchange(words, base + SP_REAPER, 0, me + 1) !== 0) return false;
  if (Atomics.load(words, base + SP_STATE) !== SPACE_FREE) {
    const now = spaceNow(words, layout, dead.slot);
    if (now.gen === dead.gen && now.pid === dead.pid && now.thread === dead.thread && now.start === dead.start && now.tid === dead.tid && now.tstart === dead.tstart) return true;
  }
  Atomics.store(words, base + SP_REAPER, 0); // reaped already, and the slot reused
  return false;
}

/**
 * Lets reaper `me`'s claim of space `slot` go, if it still holds it: a reap of `me` itself may
 * have released it meanwhile (releaseClaims), and a third reaper claimed it. Any thread; never sleeps.
 */
function letGo(words: Int32Array, layout: Layout, slot: number, me: number): void {
  Atomics.compareExchange(words, slotBase(layout.spaces, slot) + SP_REAPER, me + 1, 0);
}

/**
 * A reaper that dies midway (its process was killed) leaves the spaces it was reaping claimed,
 * live or dead: its own reap unclaims them, and any process's watcher reaps them again from
 * where it stopped (every step below is idempotent). Any thread; never sleeps.
 */
function releaseClaims(words: Int32Array, layout: Layout, reaper: number): void {
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    const base = slotBase(layout.spaces, s);
    if (s !== reaper && Atomics.load(words, base + SP_STATE) !== SPACE_FREE) Atomics.compareExchange(words, base + SP_REAPER, reaper + 1, 0);
  }
}

/**
 * Reaps space `dead` from the watcher `me`, unless another reaper claimed it. May sleep (async)
 * while live attachers answer the release invalidations; `stalled` hears each ERR_XPMEM_TIMEOUT
 * a release retries after. When `signal` aborts, the reap stops at its next release (the one in
 * flight rolled back) and lets its claim go, for another reaper to resume. Returns how many
 * segments were removed.
 */
export async function reap(me: Mm, deadSpace: DeadSpace, stalled: (error: XpmemError) => void, signal?: AbortSignal): Promise<number> {
  const { cb } = me;
  const { words, layout } = cb;
  const dead = deadSpace.slot;
  const { space, threadId, pid } = blame(words, layout, dead);
  // Waits for the mutex without blocking: another dead holder is seized by its own reap, on this thread.
  const transact = <T>(fn: (tx: Tx) => T): Promise<T> => me.runAsync(transacted(me, me.bounds(undefined, false), undefined, fn));
  for (let found = deadSpace; ; found = asFoundNow(words, layout, deadSpace)) {
    if (!claim(words, layout, found, me.slot)) return 0;
    if (stopNow(me, dead)) break;
    await transact(() => undefined); // the mutex is taken: let it be free, and claim again
  }
  try {
    const owned = await transact((tx) => dropUsers(cb, tx, dead));
    for (const ref of owned) {
      if (await release(me, ref, stalled, signal)) continue;
      letGo(words, layout, dead, me.slot); // stopped: another reaper resumes from here
      return 0;
    }
    await transact((tx) => freeSlot(tx, cb.spaceList, dead));
    if (reapChannel.hasSubscribers) reapChannel.publish({ space, threadId, pid, segments: owned.length } satisfies ReapMessage);
    return owned.length;
  } catch (error) {
    letGo(words, layout, dead, me.slot); // failed (the mutex held past the deadline): dead and unclaimed, any watcher resumes it
    throw error;
  }
}

/**
 * Runs stopSpace for `dead`, claimed by `me`, without waiting for the mutex: true once done;
 * false, the claim let go, when the mutex was taken. A claim is never held across a wait for the
 * mutex: a reaper whose event loop then blocks (a synchronous call, a long task) would keep the
 * stop steps from every other thread, among them one blocked in a synchronous wait for this
 * very space (stopDead), and two must never run them at once (a window closed twice would open).
 */
function stopNow(me: Mm, dead: number): boolean {
  try {
    stopSpace(me, dead, performance.now());
    return true;
  } catch (error) {
    letGo(me.words, me.layout, dead, me.slot);
    if ((error as { code?: string }).code !== 'ERR_XPMEM_TIMEOUT') throw error;
    return false;
  }
}

/**
 * Space `found` as a claim must find it again after a try that stopped part of it: its
 * generation bumped once it was marked dead (by this reaper or another); the member it holds
 * still the one found dead (claim() compares the rest). Any thread; never sleeps.
 */
function asFoundNow(words: Int32Array, layout: Layout, found: DeadSpace): DeadSpace {
  const base = slotBase(layout.spaces, found.slot);
  return Atomics.load(words, base + SP_STATE) === SPACE_DEAD ? { ...found, gen: Atomics.load(words, base + SP_GEN) } : found;
}

/**
 * The first part of reap() (stopSpace), run synchronously by a thread whose event loop a
 * synchronous wait blocks, so that its process's watcher cannot reap: what may keep that wait
 * waiting on the dead space ends. The claim is then let go: a watcher (this process's once its
 * event loop turns, or another process's) reaps the rest, resuming where this left off (every
 * step is idempotent). May block on the domain mutex, until `deadline` (then ERR_XPMEM_TIMEOUT).
 */
export function stopDead(me: Mm, dead: DeadSpace, deadline: number): void {
  const { words, layout } = me.cb;
  if (!claim(words, layout, dead, me.slot)) return;
  try {
    stopSpace(me, dead.slot, deadline);
  } finally {
    letGo(words, layout, dead.slot, me.slot);
  }
}

/**
 * Steps 1 to 3 of a reap, those every wait on the dead space needs (the caller claimed it):
 * the mutex seized if it held it, the space marked dead (its acks count as done, no new record
 * names it), its held sections dropped, the windows it left open closed and its operation
 * locks freed, its records settled. Its transactions block on the mutex until `until`, then
 * throw ERR_XPMEM_TIMEOUT (every step done stays done: a later run goes on from there).
 */
function stopSpace(me: Mm, dead: number, until: number): void {
  const { cb } = me;
  const { words, layout } = cb;
  seize(words, layout, dead, me.slot);
  const transact: Transact = (fn) => me.runSync(transacted(me, me.bounds(undefined, true), until, fn));
  transact((tx) => {
    const base = slotBase(layout.spaces, dead);
    if (tx.get(base + SP_STATE) !== SPACE_LIVE) return; // a reap resumed after its first reaper died
    tx.set(base + SP_STATE, SPACE_DEAD);
    tx.set(base + SP_GEN, (tx.get(base + SP_GEN) + 1) & 0x3fffffff); // its thread, if still running, sees it at its next section
  });
  releaseClaims(words, layout, dead);
  const spBase = slotBase(layout.spaces, dead);
  for (let d = 0; d < layout.caps.depth; d++) Atomics.store(words, spBase + SP_HELD + d, 0);
  ringAll(words, layout); // drains, ack waits and lock waits re-check: the dead space no longer counts
  releaseOperations(cb, transact, dead); // windows close before their ends are posted
  settleRecords(cb, dead);
}

/** One transaction of the stop steps, blocking on the mutex up to their bound. */
type Transact = (fn: (tx: Tx) => void) => void;

/** Pause before retrying a release that found a table full. */
const RETRY_MS = 10;

/**
 * Removes a dead owner's segment with event 'release'. A live attacher that does not answer in
 * time (or holds a section past the deadline), or an async section of the reaper's own thread on
 * it, only delays it: the reaper tries again, each try bounded by the deadline, until it
 * succeeds or the domain closes. Nothing waits on the dead.
 * False when `signal` aborted it first (the try in flight rolled back).
 */
async function release(me: Mm, ref: { slot: number; gen: number; id: number }, stalled: (error: XpmemError) => void, signal: AbortSignal | undefined): Promise<boolean> {
  for (;;) {
    if (signal?.aborted) return false;
    try {
      await me.runAsync(invalidate(me, removal(me.cb, me.slot, ref, 'release'), me.bounds({ signal }, false)));
      return true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ERR_XPMEM_ABORTED') return false;
      if (code === 'ERR_XPMEM_TIMEOUT') {
        stalled(error as XpmemError);
      } else if (code === 'ERR_XPMEM_NO_MEMORY' || code === 'ERR_XPMEM_WOULD_DEADLOCK') {
        if (code === 'ERR_XPMEM_WOULD_DEADLOCK') stalled(error as XpmemError); // an async section of this very thread on the segment: it ends first
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS)); // or a full table: others finish first
      } else {
        if (code !== 'ERR_XPMEM_CLOSED' && code !== 'ERR_XPMEM_REMOVED') process.emitWarning(`xpmem-threads: reaping segment ${ref.id} failed: ${String(error)}`, 'XpmemReapWarning');
        return true;
      }
    }
  }
}

/**
 * Acks on the dead space's behalf every record that names it: the records opened before it died
 * (none opened since names it: invalidate.ts targetsOf). Ends the records it was invalidating
 * (their windows are closed), and tells the targets of those it had ended already: it may have
 * died between its END store and its posts. Never sleeps.
 */
function settleRecords(cb: ControlBlock, dead: number): void {
  const { words, layout } = cb;
  for (let r = 0; r < layout.invalidations.capacity; r++) {
    const base = slotBase(layout.invalidations, r);
    const state = Atomics.load(words, base + IV_STATE);
    if (state === IV_FREE) continue;
    if (hasBit(words, layout, r, TARGETS, dead)) {
      ack(words, layout, r, STARTED, dead);
      ack(words, layout, r, ENDED, dead);
    }
    if (Atomics.load(words, base + IV_INVALIDATOR) !== dead) continue;
    if (state === IV_START) endRecord(words, layout, r, targetsOfRecord(words, layout, r));
    else tellTargets(words, layout, r, targetsOfRecord(words, layout, r));
  }
}

/** Closes windows the dead space left open and frees its operation locks. */
function releaseOperations(cb: ControlBlock, transact: Transact, dead: number): void {
  const { words, layout } = cb;
  for (let s = 0; s < layout.segments.capacity; s++) {
    const base = slotBase(layout.segments, s);
    if (Atomics.load(words, base + SEG_OPLOCK) !== dead + 1) continue;
    const open = (Atomics.load(words, base + SEG_SEQ) & 1) !== 0;
    if (open) {
      writeEnd(words, base + SEG_SEQ);
      wakeSegmentWaiters(words, layout, s, true); // grant while no other window can open
    }
    // Died between a removal's apply and its finish: free the slot before anyone takes the lock.
    transact((tx) => {
      if (tx.get(base + SEG_STATE) === SEG_REMOVED) freeSlot(tx, cb.segmentList, s);
    });
    Atomics.store(words, base + SEG_DRAINER, 0);
    Atomics.store(words, base + SEG_OPLOCK, 0);
    wakeSegmentWaiters(words, layout, s, false);
  }
}

/** Drops the dead space's notifiers, attachments and grants; returns the segments it owned. Caller holds the mutex. */
function dropUsers(cb: ControlBlock, tx: Tx, dead: number): { slot: number; gen: number; id: number }[] {
  const { layout } = cb;
  for (let a = 0; a < layout.attachments.capacity; a++) {
    const base = slotBase(layout.attachments, a);
    if (tx.get(base + AT_STATE) !== 0 && tx.get(base + AT_SPACE) === dead) unlinkAttachment(tx, cb, a);
  }
  for (let n = 0; n < layout.notifiers.capacity; n++) {
    const base = slotBase(layout.notifiers, n);
    if (tx.get(base + NT_STATE) !== 0 && tx.get(base + NT_SPACE) === dead && tx.get(base + NT_ATT) < 0) freeSlot(tx, cb.notifierList, n);
  }
  for (let g = 0; g < layout.grants.capacity; g++) {
    const base = slotBase(layout.grants, g);
    if (tx.get(base + GR_STATE) !== 0 && tx.get(base + GR_SPACE) === dead) unlinkGrant(tx, cb, g);
  }
  tx.set(slotBase(layout.spaces, dead) + SP_NOTIFIERS, 0);
  const owned: { slot: number; gen: number; id: number }[] = [];
  for (let s = 0; s < layout.segments.capacity; s++) {
    const base = slotBase(layout.segments, s);
    if (tx.get(base + SEG_STATE) === SEG_LIVE && tx.get(base + SEG_OWNER) === dead) {
      const gen = tx.get(base + SEG_GEN);
      owned.push({ slot: s, gen, id: idOf(layout.segments, s, gen) });
    }
  }
  return owned;
}
