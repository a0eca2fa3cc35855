/**
 * Seqcount over one control-block word (mmu_interval_notifier's invalidate_seq).
 *
 * Odd = an invalidation window is open (between invalidateStart and invalidateEnd). The word is
 * never reset, even when its segment slot is reused, so a stale reader always sees a change.
 * Writers are serialized by the segment's operation lock; readers never write.
 */

/** Opens the window (hold-off begins). Caller holds the segment's operation lock. Never sleeps. */
export function writeBegin(words: Int32Array, seq: number): void {
  Atomics.add(words, seq, 1);
}

/** Closes the window with a new even value. Caller holds the segment's operation lock. */
export function writeEnd(words: Int32Array, seq: number): void {
  Atomics.add(words, seq, 1);
}

/** read_begin: the current value; odd means a window is open and the caller must wait or retry. */
export function readBegin(words: Int32Array, seq: number): number {
  return Atomics.load(words, seq);
}

/** read_retry: true when anything was invalidated since `begin` (or a window was open then). */
export function readRetry(words: Int32Array, seq: number, begin: number): boolean {
  return (begin & 1) !== 0 || Atomics.load(words, seq) !== begin;
}

/** True while a window is open. */
export function inWindow(words: Int32Array, seq: number): boolean {
  return (Atomics.load(words, seq) & 1) !== 0;
}
