/**
 * The trace's clock: microseconds on the machine's monotonic clock (CLOCK_MONOTONIC, what
 * process.hrtime reads), the same clock in every thread and every process of the machine. Each
 * thread's performance.now() counts from its own start on that clock; the offset is measured
 * once per thread, to well under a microsecond, so a timestamp then costs one performance.now()
 * (a BigInt hrtime read costs several times more). performance.timeOrigin + performance.now()
 * agrees across threads only to the precision of the wall clock read at each thread's start.
 * Any thread; never sleeps.
 */

/** performance.now() of this thread is `now - originMs` on the monotonic clock, in ms. */
const originMs = ((): number => {
  let best = Infinity;
  let origin = 0;
  for (let i = 0; i < 5; i++) {
    const before = performance.now();
    const mono = Number(process.hrtime.bigint()) / 1e6;
    const after = performance.now();
    if (after - before >= best) continue;
    best = after - before;
    origin = mono - (before + after) / 2;
  }
  return origin;
})();

/** Now, in µs on the shared monotonic clock. */
export function nowUs(): number {
  return (performance.now() + originMs) * 1000;
}
