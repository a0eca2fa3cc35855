/** Writes a run to bench/results/latest.json, latest.md and latest.svg. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { chartSvg } from './chart.js';
import { markdown } from './markdown.js';
import type { Report } from './report.js';

const RESULTS = new URL('../../../bench/results/', import.meta.url);

/** Writes the three files; returns the markdown. */
export async function publish(report: Report): Promise<string> {
  mkdirSync(RESULTS, { recursive: true });
  const md = markdown(report);
  writeFileSync(new URL('latest.json', RESULTS), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(new URL('latest.md', RESULTS), md);
  writeFileSync(new URL('latest.svg', RESULTS), await chartSvg(report));
  return md;
}
