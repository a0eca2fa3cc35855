/**
 * When a wait spins before it sleeps (wait.ts spun()). Waking a thread parked on an idle core
 * can cost ~100 µs on a virtual machine, while the answers these waits expect usually come
 * within a few µs; but a spinning thread holds a core, so spinning pays only while the threads
 * that must run to answer fit the cores. Measured on 2 cores (bench/results, and 1 to 16 busy
 * attachers): an ack wait with 4 or more targets, and section entries with 8 or more spaces
 * busy, got slower when they spun. Every function here may run in any thread and never sleeps.
 */
import { availableParallelism } from 'node:os';
import { SP_STATE, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';

/** How long a wait spins before it sleeps, in ms. */
export const SPIN_MS = 0.1;

/** How long a wait for a window's end spins before it sleeps, in ms. */
const WINDOW_SPIN_MS = 0.05;

const CORES = availableParallelism();

/** The spin of a wait for `targets` other threads' answers: none when they outnumber the cores. */
export function spinForAnswers(targets: number): number | undefined {
  return targets <= CORES ? SPIN_MS : undefined;
}

/**
 * The spin of a wait for a window to end (a section entry held off, or a dispatcher whose space
 * acked a start and expects its end): none when more live spaces than twice the cores could be
 * spinning or running (the invalidator would wait for a core).
 */
export function spinForWindow(words: Int32Array, layout: Layout): number | undefined {
  let live = 0;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE && ++live > 2 * CORES) return undefined;
  }
  return WINDOW_SPIN_MS;
}
