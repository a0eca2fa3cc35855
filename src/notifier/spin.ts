/**
 * When a wait spins before it sleeps (wait.ts spun()). Waking a thread parked on an idle core
 * costs tens to hundreds of µs on a virtual machine, paid by the waker's system call and by the
 * sleeper: a wait that spins until the answer comes needs no wake-up at all. But a spinning
 * thread holds a core, and the scheduler tends to wake the answering thread on the waker's own
 * core, where it then waits for the spin to end (measured: 400 to 1,200 µs instead of 75 to
 * 150). So a wait spins only while whoever must answer is awake (its space has no wait asleep:
 * SP_PARKED, an adaptive mutex's "the owner is running"), and each kind of wait learns, in each
 * thread, how long its answers take (AdaptiveSpin): it spins up to twice their recent typical
 * time, bounded, and stops spinning while answers keep coming late (a loaded machine), until a
 * wait shows answers fast enough again. Operations back to back get one exception, which brings
 * both threads into a run where neither sleeps: the invalidator spins briefly while its target
 * wakes (spinForAnswers), marks itself spinning for the acks (the target then spins for the
 * end: spinForEnd), and the target spins for the next event after the end (spinForNext). Waits
 * for more answers than the cores never spin; window waits stop while more live spaces than
 * twice the cores could be running, the target's spins and the exception while more than the
 * cores could. Every function here may run in any thread and never sleeps.
 */
import { availableParallelism } from 'node:os';
import { SP_PARKED, SP_STATE, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';

/** How a wait spins: how long now, and what it learns from each wait. */
export interface Spin {
  /** ms to spin before sleeping (0: sleep at once). */
  readonly ms: number;
  /** After a wait ended: how long it took (ms) until its answer, caught while spinning or not. */
  observe(elapsedMs: number): void;
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

  observe(elapsedMs: number): void {
    this.#typicalMs += (Math.min(elapsedMs, 4 * this.#maxMs) - this.#typicalMs) / 4;
    // Answers a spin catches cheaply; one caught late (a loaded machine: the answering thread
    // waited for a core, maybe behind this spin) counts as a miss.
    if (elapsedMs < this.#maxMs / 2) this.#misses = 0;
    else this.#misses++;
  }
}

/** How long a drain spins for sections already inside to leave. */
export const DRAIN_SPIN = fixedSpin(0.1);

/** Waits for other threads' acks (an invalidation's start phase), in this thread. */
const ANSWERS = new AdaptiveSpin(0.02, 0.5);

/** The same, back to back, while a target is asleep: it answers once woken, within about a wake-up. */
const WAKING_ANSWERS = new AdaptiveSpin(0.02, 0.1);

/** A wait for answers that begins within this long of the last one's end comes back to back. */
const BACK_TO_BACK_MS = 0.1;

/** When this thread last saw every answer of an invalidation's start phase (performance.now()). */
let answeredAt = -Infinity;

/** Section entries waiting for a window's end, in this thread. */
const WINDOW_END = new AdaptiveSpin(0.02, 0.3);

/** A dispatcher that acked a start, waiting for its end, in this thread. */
const END_EXPECTED = new AdaptiveSpin(0.02, 0.3);

/** A dispatcher that delivered everything, waiting for the next event (back to back), in this thread. */
const NEXT_EXPECTED = new AdaptiveSpin(0.02, 0.1);

const NO_SPIN = fixedSpin(0);

const CORES = availableParallelism();

/** SP_PARKED: blocking waits of the space asleep now (a count, the low bits) | IDLE_WAIT | SPINNING. */
const IDLE_WAIT = 1 << 16;
const SPINNING = 1 << 17;

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
  mark(words, layout, space, IDLE_WAIT, idle);
}

/**
 * Marks space `space` as an invalidator that rang its targets and spins for their acks (true),
 * or done (false): an ack reaches it without a wake-up while it does not sleep. Its own thread
 * only; never sleeps.
 */
export function spinning(words: Int32Array, layout: Layout, space: number, on: boolean): void {
  mark(words, layout, space, SPINNING, on);
}

/** Sets (`on`) or clears flag `bit` of space `space`'s SP_PARKED. Never sleeps. */
function mark(words: Int32Array, layout: Layout, space: number, bit: number, on: boolean): void {
  const at = slotBase(layout.spaces, space) + SP_PARKED;
  if (on) Atomics.or(words, at, bit);
  else Atomics.and(words, at, ~bit);
}

/** True when space `space` sleeps, as far as it told (parking, idling): answering needs its wake-up first. */
function asleep(words: Int32Array, layout: Layout, space: number): boolean {
  return (Atomics.load(words, slotBase(layout.spaces, space) + SP_PARKED) & ~SPINNING) !== 0;
}

/** Notes that this thread's invalidation saw every answer of its start phase (spinForAnswers). Never sleeps. */
export function answered(): void {
  answeredAt = performance.now();
}

/**
 * The spin of a wait for the answers of spaces `targets`: none when they outnumber the cores,
 * or when one is asleep, unless this thread's previous invalidation got its answers just before
 * and every live space fits a core (back to back: a short spin while the target wakes brings
 * both threads into a run where neither sleeps, see spinForEnd and spinForNext).
 */
export function spinForAnswers(words: Int32Array, layout: Layout, targets: readonly number[]): Spin {
  if (targets.length > CORES) return NO_SPIN;
  for (const t of targets) if (asleep(words, layout, t)) return performance.now() - answeredAt > BACK_TO_BACK_MS || crowded(words, layout, CORES) ? NO_SPIN : WAKING_ANSWERS;
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

/**
 * True when space `invalidator` spins for the acks of its invalidation now and is not asleep:
 * an ack reaches it without a wake-up, so it is not woken onto the acking thread's core, and
 * goes on to the end at once. Read before the ack (the invalidator stops spinning when it sees it).
 */
export function spinsForAcks(words: Int32Array, layout: Layout, invalidator: number): boolean {
  return Atomics.load(words, slotBase(layout.spaces, invalidator) + SP_PARKED) === SPINNING;
}

/**
 * The spin of a dispatcher that acked starts and expects their ends: only when every invalidator
 * spun for the acks when they were acked (`spun`, spinsForAcks), and not while more live spaces
 * than the cores could be spinning (each spinner needs a core of its own).
 */
export function spinForEnd(words: Int32Array, layout: Layout, spun: boolean): Spin {
  return !spun || crowded(words, layout, CORES) ? NO_SPIN : END_EXPECTED;
}

/**
 * The spin of a dispatcher that has delivered every event and nothing in flight, before it
 * sleeps: operations that come back to back then find it awake (no wake-up on either side),
 * and those that come now and then find it asleep after a few misses. None while more live
 * spaces than the cores could be spinning.
 */
export function spinForNext(words: Int32Array, layout: Layout): Spin {
  return crowded(words, layout, CORES) ? NO_SPIN : NEXT_EXPECTED;
}

/** True when more than `limit` live spaces could be spinning or running. */
function crowded(words: Int32Array, layout: Layout, limit = 2 * CORES): boolean {
  let live = 0;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE && ++live > limit) return true;
  }
  return false;
}
