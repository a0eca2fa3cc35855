/**
 * The spin hint: every spin loop of the library (the mutex's tries, a wait's spin before it
 * sleeps, an idle dispatcher's linger) calls pause() once per turn. It is `Atomics.pause` where
 * the runtime has it (Node 24 and later, Deno, Bun), which tells the core that this thread
 * spins (x86 `PAUSE`): the loop leaves fewer loads in flight, frees the core's pipeline for a
 * sibling hardware thread, and ends without a memory-order flush when the awaited word changes.
 * Where the runtime lacks it (Node 20 and 22) it does nothing. Chosen once, at load: one code
 * path on every runtime. Any thread; never sleeps.
 */

/** `Atomics` with ES2025's `pause`, which a runtime may lack. */
const atomics: typeof Atomics & { pause?: () => void } = Atomics;

/** Hints that the caller spins: `Atomics.pause()`, or nothing where the runtime lacks it. */
export const pause: () => void = typeof atomics.pause === 'function' ? atomics.pause : () => {};
