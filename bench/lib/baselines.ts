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
