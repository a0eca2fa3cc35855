/**
 * Page aging (clear_young) in the target's thread: the reclaim clock (vm/reclaim.ts) clears
 * the referenced bits of segments and asks the spaces whose notifiers cover them; each space
 * answers at its next delivery point (Delivery.deliver) with its `referenced` callbacks.
 */
import { SEG_BYTES, SEG_FLAGS, SEG_GEN, SEG_LIVE, SEG_OWNER, SEG_REF, SEG_STATE, SEGF_SWAPPED, SP_AGE, SP_AGED, SP_AGER, idOf, segmentLive, slotBase } from '../layout.js';
import type { ControlBlock } from '../control/control.js';
import { ring } from '../sync/doorbell.js';
import type { LocalNotifier } from './delivery.js';
import type { Range } from './range.js';
import { reportThrown } from './thrown.js';
import { publishCallback, returned } from './busy.js';
import type { Recorder } from '../trace/recorder.js';

/**
 * Answers the reclaim clock's questions asked of space `self` since its last answer (SP_AGE
 * moved): runs the `referenced` callbacks of `notifiers`, records the question answered
 * (SP_AGED) and rings the clock that asked last, which waits for the answers before its next
 * turn. Space `self`'s own thread only; never sleeps.
 */
export function answerAging(cb: ControlBlock, self: number, notifiers: readonly LocalNotifier[], blockable: boolean, trace: Recorder): void {
  const { words, layout } = cb;
  const base = slotBase(layout.spaces, self);
  const asked = Atomics.load(words, base + SP_AGE);
  if (asked === Atomics.load(words, base + SP_AGED)) return;
  age(cb, self, notifiers, blockable, trace);
  Atomics.store(words, base + SP_AGED, asked);
  const clock = Atomics.load(words, base + SP_AGER) - 1;
  if (clock >= 0) ring(words, layout, clock);
}

/**
 * The clock cleared referenced bits of segments these notifiers cover; each `referenced`
 * callback answers for its range, and true sets the bit again (a second chance). Space-wide
 * notifiers answer for every resident segment space `self` owns.
 */
function age(cb: ControlBlock, self: number, notifiers: readonly LocalNotifier[], blockable: boolean, trace: Recorder): void {
  const { words, layout } = cb;
  const { segments } = layout;
  const ask = (n: LocalNotifier, seg: number, offset: number, length: number): void => {
    const base = slotBase(segments, seg);
    if (Atomics.load(words, base + SEG_REF) !== 0 || (Atomics.load(words, base + SEG_FLAGS) & SEGF_SWAPPED) !== 0) return;
    const range: Range = { segId: idOf(segments, seg, Atomics.load(words, base + SEG_GEN)), offset, length, event: 'swap', blockable, signal: NEVER };
    const busy = publishCallback(words, layout, self, 'referenced', seg);
    const span = trace.on ? trace.begin('referenced', { segId: range.segId, event: range.event, blockable }) : undefined;
    try {
      if (n.callbacks.referenced!(range) === true) Atomics.store(words, base + SEG_REF, 1);
    } catch (error) {
      reportThrown(error);
    } finally {
      if (span !== undefined) trace.end(span);
      returned(words, busy, false);
    }
  };
  for (const n of notifiers) {
    if (n.callbacks.referenced === undefined) continue;
    if (n.scope !== null) {
      if (segmentLive(words, layout, n.scope.seg, n.scope.segGen)) ask(n, n.scope.seg, n.scope.offset, n.scope.length);
      continue;
    }
    for (let seg = 0; seg < segments.capacity; seg++) {
      const base = slotBase(segments, seg);
      if (Atomics.load(words, base + SEG_STATE) === SEG_LIVE && Atomics.load(words, base + SEG_OWNER) === self) ask(n, seg, 0, Atomics.load(words, base + SEG_BYTES));
    }
  }
}

/** The signal of a `referenced` question: it is never withdrawn. */
const NEVER = new AbortController().signal;
