/**
 * domain.compact(): closes holes in the arena by moving segments down, highest first, each into
 * the lowest free range below it that holds it (operations.ts compaction). Every move is one 'migrate'
 * invalidation on the non-blocking path: a segment whose operation lock is taken, on which a
 * section stays held, or whose notifiers do not answer in time is skipped, never waited for at
 * length. Runs in the calling thread; may sleep (async).
 */
import { SEG_BYTES, SEG_FLAGS, SEG_GEN, SEG_LIVE, SEG_STATE, SEG_UNIT, SEGF_SWAPPED, idOf, slotBase } from '../layout.js';
import { invalidate, transacted } from '../notifier/invalidate.js';
import type { Tx } from '../sync/mutex.js';
import { compaction, type SegmentRef } from './operations.js';
import { count, ST_COMPACTED } from '../stats.js';
import type { Mm } from '../mm.js';
import type { WaitOptions } from '../sync/futex.js';

/** What one compact() did. */
export interface CompactReport {
  /** Segments moved. */
  readonly moved: number;
  /** Bytes they hold. */
  readonly movedBytes: number;
  /** Segments that could have moved but were busy or did not answer in time. */
  readonly skipped: number;
}

/** Compacts the arena from space `mm`. May sleep. */
export async function compact(mm: Mm, opts: WaitOptions | undefined): Promise<CompactReport> {
  let moved = 0;
  let movedBytes = 0;
  let skipped = 0;
  const bounds = { ...mm.bounds(opts, false), nonblocking: true };
  for (const ref of await mm.runAsync(transacted(mm, bounds, bounds.deadline, (tx) => residentByOffset(mm, tx)))) {
    if (opts?.signal?.aborted) break;
    const move = compaction(mm.cb, mm.slot, ref);
    try {
      if (!(await mm.runAsync(invalidate(mm, move, bounds)))) continue;
    } catch {
      skipped++;
      continue;
    }
    if (!move.moved()) continue; // its hole was taken meanwhile: it stays, and is not counted
    moved++;
    movedBytes += Atomics.load(mm.words, slotBase(mm.layout.segments, ref.slot) + SEG_BYTES);
    count(mm.words, ST_COMPACTED);
  }
  return { moved, movedBytes, skipped };
}

/** Resident live segments, highest arena offset first. Caller holds the mutex. */
function residentByOffset(mm: Mm, tx: Tx): SegmentRef[] {
  const { segments } = mm.layout;
  const found: { ref: SegmentRef; unit: number }[] = [];
  for (let s = 0; s < segments.capacity; s++) {
    const base = slotBase(segments, s);
    if (tx.get(base + SEG_STATE) !== SEG_LIVE || (tx.get(base + SEG_FLAGS) & SEGF_SWAPPED) !== 0) continue;
    const gen = tx.get(base + SEG_GEN);
    found.push({ ref: { slot: s, gen, id: idOf(segments, s, gen) }, unit: tx.get(base + SEG_UNIT) });
  }
  return found.sort((a, b) => b.unit - a.unit).map((f) => f.ref);
}
