/**
 * Shared by the benchmark suites: runs batched tinybench tasks (one sample = BATCH operations,
 * so per-operation costs far below the timer's resolution are measured), expresses each figure
 * as a ratio to a baseline measured in the same run, and writes JSON plus a markdown table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Bench } from 'tinybench';

/** Operations per sample. */
export const BATCH = 1000;

/** One figure: a task, the baseline it is compared with, and the goal for the ratio. */
export interface Figure {
  readonly name: string;
  /** Runs BATCH operations. */
  readonly run: () => void;
  /** Name of the baseline figure (itself for a baseline). */
  readonly baseline: string;
  /** A human statement of the goal, e.g. '<= 2x'. */
  readonly goal?: string;
}

export interface Row {
  readonly name: string;
  readonly nsPerOp: number;
  readonly rme: number;
  readonly baseline: string;
  readonly baselineNsPerOp: number;
  readonly ratio: number;
  readonly goal?: string;
}

/** Runs `figures` and returns one row per figure. */
export async function measure(figures: readonly Figure[], timeMs = 1000): Promise<Row[]> {
  const bench = new Bench({ time: timeMs, warmup: true });
  for (const f of figures) bench.add(f.name, f.run);
  await bench.run();
  const ns = new Map<string, { nsPerOp: number; rme: number }>();
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`benchmark ${task.name} ${r.state}: ${'error' in r ? String(r.error) : ''}`);
    ns.set(task.name, { nsPerOp: (r.latency.mean * 1e6) / BATCH, rme: r.latency.rme });
  }
  return figures.map((f) => {
    const own = ns.get(f.name)!;
    const base = ns.get(f.baseline)!;
    return { name: f.name, ...own, baseline: f.baseline, baselineNsPerOp: base.nsPerOp, ratio: own.nsPerOp / base.nsPerOp, goal: f.goal };
  });
}

/** A markdown table of `rows`. */
export function table(rows: readonly Row[]): string {
  const lines = ['| figure | ns/op | ± % | baseline (same run) | baseline ns/op | ratio | goal |', '| --- | ---: | ---: | --- | ---: | ---: | --- |'];
  for (const r of rows) {
    lines.push(`| ${r.name} | ${r.nsPerOp.toFixed(1)} | ${r.rme.toFixed(1)} | ${r.baseline} | ${r.baselineNsPerOp.toFixed(1)} | ${r.ratio.toFixed(2)}x | ${r.goal ?? ''} |`);
  }
  return lines.join('\n');
}

/** Writes bench/results/<suite>.json and .md and prints the table. */
export function publish(suite: string, rows: readonly Row[]): void {
  const dir = new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const meta = { suite, node: process.version, platform: `${process.platform} ${process.arch}`, date: new Date().toISOString(), batch: BATCH };
  writeFileSync(new URL(`${suite}.json`, dir), `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  const md = `## ${suite}\n\n${table(rows)}\n\nNode ${process.version}, ${meta.platform}, ${meta.date}; each sample runs ${BATCH} operations.\n`;
  writeFileSync(new URL(`${suite}.md`, dir), md);
  console.log(md);
}
