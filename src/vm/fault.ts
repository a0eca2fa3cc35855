/**
 * Page faults: a section or map() that finds its segment swapped out swaps it back in,
 * in the entering thread, as one 'swap' invalidation (reclaiming first under memoryLimit).
 * Threads faulting the same segment at once queue on its operation lock; the first swaps it
 * in and the others find it resident (prepare() answers null): one swap-in, not several.
 * May sleep (yielded waits); the caller holds no section on the segment.
 */
import type { Bounds } from '../notifier/invalidate.js';
import { invalidate } from '../notifier/invalidate.js';
import type { Waits } from '../notifier/wait.js';
import { count, ST_FAULTS } from '../stats.js';
import { faultChannel, type FaultMessage } from '../diagnostics.js';
import { idOf, SEG_BYTES, slotBase } from '../layout.js';
import { reclaiming } from './reclaim.js';
import { swapIn, type SegmentRef } from './operations.js';
import type { Mm } from '../mm.js';

/** Swaps segment `s` in for this thread (unless another thread already did). May sleep. */
export function* faultIn(mm: Mm, s: SegmentRef, bounds: Bounds): Waits<void> {
  const began = performance.now();
  const ran = yield* reclaiming(mm, s.slot, bounds, () => invalidate(mm, { ...swapIn(mm.cb, mm.slot, s), name: 'fault' }, bounds));
  if (!ran) return;
  count(mm.words, ST_FAULTS);
  if (faultChannel.hasSubscribers) {
    const bytes = Atomics.load(mm.words, slotBase(mm.layout.segments, s.slot) + SEG_BYTES);
    faultChannel.publish({ segId: s.id, space: idOf(mm.layout.spaces, mm.slot, mm.gen), bytes, durationMs: performance.now() - began } satisfies FaultMessage);
  }
}
