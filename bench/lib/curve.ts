/**
 * Scaling curves: a cost measured at several sizes, with a least-squares line on log-log axes
 * whose slope says how the cost grows (0 flat, 1 linear).
 */

export interface Point {
  readonly x: number;
  /** Cost, in the series' unit. */
  readonly y: number;
  readonly rme: number;
}

export interface Series {
  readonly name: string;
  readonly unit: string;
  readonly points: readonly Point[];
  /** Slope of log(y) against log(x). */
  readonly slope: number;
  /** Coefficient of determination of that fit. */
  readonly r2: number;
  /** y at the largest x over y at the smallest. */
  readonly growth: number;
  readonly verdict: string;
}

export interface Curve {
  readonly name: string;
  /** What x counts, e.g. 'callback attachers'. */
  readonly x: string;
  readonly series: readonly Series[];
  /** How it was measured (capacities, points chosen and why). */
  readonly note: string;
}

/** Below this slope (in either direction) a curve counts as flat. */
const FLAT = 0.1;

/** Fits `points` and names the verdict. */
export function series(name: string, unit: string, points: readonly Point[]): Series {
  const xs = points.map((p) => Math.log(p.x));
  const ys = points.map((p) => Math.log(p.y));
  const n = points.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const r2 = sxx === 0 || syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  const growth = points[n - 1]!.y / points[0]!.y;
  return { name, unit, points, slope, r2, growth, verdict: verdict(slope, growth) };
}

function verdict(slope: number, growth: number): string {
  if (Math.abs(slope) < FLAT) return growth > 1.5 || growth < 1 / 1.5 ? `flat, noisy (last / first ${growth.toFixed(2)}x)` : 'flat';
  if (slope < 0) return `falls (~x^${slope.toFixed(2)})`;
  const shape = slope > 0.85 && slope < 1.15 ? 'linearly' : slope < 1 ? 'sublinearly' : 'superlinearly';
  return `grows ${shape} (~x^${slope.toFixed(2)})`;
}
