/**
 * Domain-wide counters in the control block's stats words (layout.ts H_STATS): bumped with one
 * Atomics.add by whichever thread does the counted thing, read by domain.stats(). Any thread;
 * nothing here sleeps or takes a lock.
 */
import { H_STATS } from './layout.js';

export const ST_FAULTS = 0; // swap-ins done by a section or map() entering a swapped-out segment
export const ST_SWAP_OUTS = 1; // segments swapped out (by swapOut() or reclaim)
export const ST_SWAP_INS = 2; // segments swapped in (by swapIn() or a fault)
export const ST_RECLAIMS = 3; // victims the reclaim clock swapped out
export const ST_INVALIDATIONS = 4; // invalidations that ran (applied or rolled back)
export const ST_COMPACTED = 5; // segments domain.compact() moved
const ST_HIST = 8; // HIST_BUCKETS words: waits by duration, bucket b = [2^(b-1), 2^b) microseconds
const HIST_BUCKETS = 32;

/** Adds `by` to counter `counter` (ST_*). */
export function count(words: Int32Array, counter: number, by = 1): void {
  Atomics.add(words, H_STATS + counter, by);
}

/** Reads counter `counter` (ST_*). */
export function counter(words: Int32Array, counter: number): number {
  return Atomics.load(words, H_STATS + counter);
}

/** Records one library wait that slept for `ms` milliseconds. */
export function recordWait(words: Int32Array, ms: number): void {
  const us = Math.max(0, Math.round(ms * 1000));
  Atomics.add(words, H_STATS + ST_HIST + Math.min(HIST_BUCKETS - 1, 32 - Math.clz32(us)), 1);
}

/** Waits recorded so far, and the upper bounds (ms) of the buckets holding their p50 and p99. */
export function waitPercentiles(words: Int32Array): { waits: number; p50: number; p99: number } {
  const buckets = Array.from({ length: HIST_BUCKETS }, (_, b) => Atomics.load(words, H_STATS + ST_HIST + b));
  const waits = buckets.reduce((a, b) => a + b, 0);
  const at = (q: number): number => {
    if (waits === 0) return 0;
    let seen = 0;
    for (let b = 0; b < HIST_BUCKETS; b++) {
      seen += buckets[b]!;
      if (seen >= q * waits) return 2 ** b / 1000;
    }
    return 2 ** HIST_BUCKETS / 1000;
  };
  return { waits, p50: at(0.5), p99: at(0.99) };
}
