/**
 * Mapped mode: a view held with no lock, like a secondary MMU's mapping under an
 * mmu_interval_notifier. The invalidator never waits for mapped users; it only moves the
 * segment's seqcount, so `retry()` (read_retry) turns true. Writes through a stale view are the
 * user's bug, exactly as with a device that ignores its notifier: they may land in memory that
 * now belongs to someone else. Check `retry()` after each unit of work and `refresh()` when true.
 */
import { SEG_SEQ, slotBase } from '../layout.js';
import type { Mm } from '../mm.js';
import { checkWaitOptions, type WaitOptions } from '../sync/futex.js';
import { readBegin, readRetry } from '../sync/seqcount.js';
import { xpmemError } from '../errors.js';
import type { ViewCache } from './view.js';
import type { Waits } from '../notifier/wait.js';
import type { Bounds } from '../notifier/invalidate.js';
import type { AttachmentSlot } from './verbs.js';
import { INSPECT, inspected, type HandleInspectOptions, type HandleState } from './inspect.js';

/** What a Mapping needs from its attachment. */
export interface MappedAccess {
  /** Validates the attachment and marks it referenced; false when swapped out. */
  check(write: boolean): boolean;
  /** Swaps the segment in (a page fault). May sleep. */
  fault(bounds: Bounds): Waits<void>;
  /** What the attachment is now (util.inspect). Never throws. */
  state(): HandleState;
}

/**
 * Mapped mode (a secondary MMU, mmu_interval_notifier): a view held with no lock, whose
 * staleness the segment's seqcount tells (retry()); refresh() takes a current view. Its methods
 * run in its space's thread only.
 */
export class Mapping {
  readonly #mm: Mm;
  readonly #seqAt: number;
  readonly #views: ViewCache;
  readonly #access: MappedAccess;
  readonly #segId: number;
  readonly #seg: number;
  #seq = 1;
  #view: Uint8Array | undefined;

  /** @internal built by Attachment.map */
  constructor(mm: Mm, a: AttachmentSlot, views: ViewCache, access: MappedAccess, opts?: WaitOptions) {
    this.#mm = mm;
    this.#seqAt = slotBase(mm.layout.segments, a.seg) + SEG_SEQ;
    this.#views = views;
    this.#access = access;
    this.#segId = a.segId;
    this.#seg = a.seg;
    this.refresh(opts);
  }

  /** The mapped bytes as of `seq`; valid only while retry() is false. */
  get view(): Uint8Array {
    return this.#view!;
  }

  /** The seqcount value the view was taken at (read_begin). */
  get seq(): number {
    return this.#seq;
  }

  /** True while nothing was invalidated since the view was taken. One atomic load. */
  get valid(): boolean {
    return !readRetry(this.#mm.words, this.#seqAt, this.#seq);
  }

  /** read_retry: true when the view may be stale and must be refreshed. One atomic load. */
  retry(): boolean {
    return readRetry(this.#mm.words, this.#seqAt, this.#seq);
  }

  /** @internal util.inspect calls this: it shows segment, mapped bytes, seqcount and state ('stale' once retry() is true); never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const attached = this.#access.state();
    const state = (attached === 'live' || attached === 'swapped') && this.retry() ? 'stale' : attached;
    return inspected('Mapping', { segId: this.#segId, length: this.view.length, seq: this.#seq, state }, depth, options);
  }

  /**
   * Takes a fresh view: waits (blocking, answering this space's events) for an open window to
   * close, swaps the segment in when it is swapped out, then reads its place. Throws
   * ERR_XPMEM_REMOVED when it is gone.
   */
  refresh(opts?: WaitOptions): void {
    checkWaitOptions(opts);
    const mm = this.#mm;
    const words = mm.words;
    const bounds = mm.bounds(opts, true);
    for (;;) {
      mm.deliverInline();
      const seq = readBegin(words, this.#seqAt);
      if ((seq & 1) !== 0) {
        mm.runSync(this.#windowEnd(seq, bounds.deadline, bounds.signal));
        continue;
      }
      if (!this.#access.check(false)) {
        mm.runSync(this.#access.fault(bounds));
        continue;
      }
      if (readRetry(words, this.#seqAt, seq)) continue;
      this.#seq = seq;
      this.#view = this.#views.bytes;
      return;
    }
  }

  *#windowEnd(seq: number, deadline: number, signal: AbortSignal | undefined): Waits<void> {
    const words = this.#mm.words;
    yield {
      seg: this.#seg,
      deadline,
      signal,
      until: () => Atomics.load(words, this.#seqAt) !== seq,
      timeout: () => xpmemError('ERR_XPMEM_TIMEOUT', `an invalidation of segment ${this.#segId} stayed open past the deadline`, { segId: this.#segId }),
    };
  }
}
