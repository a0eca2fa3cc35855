/**
 * The segment's mapping lock (the mmap_lock of an address range), built as a reader indicator
 * that survives the death of a reader.
 *
 * Shared side (access sections): a space publishes "I hold segment S" in one of its own
 * held-section slots (SP_HELD + depth), then reads S's seqcount; an odd seqcount means an
 * exclusive holder is coming, so the reader unpublishes and waits. Exclusive side (VM
 * operations): make the seqcount odd first, then wait until no live space publishes S.
 * Both sides store then load with sequentially consistent Atomics (Dekker), so either the
 * reader sees the odd seqcount or the writer sees the reader's slot.
 *
 * Why not a reader counter: a thread terminated between its increment and its bookkeeping
 * would leave the count wrong forever. A slot belongs to one space, so reaping a dead space
 * simply stops counting its slots: the robust list of Linux's robust futexes, for free.
 */
import { ring } from './doorbell.js';
import {
  SEG_DRAINER, SEG_SEQ, SP_HELD, SP_STATE, SP_WAIT_SEG, SPACE_LIVE, WAIT_GRANTED, WAIT_WANT, slotBase, type Layout,
} from '../segment/layout.js';

/**
 * Publishes a shared hold of segment `seg` in slot `held` and checks the window.
 * Returns false (and unpublishes) when a window is open: the caller must wait for it to close.
 * Called only by the holding space's own thread; never sleeps.
 */
export function enterShared(words: Int32Array, layout: Layout, held: number, seg: number, segBase: number): boolean {
  Atomics.store(words, held, seg + 1);
  if ((Atomics.load(words, segBase + SEG_SEQ) & 1) === 0) return true;
  exitShared(words, layout, held, segBase);
  return false;
}

/**
 * Drops the shared hold in slot `held`; if a window is open, rings the space draining the
 * segment (it may be waiting for exactly this). Called only by the holding space's own thread.
 */
export function exitShared(words: Int32Array, layout: Layout, held: number, segBase: number): void {
  Atomics.store(words, held, 0);
  if ((Atomics.load(words, segBase + SEG_SEQ) & 1) === 0) return;
  const drainer = Atomics.load(words, segBase + SEG_DRAINER) - 1;
  if (drainer >= 0) ring(words, layout, drainer);
}

/**
 * The first live space, other than `except`, holding segment `seg` in any held slot (or
 * granted a hold at a window's end, see sync/doorbell.ts), or -1.
 * Any thread; never sleeps. O(spaces x depth) loads: the price of a robust reader indicator,
 * paid only by VM operations.
 */
export function holderOf(words: Int32Array, layout: Layout, seg: number, except: number): number {
  const { spaces } = layout;
  const depth = layout.caps.depth;
  for (let s = 0; s < spaces.capacity; s++) {
    if (s === except) continue;
    const base = slotBase(spaces, s);
    if (Atomics.load(words, base + SP_STATE) !== SPACE_LIVE) continue;
    for (let d = 0; d < depth; d++) if (Atomics.load(words, base + SP_HELD + d) === seg + 1) return s;
    if (Atomics.load(words, base + SP_WAIT_SEG) === (seg + 1 | WAIT_WANT | WAIT_GRANTED)) return s;
  }
  return -1;
}
