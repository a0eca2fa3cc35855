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

/** When the event loop last ran our marker (a macrotask), and whether one is scheduled. */
let lastTurn = performance.now();
let marking = false;

function turned(): void {
  marking = false;
  lastTurn = performance.now();
}

/** Undefined while the event loop turns on its own; else a promise that resolves in the next macrotask. */
export function turn(): Promise<void> | undefined {
  if (!marking) {
    marking = true;
    setImmediate(turned); // notes the loop's next turn
  }
  if (performance.now() - lastTurn < TURN_MS) return undefined;
  return new Promise((resolve) => setImmediate(resolve));
}
