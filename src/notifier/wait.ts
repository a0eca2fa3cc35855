/**
 * The library wait: how a space sleeps until a condition on shared memory holds.
 *
 * Contract: sleeps only on the space's own doorbell. A synchronous wait delivers the space's
 * own invalidation events inline (range.blockable = false) before every check, so a thread
 * blocked here still answers invalidators; if the condition depends on one of its own
 * callbacks that is still running (the wait is inside it) or whose promise has not settled, it
 * throws ERR_XPMEM_WOULD_DEADLOCK at once.
 * An asynchronous wait leaves delivery to the dispatcher (the event loop keeps running).
 * Both end with the caller's timeout error at the deadline and ERR_XPMEM_ABORTED on abort.
 */
import { xpmemError, type XpmemError } from '../errors.js';
import { H_CLOSED, SEG_GEN, SEG_OPLOCK, SEG_WAITERS, SP_DOORBELL, SP_WAIT_ANY, idOf, slotBase, type Layout } from '../layout.js';
import { exitShared } from '../sync/rwlock.js';
import { sleepers } from '../sync/doorbell.js';
import { remaining, wait, waitAsync } from '../sync/futex.js';
import { recordWait } from '../stats.js';
import { turn } from '../sync/turn.js';
import { pause } from '../sync/pause.js';
import { idling, parking, type Spin } from './spin.js';
import type { SlowWait } from './slow.js';

/** One condition to wait for. */
export interface WaitFor {
  /** Re-checked after every wake; true ends the wait. */
  until(): boolean;
  /** Segment slot the condition concerns (registers for its wakeups), or -1. */
  readonly seg: number;
  /**
   * Segment slot whose invalidation callbacks of this very thread the condition may depend on
   * (default `seg`): a synchronous wait fails fast while one of them runs or has an unsettled promise.
   */
  readonly self?: number;
  /**
   * For a section entry: its held word, parked by sync/rwlock.ts enterShared (the window's end
   * finds it there and may grant it). A wait that fails clears it like a section exit.
   */
  readonly held?: number;
  /**
   * Asynchronous waits only: sleep on control-block word `index` while it holds `value()`, the
   * value the last until() saw there, instead of on the space's doorbell (whoever changes the
   * word notifies it, as the domain mutex's unlock does). Never yielded to a synchronous run,
   * which must keep sleeping on its doorbell to answer its own events.
   */
  readonly word?: { readonly index: number; value(): number };
  /**
   * Before its first sleep, re-check the condition for up to `spin.ms` (a wait whose answer
   * usually comes within about a wake-up's time), and tell it how the wait went: see spun().
   */
  readonly spin?: Spin;
  /** An operation's wait: reports while it is slow (slow.ts), so it sleeps no longer than the next report is due. */
  readonly slow?: SlowWait;
  /** performance.now() deadline. */
  readonly deadline: number;
  readonly signal?: AbortSignal | undefined;
  /** The error to throw at the deadline (names whoever did not answer). */
  timeout(): XpmemError;
}

/** What a waiting space needs from its own delivery machinery. */
export interface Waiting {
  readonly words: Int32Array;
  readonly layout: Layout;
  readonly slot: number;
  /** Runs pending events inline (blockable = false). */
  deliverInline(): void;
  /** True if an own callback for an invalidation of `seg` is running or returned a promise not yet settled. */
  unsettledFor(seg: number): boolean;
  /** A shared domain's: what a synchronous wait does for the deaths its blocked event loop cannot watch. */
  readonly blocked?: BlockedWatch | undefined;
}

/**
 * The deaths of other processes, looked for by a thread blocked in a synchronous wait: its
 * process's watcher runs on its event loop, which the wait blocks, and the wait may be waiting
 * for a space of a process that died (workers/process.ts blockedWatch).
 */
export interface BlockedWatch {
  /** The longest a blocked thread sleeps between two looks (ms). */
  readonly everyMs: number;
  /**
   * Looks for processes that died, and ends what their spaces kept waiting. May block on the
   * domain mutex, until `deadline` at most (the wait's own: past it, the wait ends with its error).
   */
  look(deadline: number): void;
}

/**
 * Asks for wake-ups about segment `w.seg`: a section entry is already parked in its held word;
 * any other wait counts itself in SP_WAIT_ANY (several waits of one space may be in flight:
 * async ones interleave). See arm().
 */
function register(s: Waiting, w: WaitFor): number {
  const base = slotBase(s.layout.spaces, s.slot);
  if (w.seg >= 0 && w.held === undefined) Atomics.add(s.words, base + SP_WAIT_ANY, 1);
  return base + SP_DOORBELL;
}

/**
 * Sets SEG_WAITERS, telling the next waker of `w.seg` to look for waiters. A waker clears it,
 * so every sleep re-arms it (a wake-up for a condition still false must not be the last one).
 */
function arm(s: Waiting, w: WaitFor): void {
  if (w.seg >= 0) Atomics.store(s.words, slotBase(s.layout.segments, w.seg) + SEG_WAITERS, 1);
}

/**
 * Undoes register; a section entry that failed gives back its parked or granted hold. Records
 * how long the wait took (`since`: when it first found its condition false, or -1) in the
 * domain's statistics, and tells the wait's spin.
 */
function unregister(s: Waiting, w: WaitFor, entered: boolean, since: number): void {
  if (since >= 0) {
    const ms = performance.now() - since;
    recordWait(s.words, ms);
    if (entered) w.spin?.observe(ms);
  }
  if (w.seg < 0) return;
  if (w.held === undefined) Atomics.sub(s.words, slotBase(s.layout.spaces, s.slot) + SP_WAIT_ANY, 1);
  else if (!entered) exitShared(s.words, s.layout, w.held, slotBase(s.layout.segments, w.seg));
}

/** Throws if the wait must end for a reason other than its condition. */
function checkWait(s: Waiting, w: WaitFor): void {
  if (Atomics.load(s.words, H_CLOSED) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', 'the domain was closed while waiting');
  if (w.signal?.aborted) throw aborted(w);
  if (remaining(w.deadline) === 0) throw w.timeout();
}

function aborted(w: WaitFor): XpmemError {
  return xpmemError('ERR_XPMEM_ABORTED', `wait aborted: ${String(w.signal?.reason ?? 'signal aborted')}`);
}

/**
 * Spins up to `w.spin.ms` re-checking `w.until()` (a sync wait delivers its own events between
 * checks; an async one holds its event loop that long). On a machine whose idle cores sleep
 * deeply, waking a parked thread costs far more than the answer takes: the answer from a
 * target woken by our ring then arrives while we spin, and we need no wake-up ourselves.
 * True when the condition came true.
 */
function spun(s: Waiting, w: WaitFor, sync: boolean): boolean {
  const ms = w.spin?.ms ?? 0;
  if (ms === 0) return false;
  const end = performance.now() + ms;
  do {
    if (sync) s.deliverInline();
    if (w.until()) return true;
    pause();
  } while (performance.now() < end);
  return false;
}

/** Until when a wait of `w` sleeps: its deadline, or its next slow report if that comes first. */
function sleepUntil(w: WaitFor): number {
  return w.slow === undefined ? w.deadline : Math.min(w.deadline, w.slow.due());
}

/** The public id of segment slot `seg`, as it reads now. */
function segIdOf(s: Waiting, seg: number): number {
  return idOf(s.layout.segments, seg, Atomics.load(s.words, slotBase(s.layout.segments, seg) + SEG_GEN));
}

/** Blocks the thread until `w.until()`. May sleep; see the file contract. */
export function waitSync(s: Waiting, w: WaitFor): void {
  const bell = register(s, w);
  let entered = false;
  let since = -1;
  try {
    const self = w.self ?? w.seg;
    const watch = s.blocked;
    let looked = performance.now();
    for (;;) {
      const seen = Atomics.load(s.words, bell); // before arming: a waker that takes our arm then rings a changed bell
      arm(s, w);
      s.deliverInline();
      if ((entered = w.until())) return;
      if (self >= 0 && s.unsettledFor(self)) {
        const segId = segIdOf(s, self);
        throw xpmemError(
          'ERR_XPMEM_WOULD_DEADLOCK',
          `a synchronous wait on segment ${segId} depends on this thread's own notifier callback for it (running, or its promise pending); wait after the callback returns, or use the async variant`,
          { segId: segId },
        );
      }
      if (w.held !== undefined && Atomics.load(s.words, slotBase(s.layout.segments, w.seg) + SEG_OPLOCK) === s.slot + 1) {
        // A section entry parked behind a window of this very space: its operation (an awaited one, or a reap its watcher runs) goes on only on this thread's event loop.
        const segId = segIdOf(s, w.seg);
        throw xpmemError(
          'ERR_XPMEM_WOULD_DEADLOCK',
          `a synchronous section of segment ${segId} waits for a VM operation of this very thread (one not yet awaited, or the release of a dead owner's segment this thread's watcher runs), which only this thread's event loop can finish; use readAsync()/writeAsync(), or enter it after that operation`,
          { segId },
        );
      }
      checkWait(s, w);
      if (since < 0) {
        since = performance.now();
        if ((entered = spun(s, w, true))) return;
      }
      parking(s.words, s.layout, s.slot, 1);
      sleepers(s.words, s.layout, s.slot, 1);
      try {
        wait(s.words, bell, seen, watch === undefined ? sleepUntil(w) : Math.min(sleepUntil(w), looked + watch.everyMs));
      } finally {
        sleepers(s.words, s.layout, s.slot, -1);
        parking(s.words, s.layout, s.slot, -1);
      }
      w.slow?.tick();
      if (watch !== undefined && performance.now() - looked >= watch.everyMs) {
        watch.look(w.deadline);
        looked = performance.now();
      }
    }
  } finally {
    unregister(s, w, entered, since);
  }
}

let sleeping = 0;
/** Ref'd while an async wait sleeps, so the thread does not exit under it; made once, toggled after. */
let keepAlive: ReturnType<typeof setInterval> | undefined;

/** While an operation's async wait sleeps, the thread must not exit under it (nodejs/node#61941). */
function holdOpen(): void {
  if (sleeping++ > 0) return;
  keepAlive ??= setInterval(() => {}, 2 ** 30);
  keepAlive.ref();
}

function letGo(): void {
  if (--sleeping === 0) keepAlive!.unref();
}

/** Waits without blocking the event loop until `w.until()`. See the file contract. */
export async function waitAsyncFor(s: Waiting, w: WaitFor): Promise<void> {
  const bell = w.word?.index ?? register(s, w);
  let entered = false;
  let since = -1;
  try {
    for (;;) {
      const seen = Atomics.load(s.words, bell); // a doorbell: read before arming (see waitSync)
      arm(s, w);
      if ((entered = w.until())) return;
      checkWait(s, w);
      if (since < 0) {
        since = performance.now();
        if ((entered = spun(s, w, false))) return;
      }
      holdOpen();
      idling(s.words, s.layout, s.slot, true);
      const doorbell = w.word === undefined; // else a word its changer wakes itself (not a ring)
      if (doorbell) sleepers(s.words, s.layout, s.slot, 1);
      try {
        await waitAsync(s.words, bell, w.word?.value() ?? seen, sleepUntil(w), w.signal);
      } finally {
        if (doorbell) sleepers(s.words, s.layout, s.slot, -1);
        idling(s.words, s.layout, s.slot, false);
        letGo();
      }
      w.slow?.tick();
    }
  } finally {
    unregister(s, w, entered, since);
  }
}

/**
 * A protocol written once as a generator that yields its waits, run either blocking or async.
 * A failed wait is thrown back into the generator, so its own try/catch sees timeouts.
 */
export type Waits<T> = Generator<WaitFor, T, void>;

/** Runs `g` synchronously, blocking at each wait. May sleep. */
export function runSync<T>(s: Waiting, g: Waits<T>): T {
  let next = g.next();
  while (!next.done) {
    let failure: unknown;
    try {
      waitSync(s, next.value);
    } catch (error) {
      failure = error;
    }
    next = failure === undefined ? g.next() : g.throw(failure);
  }
  return next.value;
}

/**
 * Runs `g` asynchronously. May sleep without blocking the event loop; settles after giving the
 * event loop a turn when continuous use kept it from turning (sync/turn.ts).
 */
export async function runAsync<T>(s: Waiting, g: Waits<T>): Promise<T> {
  try {
    let next = g.next();
    while (!next.done) {
      if (next.value.until()) {
        // answered already (often: a waker's system call outlasts the answer): no await
        next = g.next();
        continue;
      }
      let failure: unknown;
      try {
        await waitAsyncFor(s, next.value);
      } catch (error) {
        failure = error;
      }
      next = failure === undefined ? g.next() : g.throw(failure);
    }
    return next.value;
  } finally {
    const yielded = turn();
    if (yielded !== undefined) await yielded;
  }
}
