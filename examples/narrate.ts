/**
 * Narration shared by the demo programs: one line per step, stamped with milliseconds since the
 * demo began. Workers send their lines to the demo (so one thread prints them all, in order of
 * arrival); the demo prints its own directly.
 */
import { isMainThread, parentPort } from 'node:worker_threads';

/** Milliseconds since the epoch, comparable across threads. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** A function that narrates one line as `who`, timed from `t0` (a now() of the demo's start). */
export function narrator(who: string, t0: number): (text: string) => void {
  return (text) => {
    const line = `${(now() - t0).toFixed(1).padStart(8)} ms  ${who.padEnd(10)} ${text}`;
    if (isMainThread) console.log(line);
    else parentPort!.postMessage({ line });
  };
}

/** Blocks this thread for `ms` milliseconds (a callback that sleeps, as XPMEM drivers may). */
export function sleepBlocking(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
