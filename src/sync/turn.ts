/**
 * Awaited library calls give the event loop a turn. An uncontended operation settles in
 * microtasks only, so a program awaiting operations in a loop (`while (!done) await
 * seg.migrate()`, with `done` set by a worker's message) would never let a message, timer or
 * I/O callback run. Every awaited call ends with turn(), which costs a clock read while the
 * loop turns on its own, and yields one macrotask once it has not turned for TURN_MS.
 * Per thread (module state); never blocks.
 */

/** Continuous microtask-only use after which an awaited call yields a macrotask. */
const TURN_MS = 4;

/** When the marker now pending was scheduled (a setImmediate that notes the loop turned), or -1. */
let pendingSince = -1;

function turned(): void {
  pendingSince = -1;
}

/**
 * Undefined while the event loop turns on its own; else a promise that resolves in the next
 * macrotask. Each call leaves a marker for the loop's next turn: while one is still pending
 * TURN_MS after it was left, no macrotask has run since, and the caller yields.
 */
export function turn(): Promise<void> | undefined {
  const now = performance.now();
  if (pendingSince < 0) {
    pendingSince = now;
    setImmediate(turned);
    return undefined;
  }
  if (now - pendingSince < TURN_MS) return undefined;
  return new Promise((resolve) => setImmediate(resolve)); // the marker runs first, in the same turn
}
