/** A whole run: what latest.json holds and latest.md and latest.svg show. */
import { cpus, loadavg } from 'node:os';
import type { Curve } from './curve.js';
import type { Row } from './rows.js';

export interface Meta {
  readonly node: string;
  readonly platform: string;
  readonly cpu: string;
  readonly date: string;
  /** 1-minute load average when the run started and ended (others' work skews figures). */
  readonly load: readonly [number, number];
  readonly seconds: number;
  /** Time budget per task, ms (BENCH_TIME_MS). */
  readonly timeMs: number;
  readonly suites: readonly string[];
}

export interface Report {
  readonly meta: Meta;
  readonly rows: readonly Row[];
  readonly curves: readonly Curve[];
}

/** Starts the run's metadata; call the returned function at the end. */
export function startMeta(timeMs: number, suites: readonly string[]): () => Meta {
  const started = performance.now();
  const load = loadavg()[0]!;
  const cpu = cpus();
  return () => ({
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown cpu'}`,
    date: new Date().toISOString(),
    load: [load, loadavg()[0]!],
    seconds: (performance.now() - started) / 1000,
    timeMs,
    suites,
  });
}
