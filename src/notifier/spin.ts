/**
 * When a wait spins before it sleeps (wait.ts spun()). Waking a thread parked on an idle core
 * costs tens to hundreds of µs on a virtual machine, paid by the waker's system call and by the
 * sleeper: a wait that spins until the answer comes needs no wake-up at all. But a spinning
 * thread holds a core, and the scheduler tends to wake the answering thread on the waker's own
 * core, where it then waits for the spin to end (measured: 400 to 1,200 µs instead of 75 to
 * 150). So a wait spins only while whoever must answer is awake (its space has no wait asleep:
 * SP_PARKED, an adaptive mutex's "the owner is running"), and each kind of wait learns, in each
 * thread, how long its answers take (AdaptiveSpin): it spins up to twice their recent typical
 * time, bounded, and stops spinning while spins keep missing (a loaded machine), until a wait
 * shows answers fast enough again. Waits for more answers than the cores, or while more live
 * spaces than twice the cores could be running, never spin. Every function here may run in any
 * thread and never sleeps.
 */
import { availableParallelism } from 'node:os';
import { SP_PARKED, SP_STATE, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';

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
    if (caught || elapsedMs < this.#maxMs / 2)
      this.#misses = 0; // answers a spin can catch
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

/** SP_PARKED: blocking waits of the space asleep now (a count, the low bits) | IDLE_WAIT. */
const IDLE_WAIT = 1 << 16;

/** Counts a blocking wait of space `space` falling asleep (+1) or waking (-1). Its own thread only; never sleeps. */
export function parking(words: Int32Array, layout: Layout, space: number, delta: 1 | -1): void {
  Atomics.add(words, slotBase(layout.spaces, space) + SP_PARKED, delta);
}

/**
 * Marks space `space` waiting in its event loop (true: it armed an async wait) or running
 * (false: a wait woke, or it delivers events at a section boundary). An armed async wait does
 * not mean the thread sleeps: a thread busy in a loop of sections keeps its dispatcher's wait
 * armed, and its first delivery at a section boundary says it is awake. Its own thread only;
 * never sleeps.
 */
export function idling(words: Int32Array, layout: Layout, space: number, idle: boolean): void {
  const at = slotBase(layout.spaces, space) + SP_PARKED;
  if (idle) Atomics.or(words, at, IDLE_WAIT);
  else Atomics.and(words, at, ~IDLE_WAIT);
}

/** True when space `space` sleeps, as far as it told (parking, idling): answering needs its wake-up first. */
function asleep(words: Int32Array, layout: Layout, space: number): boolean {
  return Atomics.load(words, slotBase(layout.spaces, space) + SP_PARKED) !== 0;
}

/** The spin of a wait for the answers of spaces `targets`: none when one is asleep, or they outnumber the cores. */
export function spinForAnswers(words: Int32Array, layout: Layout, targets: readonly number[]): Spin {
  if (targets.length > CORES) return NO_SPIN;
  for (const t of targets) if (asleep(words, layout, t)) return NO_SPIN;
  return ANSWERS;
}

/**
 * The spin of a section entry waiting for the window that space `closer` will close: none when
 * that space is asleep (-1: unknown), or when more live spaces than twice the cores could be
 * spinning or running (the invalidator would wait for a core).
 */
export function spinForWindow(words: Int32Array, layout: Layout, closer: number): Spin {
  return (closer >= 0 && asleep(words, layout, closer)) || crowded(words, layout) ? NO_SPIN : WINDOW_END;
}

/** The spin of a dispatcher that acked a start and expects the end from space `invalidator` (as spinForWindow). */
export function spinForEnd(words: Int32Array, layout: Layout, invalidator: number): Spin {
  return asleep(words, layout, invalidator) || crowded(words, layout) ? NO_SPIN : END_EXPECTED;
}

/** True when more live spaces than twice the cores could be spinning or running. */
function crowded(words: Int32Array, layout: Layout): boolean {
  let live = 0;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE && ++live > 2 * CORES) return true;
  }
  return false;
}
