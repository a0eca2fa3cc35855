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
import { HELD_GRANTED, HELD_WANT, SEG_DRAINER, SEG_SEQ, SEG_WAITERS, SP_HELD, SP_STATE, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';

/**
 * Publishes a shared hold of segment `seg` in held word `held` and checks the window.
 * Returns the (even) seqcount it saw, or -1 when a window is open: the hold is then withdrawn
 * and the word left parked as (seg + 1) | HELD_WANT, asking the window's end to grant it
 * (sync/doorbell.ts); the caller must wait, then retry or take the grant. Called only by the
 * holding space's own thread; never sleeps.
 */
export function enterShared(words: Int32Array, layout: Layout, held: number, seg: number, segBase: number): number {
  Atomics.store(words, held, seg + 1);
  const seq = Atomics.load(words, segBase + SEG_SEQ);
  if ((seq & 1) === 0) return seq;
  leaveShared(words, layout, held, segBase, (seg + 1) | HELD_WANT);
  return -1;
}

/**
 * Drops the shared hold in held word `held`; if a window is open, rings the space draining the
 * segment (it may be waiting for exactly this). Called only by the holding space's own thread.
 */
export function exitShared(words: Int32Array, layout: Layout, held: number, segBase: number): void {
  leaveShared(words, layout, held, segBase, 0);
}

/**
 * Retries an entry parked by enterShared: takes the hold if the window's end granted it, or if
 * no window is open now; else parks again and returns false. Own thread only; never sleeps.
 *
 * While the word is briefly unparked (between the compare-exchange and parking again), a
 * window's end may pass it over: it clears SEG_WAITERS and neither grants nor rings a word it
 * does not see parked. So after parking again the entry sets SEG_WAITERS itself and, if the
 * window closed meanwhile, tries again instead of sleeping on a doorbell nobody will ring (a
 * lost wake-up the protocol's model check found: test/model/README.md).
 */
export function retryShared(words: Int32Array, layout: Layout, held: number, seg: number, segBase: number): boolean {
  const parked = (seg + 1) | HELD_WANT;
  for (;;) {
    if (Atomics.compareExchange(words, held, parked, seg + 1) !== parked) {
      Atomics.store(words, held, seg + 1); // granted: the grant already counted as a hold
      return true;
    }
    if ((Atomics.load(words, segBase + SEG_SEQ) & 1) === 0) return true;
    Atomics.store(words, held, parked);
    Atomics.store(words, segBase + SEG_WAITERS, 1);
    if ((Atomics.load(words, segBase + SEG_SEQ) & 1) === 0) continue; // closed meanwhile: take it
    ringDrainer(words, layout, segBase); // our brief hold may be what a drainer waits for
    return false;
  }
}

function leaveShared(words: Int32Array, layout: Layout, held: number, segBase: number, parked: number): void {
  Atomics.store(words, held, parked);
  if ((Atomics.load(words, segBase + SEG_SEQ) & 1) !== 0) ringDrainer(words, layout, segBase);
}

/** Rings the space draining the segment, if any. */
function ringDrainer(words: Int32Array, layout: Layout, segBase: number): void {
  const drainer = Atomics.load(words, segBase + SEG_DRAINER) - 1;
  if (drainer >= 0) ring(words, layout, drainer);
}

/**
 * The first live space, other than `except`, holding segment `seg` in any held word (a
 * published hold, or one granted at a window's end), or -1.
 * Any thread; never sleeps. O(spaces x depth) loads: the price of a robust reader indicator,
 * paid only by VM operations.
 */
export function holderOf(words: Int32Array, layout: Layout, seg: number, except: number): number {
  const { spaces } = layout;
  const depth = layout.caps.depth;
  const granted = (seg + 1) | HELD_WANT | HELD_GRANTED;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (s === except) continue;
    const base = slotBase(spaces, s);
    if (Atomics.load(words, base + SP_STATE) !== SPACE_LIVE) continue;
    for (let d = 0; d < depth; d++) {
      const v = Atomics.load(words, base + SP_HELD + d);
      if (v === seg + 1 || v === granted) return s;
    }
  }
  return -1;
}
