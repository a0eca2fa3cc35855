/**
 * Floor 2 of src/ (docs/LAYERS.md), sync/: the primitives every protocol above is built from:
 * futex waits (this file), doorbells, the journaled domain mutex, the mapping lock's reader
 * indicator and seqcounts. Uses only the control block's word map (layout.ts) and errors.ts.
 *
 * The one place the library sleeps. Wraps Atomics.wait / Atomics.waitAsync / Atomics.notify
 * with absolute deadlines and AbortSignal support, and defines the options (WaitOptions) every
 * call that may wait for another space takes. A buffer shared with other processes (a shared
 * domain's, after shareAcrossProcesses()) sleeps and wakes through the futex system call instead
 * (sync/native.ts): V8 keeps one wait list per process, and its notify never reaches another.
 *
 * Contract: a sleeper passes the value it last saw; it returns as soon as the word differs,
 * a notify arrives, the deadline passes, or (async only) the signal aborts. Callers always
 * re-check their condition after a return: wakeups may be spurious.
 */
import { checkIndex, checkOptions, invalidArgType, xpmemError } from '../errors.js';
import { native, type Native } from './native.js';

/** Options of every call that may wait for another space. */
export interface WaitOptions {
  /** Give up after this many ms (default: the domain's deadlineMs). */
  deadlineMs?: number;
  /**
   * Give up when aborted. An async call gives up at once. A sync call blocks its thread, so its
   * signal can only be aborted by this thread's own code that runs while it waits (a notifier
   * callback delivered inline); it checks the signal each time it wakes.
   */
  signal?: AbortSignal;
}

/**
 * Validates the options of a blocking call before anything changes: `deadlineMs` an integer
 * >= 0, `signal` an AbortSignal. A signal already aborted is ERR_XPMEM_ABORTED at once.
 */
export function checkWaitOptions(opts: WaitOptions | undefined): void {
  checkOptions('options', opts);
  if (opts === undefined) return;
  if (opts.deadlineMs !== undefined) checkIndex('options.deadlineMs', opts.deadlineMs, 0, 2 ** 31 - 1);
  const { signal } = opts;
  if (signal === undefined) return;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  if (signal.aborted) throw xpmemError('ERR_XPMEM_ABORTED', `aborted before it started: ${String(signal.reason)}`);
}

/** Why a futex wait returned. */
export type WakeReason = 'ok' | 'not-equal' | 'timed-out' | 'aborted';

/** Milliseconds left until `deadline` (a performance.now() timestamp), never negative. */
export function remaining(deadline: number): number {
  return Math.max(0, deadline - performance.now());
}

/** An absolute deadline `ms` from now; Infinity stays Infinity. */
export function deadlineIn(ms: number): number {
  return ms === Infinity ? Infinity : performance.now() + ms;
}

/** Buffers this thread shares with other processes; undefined until the first (the common case costs one check). */
let shared: WeakSet<ArrayBufferLike> | undefined;

/** Results of the addon's waits, by number. */
const REASONS: readonly WakeReason[] = ['ok', 'not-equal', 'timed-out', 'aborted'];

/**
 * From now on, this thread's waits and wakes on `buffer` go through the futex system call, so
 * they reach other processes that mapped the same memory. Every thread of every process that
 * uses the buffer calls this before its first wait on it (ControlBlock does). Throws
 * ERR_XPMEM_UNSUPPORTED where the addon cannot load.
 */
export function shareAcrossProcesses(buffer: SharedArrayBuffer): void {
  native();
  shared ??= new WeakSet();
  shared.add(buffer);
}

/** True when this thread's waits on `word`'s buffer go to other processes (shareAcrossProcesses() was called for it). */
export function acrossProcesses(word: Int32Array): boolean {
  return shared?.has(word.buffer) === true;
}

/** The addon when `word`'s buffer is shared with other processes, else undefined. */
function sys(word: Int32Array): Native | undefined {
  return shared?.has(word.buffer) === true ? native() : undefined;
}

/** Milliseconds for the addon: whole, rounded up; -1 for none. */
function wholeMs(ms: number): number {
  return ms === Infinity ? -1 : Math.ceil(ms);
}

/**
 * Blocks the calling thread while `word[index] === expected`.
 * May sleep (synchronously): must not be called while holding the domain mutex.
 */
export function wait(word: Int32Array, index: number, expected: number, deadline: number): WakeReason {
  const ms = remaining(deadline);
  if (ms === 0) return Atomics.load(word, index) === expected ? 'timed-out' : 'not-equal';
  const addon = sys(word);
  if (addon === undefined) return Atomics.wait(word, index, expected, ms === Infinity ? undefined : ms);
  if (Atomics.load(word, index) !== expected) return 'not-equal'; // as Atomics.wait: no system call
  return REASONS[addon.wait(word.buffer as SharedArrayBuffer, word.byteOffset / 4 + index, expected, wholeMs(ms))]!;
}

/**
 * Sleeps without blocking the event loop while `word[index] === expected`. The deadline is a
 * timer of this thread's own event loop that notifies the word, and the signal notifies it too:
 * Atomics.waitAsync is given no timeout, because V8 posts a timeout task to the isolate, which
 * wakes this thread's event loop through a system call at every wait.
 */
export async function waitAsync(word: Int32Array, index: number, expected: number, deadline: number, signal?: AbortSignal): Promise<WakeReason> {
  if (signal?.aborted) return 'aborted';
  const ms = remaining(deadline);
  if (ms === 0) return Atomics.load(word, index) === expected ? 'timed-out' : 'not-equal';
  const addon = sys(word);
  if (addon !== undefined) {
    // As Atomics.waitAsync: a word that already differs answers at once, with no system call
    // and no turn of the event loop (the kernel would answer the same, later).
    if (Atomics.load(word, index) !== expected) return 'not-equal';
    return waitNative(addon, word, index, expected, ms, signal);
  }
  const result = Atomics.waitAsync(word, index, expected);
  if (!result.async) return result.value;
  let why: WakeReason | undefined;
  const disarm = ends(ms, signal, (reason) => {
    why = reason;
    Atomics.notify(word, index);
  });
  try {
    const reason = await result.value;
    return why ?? reason;
  } finally {
    disarm();
  }
}

/**
 * Arms the two ends of an async wait other than its wake-up: a timer of this thread's event loop
 * at the deadline (so only a bounded wait keeps the loop alive) and the signal's abort. The first
 * to come calls `stop` with its reason. Returns the disarm, for when the wait returns.
 */
function ends(ms: number, signal: AbortSignal | undefined, stop: (reason: WakeReason) => void): () => void {
  const timer = ms === Infinity ? undefined : setTimeout(stop, ms, 'timed-out');
  const onAbort = (): void => stop('aborted');
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/**
 * waitAsync() of a word shared with other processes: the addon queues the futex wait in the
 * kernel (io_uring, polled by this thread's event loop; else a waiter thread). The deadline is
 * a timer of this thread's loop, as for Atomics.waitAsync (it keeps the loop alive while the
 * wait is bounded); it and the signal end the wait at once and cancel the native one, whose
 * late answer is dropped (a waiter thread without futex_waitv sees its cancel only at the end
 * of its slice).
 */
function waitNative(addon: Native, word: Int32Array, index: number, expected: number, ms: number, signal: AbortSignal | undefined): Promise<WakeReason> {
  return new Promise((resolve) => {
    let disarm = (): void => {};
    const settle = (reason: WakeReason): void => {
      disarm();
      resolve(reason);
    };
    let cancel: () => void;
    try {
      const id = addon.waitAsync(word.buffer as SharedArrayBuffer, word.byteOffset / 4 + index, expected, (result) => settle(REASONS[result]!));
      cancel = () => addon.cancel(id);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      // No waiter thread could be made (the pool, where io_uring has no futex waits): a spurious
      // wake-up a little later stands in for the wait, and the caller looks again. Its timer
      // keeps no loop alive: a bounded wait's deadline timer does, as for the native wait.
      warnNoThread(error);
      const retry = setTimeout(settle, NO_THREAD_RETRY_MS, 'ok').unref();
      cancel = () => clearTimeout(retry);
    }
    disarm = ends(ms, signal, (reason) => {
      cancel();
      settle(reason);
    });
  });
}

/** How long an async wait that found no waiter thread sleeps before it wakes spuriously, in ms. */
const NO_THREAD_RETRY_MS = 10;
let warnedNoThread = false;

/** Says once per thread that async waits poll for want of threads. */
function warnNoThread(error: Error): void {
  if (warnedNoThread) return;
  warnedNoThread = true;
  process.emitWarning(`xpmem-threads: ${error.message}; async waits wake every ${NO_THREAD_RETRY_MS} ms to look again until threads can be made`, 'XpmemWarning');
}

/** Wakes every sleeper (sync and async) on `word[index]`, in every process sharing it. Never sleeps; callable from any thread. */
export function notify(word: Int32Array, index: number): void {
  const addon = sys(word);
  if (addon === undefined) Atomics.notify(word, index);
  else addon.wake(word.buffer as SharedArrayBuffer, word.byteOffset / 4 + index);
}

/**
 * Waits for `promise` until `deadline` (a performance.now() timestamp) or until `signal`
 * aborts, whichever comes first: then rejects with `timeout()` or `aborted()`. The promise itself
 * goes on. Never blocks; any thread.
 */
export function within<T>(promise: Promise<T>, deadline: number, signal: AbortSignal | undefined, timeout: () => Error, aborted: () => Error): Promise<T> {
  if (deadline === Infinity && signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const ms = remaining(deadline);
    const timer = ms === Infinity ? undefined : setTimeout(() => settle(() => reject(timeout())), ms);
    const onAbort = (): void => settle(() => reject(aborted()));
    const settle = (then: () => void): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      then();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
  });
}
