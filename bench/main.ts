/**
 * Runs the benchmark suites (bench/suites/index.ts) and writes bench/results/latest.json,
 * latest.md and latest.svg. `npm run bench` runs them all; `npm run bench -- section memory`
 * runs those only and prints their table without writing results.
 */
import { bounded } from './lib/bounded.js';
import { markdown } from './lib/markdown.js';
import { TIME_MS } from './lib/measure.js';
import { publish } from './lib/publish.js';
import { startMeta, type Report } from './lib/report.js';
import type { SuiteResult } from './lib/suite.js';
import { suites } from './suites/index.js';

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !suites.some((s) => s.name === name));
if (unknown.length > 0) throw new Error(`no suite ${unknown.join(', ')}; suites: ${suites.map((s) => s.name).join(', ')}`);
const selected = wanted.length === 0 ? suites : suites.filter((s) => wanted.includes(s.name));

const meta = startMeta(
  TIME_MS,
  selected.map((s) => s.name),
);
const results: SuiteResult[] = [];
for (const suite of selected) {
  const t0 = performance.now();
  console.error(`suite ${suite.name}: ${suite.title}`);
  results.push(await bounded(suite.run(), `suite ${suite.name}`, suite.boundMs));
  console.error(`suite ${suite.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const report: Report = { meta: meta(), rows: results.flatMap((r) => r.rows), curves: results.flatMap((r) => r.curves) };
console.log(wanted.length === 0 ? await publish(report) : markdown(report));
