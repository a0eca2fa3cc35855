/** latest.md: the figures table, then one table per scaling curve with its verdicts. */
import type { Curve } from './curve.js';
import { quantity, ratio } from './format.js';
import type { Meta, Report } from './report.js';
import { goalText, type Row } from './rows.js';
import { ROUNDS } from './measure.js';

function met(r: Row): string {
  return r.met === undefined ? '' : r.met ? 'yes' : '**no**';
}

export function figures(rows: readonly Row[]): string[] {
  const lines = ['| figure | value | ± % | baseline (same run) | baseline value | ratio | goal | met |', '| --- | ---: | ---: | --- | ---: | ---: | --- | :---: |'];
  for (const r of rows) {
    lines.push(
      `| ${r.figure} | ${quantity(r.value, r.unit)} | ${r.rme.toFixed(1)} | ${r.baseline} | ${quantity(r.baselineValue, r.baselineUnit)} | ${ratio(r.ratio)} | ${r.goal === undefined ? '' : goalText(r.goal)} | ${met(r)} |`,
    );
  }
  const goals = rows.filter((r) => r.met !== undefined);
  lines.push('', `Goals met: ${goals.filter((r) => r.met).length} of ${goals.length}.`);
  return lines;
}

function curve(c: Curve): string[] {
  const xs = c.series[0]!.points.map((p) => p.x.toLocaleString('en'));
  return [
    `### ${c.name}`,
    '',
    `${c.note}.`,
    '',
    `| ${c.x} | ${xs.join(' | ')} | slope (log-log) | r² | last / first | verdict |`,
    `| --- | ${xs.map(() => '---:').join(' | ')} | ---: | ---: | ---: | --- |`,
    ...c.series.map((s) => `| ${s.name} | ${s.points.map((p) => quantity(p.y, s.unit)).join(' | ')} | ${s.slope.toFixed(2)} | ${s.r2.toFixed(2)} | ${ratio(s.growth)} | ${s.verdict} |`),
    '',
  ];
}

export function footer(m: Meta): string {
  return (
    `Node ${m.node}, ${m.platform}, ${m.cpu}; ${m.date}; load average ${m.load[0].toFixed(2)} at the start, ${m.load[1].toFixed(2)} at the end; ` +
    `${m.seconds.toFixed(0)} s; ${m.timeMs} ms per task. Each value is the median of batched tinybench samples per operation, pooled over ${ROUNDS} rounds that interleave a figure with its baseline; ± is the relative margin of error of the mean sample. ` +
    'Ratios compare a value with a baseline measured in the same run (for GB/s a ratio above 1 is faster, for times below 1 is faster).'
  );
}

export function markdown(report: Report): string {
  return ['## Figures', '', ...figures(report.rows), '', ...(report.curves.length === 0 ? [] : ['## Scaling', '', ...report.curves.flatMap(curve)]), footer(report.meta), ''].join('\n');
}
