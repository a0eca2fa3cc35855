/**
 * Batched timing on tinybench: one sample runs `batch` operations, so costs far below the
 * timer's resolution are measured; a task's figure is its median sample over `batch` (the
 * median, because the benchmarks share a small machine and a few samples get preempted).
 */
import { Bench } from 'tinybench';

/** One timed task. */
export interface Task {
  readonly name: string;
  /** Operations one call of `run` performs. */
  readonly batch: number;
  /** Runs `batch` operations; an async task must say so (tinybench would call it to find out). */
  readonly run: () => unknown;
  readonly async?: boolean;
}

/** A measured cost. */
export interface Timing {
  /** Median nanoseconds per operation. */
  readonly ns: number;
  /** Relative margin of error of the mean sample, percent. */
  readonly rme: number;
  readonly samples: number;
}

/** Per-run budget; BENCH_TIME_MS scales every suite's time (a quick look: BENCH_TIME_MS=100). */
export interface Budget {
  /** Time per task in ms (default BENCH_TIME_MS or 1000). */
  readonly timeMs?: number;
  /** Minimum samples per task (default 16). */
  readonly iterations?: number;
}

export const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);

/** Runs `tasks` one after another and returns their timings by name. */
export async function measure(tasks: readonly Task[], budget: Budget = {}): Promise<Map<string, Timing>> {
  const time = budget.timeMs ?? TIME_MS;
  const bench = new Bench({ time, iterations: budget.iterations ?? 16, warmupTime: Math.min(200, time / 2), warmupIterations: 2, throws: true });
  for (const t of tasks) bench.add(t.name, t.run, { async: t.async === true });
  await bench.run();
  const timings = new Map<string, Timing>();
  for (const [i, task] of bench.tasks.entries()) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`benchmark ${task.name}: ${r.state}${'error' in r ? `: ${String(r.error)}` : ''}`);
    timings.set(task.name, { ns: (r.latency.p50 * 1e6) / tasks[i]!.batch, rme: r.latency.rme, samples: r.latency.samplesCount });
  }
  return timings;
}

/** Measures one task. */
export async function time(task: Task, budget?: Budget): Promise<Timing> {
  return (await measure([task], budget)).get(task.name)!;
}

/** A task running `op` `batch` times per sample. */
export function repeat(name: string, batch: number, op: () => void): Task {
  return { name, batch, run: () => { for (let i = 0; i < batch; i++) op(); } };
}

/** One operation per sample, timing only `op`; `prepare` runs before it untimed (tinybench's overriddenDuration). */
export function timedPart(name: string, prepare: () => void, op: () => void): Task {
  return {
    name, batch: 1,
    run: () => {
      prepare();
      const t0 = performance.now();
      op();
      return { overriddenDuration: performance.now() - t0 };
    },
  };
}
