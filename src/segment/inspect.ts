/**
 * How util.inspect shows the handles (Domain, Space, Segment, Access, Attachment, Mapping):
 * `Segment { id: 5, bytes: 64, ..., state: 'live' }`, read with plain atomic loads, never
 * throwing and never taking the domain mutex, so a stale or closed handle inspects as what it is.
 */
import { inspect, type InspectOptions } from 'node:util';
import { SEG_BYTES, SEG_FLAGS, SEGF_SWAPPED, segmentLive, slotBase } from '../layout.js';
import type { Mm } from '../mm.js';

/** The key util.inspect looks up on an object for its own rendering: Symbol.for('nodejs.util.inspect.custom'). */
export const INSPECT: typeof inspect.custom = inspect.custom;

/** The options util.inspect passes to a custom inspect function (named here: its type moves between versions of @types/node). */
export interface HandleInspectOptions extends InspectOptions {
  /** Colors `text` as util.inspect colors a value of kind `styleType`. */
  stylize(text: string, styleType: string): string;
}

/** What a handle is now, as util.inspect shows it. */
export type HandleState = 'live' | 'swapped' | 'stale' | 'removed' | 'released' | 'detached' | 'reaped' | 'closed';

/**
 * A handle as util.inspect shows it: `name { key: value, ... }` on one line, fields whose value
 * is undefined left out; `[name]` when `depth` (what util.inspect passes) is below 0.
 */
export function inspected(name: string, fields: Readonly<Record<string, unknown>>, depth: number, options: HandleInspectOptions): string {
  if (depth < 0) return options.stylize(`[${name}]`, 'special');
  const shown = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}: ${inspect(value, options)}`);
  return `${name} { ${shown.join(', ')} }`;
}

/**
 * A handle on segment slot `slot` of generation `gen`, as space `mm` sees it now: its state
 * ('closed' or 'reaped' when the membership is over; else `ended`, the handle's own end, when
 * given; 'removed' once the slot no longer holds the segment; else 'swapped' or 'live') and, in
 * the last two, the segment's size. Never throws.
 */
export function segmentNow(mm: Mm, slot: number, gen: number, ended?: 'released' | 'detached'): { state: HandleState; bytes: number | undefined } {
  const membership = mm.state();
  if (membership !== 'live') return { state: membership, bytes: undefined };
  if (ended !== undefined) return { state: ended, bytes: undefined };
  const base = slotBase(mm.layout.segments, slot);
  const word = (field: number): number => Atomics.load(mm.words, base + field);
  if (!segmentLive(mm.words, mm.layout, slot, gen)) return { state: 'removed', bytes: undefined };
  return { state: (word(SEG_FLAGS) & SEGF_SWAPPED) !== 0 ? 'swapped' : 'live', bytes: word(SEG_BYTES) };
}
