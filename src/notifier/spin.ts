/**
 * When a wait spins before it sleeps (wait.ts spun()). Waking a thread parked on an idle core
 * costs tens to hundreds of µs on a virtual machine, paid by the waker's system call and by the
 * sleeper: a wait that spins until the answer comes needs no wake-up at all. But a spinning
 * thread holds a core, which the threads that must answer may need. So each kind of wait learns,
 * in each thread, how long its answers take (AdaptiveSpin): it spins up to twice their recent
 * typical time, bounded, and stops spinning while spins keep missing (the machine is loaded, or
 * the answers are slow), until a wait shows answers fast enough again. Waits for more answers
 * than the cores, or while more live spaces than twice the cores could be running, never spin.
 * Measured on 2 cores (bench/results). Every function here may run in any thread and never sleeps.
 */
import { availableParallelism } from 'node:os';
import { SP_STATE, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';

/** How a wait spins: how long now, and what it learns from each wait. */
export interface Spin {
  /** ms to spin before sleeping (0: sleep at once). */
  readonly ms: number;
  /** After a wait ended: how long it took (ms), and whether the spin saw the answer. */
  observe(elapsedMs: number, caught: boolean): void;
}

/** A spin of a fixed length. */
export function fixedSpin(ms: number): Spin {
  return { ms, observe() {} };
}

/** Consecutive missed spins after which a wait stops spinning. */
const MISSES = 3;

/** A spin that adapts to how long the answers of one kind of wait take, in one thread. */
export class AdaptiveSpin implements Spin {
  readonly #minMs: number;
  readonly #maxMs: number;
  #typicalMs: number;
  #misses = 0;

  constructor(minMs: number, maxMs: number) {
    this.#minMs = minMs;
    this.#maxMs = maxMs;
    this.#typicalMs = minMs;
  }

  get ms(): number {
    if (this.#misses >= MISSES) return 0;
    return Math.min(this.#maxMs, Math.max(this.#minMs, 2 * this.#typicalMs));
  }

  observe(elapsedMs: number, caught: boolean): void {
    this.#typicalMs += (Math.min(elapsedMs, 4 * this.#maxMs) - this.#typicalMs) / 4;
    if (caught || elapsedMs < this.#maxMs / 2) this.#misses = 0; // answers a spin can catch
    else this.#misses++;
  }
}

/** How long a drain spins for sections already inside to leave. */
export const DRAIN_SPIN = fixedSpin(0.1);

/** Waits for other threads' acks (an invalidation's start phase), in this thread. */
const ANSWERS = new AdaptiveSpin(0.02, 0.5);

/** Section entries waiting for a window's end, in this thread. */
const WINDOW_END = new AdaptiveSpin(0.02, 0.3);

/** A dispatcher that acked a start, waiting for its end, in this thread. */
const END_EXPECTED = new AdaptiveSpin(0.02, 0.3);

const NO_SPIN = fixedSpin(0);

const CORES = availableParallelism();

/** The spin of a wait for `targets` other threads' answers: none when they outnumber the cores. */
export function spinForAnswers(targets: number): Spin {
  return targets <= CORES ? ANSWERS : NO_SPIN;
}

/**
 * The spin of a section entry waiting for a window to end: none when more live spaces than
 * twice the cores could be spinning or running (the invalidator would wait for a core).
 */
export function spinForWindow(words: Int32Array, layout: Layout): Spin {
  return crowded(words, layout) ? NO_SPIN : WINDOW_END;
}

/** The spin of a dispatcher that acked a start and expects its end (as spinForWindow). */
export function spinForEnd(words: Int32Array, layout: Layout): Spin {
  return crowded(words, layout) ? NO_SPIN : END_EXPECTED;
}

/** True when more live spaces than twice the cores could be spinning or running. */
function crowded(words: Int32Array, layout: Layout): boolean {
  let live = 0;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE && ++live > 2 * CORES) return true;
  }
  return false;
}
