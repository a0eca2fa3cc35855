/** Baselines several suites compare with, as tasks: the floor of the primitives the library is built on. */
import { repeat, type Task } from './measure.js';

const words = new Int32Array(new SharedArrayBuffer(64));
let sink = 0;

export const PAIR = 'Atomics.add + Atomics.sub pair';
export const LOAD = 'one Atomics.load';

/** A bare Atomics.add + Atomics.sub pair on one SharedArrayBuffer word: what any reader indicator pays. */
export function atomicsPair(): Task {
  return repeat(PAIR, 1000, () => {
    Atomics.add(words, 0, 1);
    Atomics.sub(words, 0, 1);
  });
}

export const HOLD = "a section's rwlock atomics alone: store + load, store + load";

/**
 * What a section's rwlock does, bare (sync/rwlock.ts enterShared, exitShared): publish a hold
 * and check the seqcount, clear the hold and check it again. The floor of a reader indicator
 * that a killed thread cannot leave behind (its hold is its own word, which the reaper clears).
 */
export function holdPair(): Task {
  return repeat(HOLD, 1000, () => {
    Atomics.store(words, 2, 1);
    sink += Atomics.load(words, 3);
    Atomics.store(words, 2, 0);
    sink += Atomics.load(words, 3);
  });
}

export const WINDOW = "an invalidation's atomics alone: lock, seqcount odd, holders' check, the change, seqcount even, unlock";

/**
 * What an invalidation nobody answers must do in shared memory, bare: take the segment's
 * operation lock, make its seqcount odd, check the holders' words (two spaces), store the
 * change, make the seqcount even, release the lock. No journal, no deadline, no wake-up check.
 */
export function windowAtomics(): Task {
  return repeat(WINDOW, 1000, () => {
    if (Atomics.compareExchange(words, 4, 0, 1) !== 0) return;
    Atomics.add(words, 5, 1);
    sink += Atomics.load(words, 6) + Atomics.load(words, 7);
    Atomics.store(words, 8, sink & 1);
    Atomics.add(words, 5, 1);
    Atomics.store(words, 4, 0);
  });
}

/** One Atomics.load of a SharedArrayBuffer word: what a seqcount's read_retry is. */
export function oneLoad(): Task {
  return repeat(LOAD, 1000, () => {
    sink += Atomics.load(words, 1);
  });
}

/** Keeps measured reads alive: call once after measuring. */
export function keep(value: number): void {
  sink += value;
  if (sink === 0.5) console.log(sink);
}
