/**
 * latest.svg: a vega-lite chart (compiled to a vega spec, rendered headless by vega's
 * View.toSVG): each figure's ratio to its baseline with its goal, then one log-log panel per
 * scaling curve.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Curve } from './curve.js';
import { ratio } from './format.js';
import type { Report } from './report.js';
import { ratioBound } from './rows.js';

const STATUS = { domain: ['met', 'not met', 'no goal'], range: ['#3a923a', '#d62728', '#a0a0a0'] };

function figuresPanel(report: Report) {
  const names = new Set(report.rows.map((r) => r.figure));
  if (names.size !== report.rows.length) throw new Error('two figures share a name: the chart would draw them as one');
  const values = report.rows.map((r) => ({
    figure: r.figure,
    ratio: r.ratio,
    goal: r.goal === undefined ? null : ratioBound(r.goal, r.baselineValue),
    status: r.met === undefined ? 'no goal' : r.met ? 'met' : 'not met',
    label: ratio(r.ratio),
    end: Math.max(r.ratio, 1),
  }));
  const y = { field: 'figure', type: 'nominal' as const, sort: null, title: null };
  const x = { field: 'ratio', type: 'quantitative' as const, scale: { type: 'log' as const }, title: 'ratio to the baseline (1 = the same)' };
  return {
    title: 'Figures: ratio to a baseline measured in the same run (log scale; black tick: goal)',
    width: 420,
    data: { values },
    layer: [
      { mark: { type: 'bar' as const, height: 12 }, encoding: { y, x, x2: { datum: 1 }, color: { field: 'status', type: 'nominal' as const, scale: STATUS, title: 'goal' } } },
      { mark: { type: 'tick' as const, color: 'black', thickness: 2, size: 18 }, transform: [{ filter: 'isValid(datum.goal)' }], encoding: { y, x: { field: 'goal', type: 'quantitative' as const } } },
      { mark: { type: 'text' as const, align: 'left' as const, dx: 4 }, encoding: { y, x: { field: 'end', type: 'quantitative' as const }, text: { field: 'label' } } },
    ],
  };
}

function curvePanel(c: Curve) {
  const values = c.series.flatMap((s) => s.points.map((p) => ({ series: `${s.name} (log-log slope ${s.slope.toFixed(2)})`, x: p.x, us: p.y / 1000 })));
  return {
    title: c.name,
    width: 300,
    height: 220,
    data: { values },
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative' as const, scale: { type: 'log' as const }, title: c.x },
      y: { field: 'us', type: 'quantitative' as const, scale: { type: 'log' as const }, title: 'µs per operation' },
      color: { field: 'series', type: 'nominal' as const, title: null, legend: { orient: 'bottom' as const, direction: 'vertical' as const, labelLimit: 400 } },
    },
  };
}

/** The vega-lite spec of the whole chart. */
export function chartSpec(report: Report): TopLevelSpec {
  const panels = report.curves.length === 0 ? [] : [{ hconcat: report.curves.map(curvePanel), resolve: { scale: { color: 'independent' as const } } }];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: 'sans-serif', view: { stroke: null }, axis: { labelLimit: 640 }, legend: { labelLimit: 480 } },
    vconcat: [figuresPanel(report), ...panels],
  };
}

/** Renders `report` as SVG text, headless. */
export async function chartSvg(report: Report): Promise<string> {
  const view = new View(parse(compile(chartSpec(report)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
