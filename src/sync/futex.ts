/**
 * Floor 2 of src/ (docs/LAYERS.md), sync/: the primitives every protocol above is built from:
 * futex waits (this file), doorbells, the journaled domain mutex, the mapping lock's reader
 * indicator and seqcounts. Uses only the control block's word map (layout.ts) and errors.ts.
 *
 * The one place the library sleeps. Wraps Atomics.wait / Atomics.waitAsync / Atomics.notify
 * with absolute deadlines and AbortSignal support, and defines the options (WaitOptions) every
 * call that may wait for another space takes.
 *
 * Contract: a sleeper passes the value it last saw; it returns as soon as the word differs,
 * a notify arrives, the deadline passes, or (async only) the signal aborts. Callers always
 * re-check their condition after a return: wakeups may be spurious.
 */
import { checkIndex, checkOptions, invalidArgType, xpmemError } from '../errors.js';

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

/**
 * Blocks the calling thread while `word[index] === expected`.
 * May sleep (synchronously): must not be called while holding the domain mutex.
 */
export function wait(word: Int32Array, index: number, expected: number, deadline: number): WakeReason {
  const ms = remaining(deadline);
  if (ms === 0) return Atomics.load(word, index) === expected ? 'timed-out' : 'not-equal';
  return Atomics.wait(word, index, expected, ms === Infinity ? undefined : ms);
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
  const result = Atomics.waitAsync(word, index, expected);
  if (!result.async) return result.value;
  let why: WakeReason | undefined;
  const end = (reason: WakeReason) => (): void => {
    why = reason;
    Atomics.notify(word, index);
  };
  const timer = ms === Infinity ? undefined : setTimeout(end('timed-out'), ms);
  const onAbort = end('aborted');
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const reason = await result.value;
    return why ?? reason;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Wakes every sleeper (sync and async) on `word[index]`. Never sleeps; callable from any thread. */
export function notify(word: Int32Array, index: number): void {
  Atomics.notify(word, index);
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
