/**
 * Writes a run to bench/results/latest.json, latest.md and latest.svg, and its figures table
 * into the README between the two marker comments.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chartSvg } from './chart.js';
import { figures, footer, markdown } from './markdown.js';
import type { Report } from './report.js';

const RESULTS = new URL('../../../bench/results/', import.meta.url);
const README = new URL('../../../README.md', import.meta.url);
const FROM = '<!-- figures of the last npm run bench -->';
const TO = '<!-- end of figures -->';

/** Replaces the README's figures (between FROM and TO) with this run's; no markers, no change. */
function updateReadme(report: Report): void {
  const text = readFileSync(README, 'utf8');
  const from = text.indexOf(FROM);
  const to = text.indexOf(TO);
  if (from < 0 || to < from) return;
  const table = [...figures(report.rows), '', footer(report.meta)].join('\n');
  writeFileSync(README, `${text.slice(0, from + FROM.length)}\n${table}\n${text.slice(to)}`);
}

/** Writes the three files; returns the markdown. */
export async function publish(report: Report): Promise<string> {
  mkdirSync(RESULTS, { recursive: true });
  const md = markdown(report);
  writeFileSync(new URL('latest.json', RESULTS), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(new URL('latest.md', RESULTS), md);
  writeFileSync(new URL('latest.svg', RESULTS), await chartSvg(report));
  updateReadme(report);
  return md;
}
