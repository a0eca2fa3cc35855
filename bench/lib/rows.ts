/**
 * Figures as rows: a value, the baseline it is compared with (measured in the same run, its
 * absolute value kept beside it), their ratio, and the goal for that ratio.
 */
import type { Timing } from './measure.js';

/** A measured quantity with its unit. */
export interface Quantity {
  readonly value: number;
  /** 'ns/op', 'GB/s', 'bytes', ... */
  readonly unit: string;
  /** Relative margin of error, percent (0 for counted quantities). */
  readonly rme: number;
}

/** A bound on a ratio: `ratio op bound`, e.g. <= 2. */
export interface Goal {
  readonly op: '<=' | '>=';
  readonly bound: number;
  /** How the issue states it when that reads better than the bound, e.g. '>= 20x faster'. */
  readonly text?: string;
  /** 'value': the bound is on the value itself, in the row's unit (e.g. <= 1 ms as 1e6 ns/op), not on the ratio. */
  readonly on?: 'value';
}

export interface Row {
  readonly suite: string;
  readonly figure: string;
  readonly value: number;
  readonly unit: string;
  readonly rme: number;
  readonly baseline: string;
  readonly baselineValue: number;
  readonly baselineUnit: string;
  /** value / baselineValue. */
  readonly ratio: number;
  readonly goal?: Goal;
  /** Absent for rows shown for context only (no goal). */
  readonly met?: boolean;
}

export const atMost = (bound: number, text?: string): Goal => ({ op: '<=', bound, ...(text === undefined ? {} : { text }) });
export const atLeast = (bound: number, text?: string): Goal => ({ op: '>=', bound, ...(text === undefined ? {} : { text }) });

/** A bound on the value itself (in the row's unit), stated as `text`, e.g. valueAtMost(1e6, '<= 1 ms'). */
export const valueAtMost = (bound: number, text: string): Goal => ({ op: '<=', bound, text, on: 'value' });

/** The goal's bound as a ratio to `baselineValue` (where a chart draws it). */
export function ratioBound(goal: Goal, baselineValue: number): number {
  return goal.on === 'value' ? goal.bound / baselineValue : goal.bound;
}

export function goalText(goal: Goal): string {
  return goal.text ?? `${goal.op} ${goal.bound}x`;
}

/** A timing as a quantity in ns/op. */
export function ns(t: Timing): Quantity {
  return { value: t.ns, unit: 'ns/op', rme: t.rme };
}

/** A timing's 90th percentile in ns/op (no margin of error is given for it). */
export function p90(t: Timing): Quantity {
  return { value: t.p90, unit: 'ns/op', rme: 0 };
}

/** A timing of an operation moving `bytes` as a bandwidth in GB/s (bytes per ns). */
export function bandwidth(t: Timing, bytes: number): Quantity {
  return { value: bytes / t.ns, unit: 'GB/s', rme: t.rme };
}

/** A counted quantity (no error). */
export function count(value: number, unit: string): Quantity {
  return { value, unit, rme: 0 };
}

/** One row comparing `own` with `base`. */
export function row(suite: string, figure: string, own: Quantity, baseline: string, base: Quantity, goal?: Goal): Row {
  const ratio = own.value / base.value;
  const measured = goal?.on === 'value' ? own.value : ratio;
  return {
    suite,
    figure,
    value: own.value,
    unit: own.unit,
    rme: own.rme,
    baseline,
    baselineValue: base.value,
    baselineUnit: base.unit,
    ratio,
    ...(goal === undefined ? {} : { goal, met: goal.op === '<=' ? measured <= goal.bound : measured >= goal.bound }),
  };
}
