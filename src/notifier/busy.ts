/**
 * What callback a space runs now, published in two of its words (SP_CALLBACK, SP_CALLBACK_SINCE)
 * so that an operation waiting for it can say so (slow.ts): the callback's kind and segment, and
 * since when (Date.now(), low 32 bits: a wait is timed to the ms, and differences survive the
 * wrap). Written by the space's own thread around each record's callbacks; read by any thread.
 * Never sleeps; two atomic exchanges and a clock read per record's callbacks.
 */
import { SP_CALLBACK, SP_CALLBACK_SINCE, slotBase, type Layout } from '../layout.js';

/** The callbacks a space may be running, as SP_CALLBACK's low three bits say. */
const CALLBACKS = ['', 'invalidateStart', 'invalidateEnd', 'release', 'referenced'] as const;

/** A callback's name, as CALLBACKS lists it. */
export type CallbackName = Exclude<(typeof CALLBACKS)[number], ''>;

/** What a space was running before a callback began (restored when it returns). */
export interface Busy {
  readonly at: number;
  readonly mine: number;
  readonly was: number;
  readonly wasSince: number;
}

/** Publishes that space `slot` runs no callback (a new membership of the slot). Its own thread only. */
export function idle(words: Int32Array, layout: Layout, slot: number): void {
  const at = slotBase(layout.spaces, slot) + SP_CALLBACK;
  Atomics.store(words, at, 0);
  Atomics.store(words, at + SP_CALLBACK_SINCE - SP_CALLBACK, 0);
}

/** Publishes that space `slot` runs callback `name` for segment slot `seg`. Its own thread only. */
export function publishCallback(words: Int32Array, layout: Layout, slot: number, name: CallbackName, seg: number): Busy {
  const at = slotBase(layout.spaces, slot) + SP_CALLBACK;
  const mine = (seg + 1) * 8 + CALLBACKS.indexOf(name);
  const was = Atomics.exchange(words, at, mine);
  const wasSince = Atomics.exchange(words, at + SP_CALLBACK_SINCE - SP_CALLBACK, Date.now() | 0);
  return { at, mine, was, wasSince };
}

/**
 * The callback's synchronous run returned: the space runs again what it ran before. With
 * `pending` (it returned a promise), what it published stays until done() unless something else
 * ran meanwhile. Its own thread only.
 */
export function returned(words: Int32Array, busy: Busy, pending: boolean): void {
  if (pending && busy.was === 0) return;
  Atomics.store(words, busy.at, busy.was);
  Atomics.store(words, busy.at + SP_CALLBACK_SINCE - SP_CALLBACK, busy.wasSince);
}

/** The callback's promise settled: nothing runs for it any more (unless something else was published since). */
export function settled(words: Int32Array, busy: Busy): void {
  Atomics.compareExchange(words, busy.at, busy.mine, 0);
}

/** What space `slot` runs now: a callback, its segment slot and how long it has run (ms), or undefined. Any thread. */
export function runningIn(words: Int32Array, layout: Layout, slot: number): { name: CallbackName; seg: number; ms: number } | undefined {
  const at = slotBase(layout.spaces, slot) + SP_CALLBACK;
  const v = Atomics.load(words, at);
  if (v === 0) return undefined;
  const ms = ((Date.now() | 0) - Atomics.load(words, at + SP_CALLBACK_SINCE - SP_CALLBACK)) | 0;
  return { name: CALLBACKS[v & 7] as CallbackName, seg: (v >> 3) - 1, ms };
}
