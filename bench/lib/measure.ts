/**
 * Batched timing on tinybench: one sample runs `batch` operations, so costs far below the
 * timer's resolution are measured; a task's figure is its median sample over `batch` (the
 * median, because the benchmarks share a small machine and a few samples get preempted),
 * pooled over interleaved rounds (see ROUNDS).
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
  /** 90th percentile, nanoseconds per operation. */
  readonly p90: number;
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
  /**
   * Exactly this many samples per task, whatever they take (for tasks whose time is mostly an
   * untimed pause, which a time budget would not count): replaces timeMs and iterations.
   */
  readonly samples?: number;
  /** Warm-up runs of each task before the first round (default 2; 0: none). */
  readonly warmups?: number;
}

export const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);

/**
 * Rounds per measurement: the task list runs ROUNDS times, each task for a share of its time,
 * and each task's samples are pooled over the rounds. A figure and the baseline it is divided
 * by are then sampled across the same stretch of wall-clock time, so a slow minute of a shared
 * host weighs on both instead of on whichever task it happened to hit.
 */
export const ROUNDS = 4;

/** Runs `tasks` in interleaved rounds and returns their timings by name. */
export async function measure(tasks: readonly Task[], budget: Budget = {}): Promise<Map<string, Timing>> {
  const time = budget.samples === undefined ? (budget.timeMs ?? TIME_MS) / ROUNDS : 0;
  const iterations = Math.ceil((budget.samples ?? budget.iterations ?? 16) / ROUNDS);
  const pooled = new Map<string, number[]>(tasks.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const bench = new Bench({
      time,
      iterations,
      warmup: round === 0 && budget.warmups !== 0,
      warmupTime: Math.min(200, time),
      warmupIterations: budget.warmups ?? 2,
      retainSamples: true,
      throws: true,
    });
    for (const t of tasks) bench.add(t.name, t.run, { async: t.async === true });
    await bench.run();
    for (const [i, task] of bench.tasks.entries()) {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`benchmark ${task.name}: ${r.state}${'error' in r ? `: ${String(r.error)}` : ''}`);
      const perOp = (r.latency.samples ?? []).map((ms) => (ms * 1e6) / tasks[i]!.batch);
      pooled.get(task.name)!.push(...perOp);
    }
  }
  return new Map(tasks.map((t) => [t.name, timing(t.name, pooled.get(t.name)!)]));
}

/** The median and 90th percentile of `ns` samples, and the relative margin of error of their mean (95 %, normal approximation). */
export function timing(name: string, ns: number[]): Timing {
  if (ns.length === 0) throw new Error(`benchmark ${name}: no samples`);
  const sorted = [...ns].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const p90 = sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!;
  const mean = ns.reduce((a, b) => a + b, 0) / ns.length;
  const sd = Math.sqrt(ns.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, ns.length - 1));
  return { ns: median, p90, rme: mean === 0 ? 0 : (196 * sd) / Math.sqrt(ns.length) / mean, samples: ns.length };
}

/** Measures one task. */
export async function time(task: Task, budget?: Budget): Promise<Timing> {
  return (await measure([task], budget)).get(task.name)!;
}

/** A task running `op` `batch` times per sample. */
export function repeat(name: string, batch: number, op: () => void): Task {
  return {
    name,
    batch,
    run: () => {
      for (let i = 0; i < batch; i++) op();
    },
  };
}

/** A task awaiting `op` `batch` times per sample, one call after the other. */
export function repeatAsync(name: string, batch: number, op: () => Promise<unknown>): Task {
  return {
    name,
    batch,
    async: true,
    run: async () => {
      for (let i = 0; i < batch; i++) await op();
    },
  };
}

/** One operation per sample, timing only `op`; `prepare` runs before it untimed (tinybench's overriddenDuration). */
export function timedPart(name: string, prepare: () => void, op: () => void): Task {
  return {
    name,
    batch: 1,
    run: () => {
      prepare();
      const t0 = performance.now();
      op();
      return { overriddenDuration: performance.now() - t0 };
    },
  };
}
