/**
 * Floor 7 of src/ (docs/LAYERS.md), segment/: XPMEM's verbs (make, get, attach, detach,
 * release, remove) and the handles they give users: Space, Segment (this file), Access,
 * Attachment, Mapping, views, and the task scopes that release them. Uses floors 1 to 6.
 *
 * Segment: the owner's handle on memory it made (xpmem_make). Its VM operations each run one
 * invalidation (notifier/invalidate.ts); async forms wait without blocking, sync forms block
 * the thread (and refuse with ERR_XPMEM_WOULD_DEADLOCK where they would wait for themselves).
 */
import { checkIndex, checkOneOf } from '../errors.js';
import { MAX_SEGMENT_BYTES, PERMIT_NONE, PERMIT_RO, PERMIT_RW, SEG_BYTES, SEG_PERMIT, SEG_PROT, slotBase } from '../layout.js';
import type { Mm } from '../mm.js';
import { checkWaitOptions, type WaitOptions } from '../sync/futex.js';
import { invalidate, type Bounds, type Operation } from '../notifier/invalidate.js';
import type { Waits } from '../notifier/wait.js';
import { checkSegment, migration, protection, quickRemoval, removal, resizing, swapIn, swapOut, swappedOut, type SegmentRef } from '../vm/operations.js';
import { reclaiming } from '../vm/reclaim.js';
import { getAccess, type AttachOptions } from './access.js';
import type { Attachment } from './attachment.js';
import { INSPECT, inspected, type HandleInspectOptions, segmentNow } from './inspect.js';

/** Protection and permit names. */
export type Permit = 'none' | 'ro' | 'rw';

export const PERMITS: readonly Permit[] = ['none', 'ro', 'rw'];

/** What make() accepts (the wait options bound a reclaim under memoryLimit). */
export interface MakeOptions extends WaitOptions {
  /** What others may get(): 'rw' (default), 'ro' or 'none' (owner only). */
  permit?: Permit;
  /** May be swapped out under memoryLimit (default true). */
  swappable?: boolean;
  /** A label for maps(). */
  name?: string;
}

/**
 * The owner's handle on memory it made (xpmem_make): its id is what others get() and attach;
 * its VM operations (remove, migrate, resize, protect, swap) each run one invalidation. Its
 * methods run in the owner's thread only.
 */
export class Segment {
  readonly #mm: Mm;
  readonly #ref: SegmentRef;
  /** A label given at make(), or ''. */
  readonly name: string;

  /** @internal built by Space.make */
  constructor(mm: Mm, ref: SegmentRef, name: string) {
    this.#mm = mm;
    this.#ref = ref;
    this.name = name;
  }

  /** The segment id (segid): a number to send to other spaces. */
  get id(): number {
    return this.#ref.id;
  }

  /** Current size in bytes. */
  get bytes(): number {
    checkSegment(this.#mm.cb, this.#ref);
    return this.#word(SEG_BYTES);
  }

  /** Current protection. */
  get protection(): Permit {
    checkSegment(this.#mm.cb, this.#ref);
    return PERMITS[this.#word(SEG_PROT)]!;
  }

  /** Word `field` of the segment's slot, loaded atomically (unchecked: the slot may hold another segment now). */
  #word(field: number): number {
    return Atomics.load(this.#mm.words, slotBase(this.#mm.layout.segments, this.#ref.slot) + field);
  }

  /** @internal util.inspect calls this: it shows id, name, size, permit, protection and state; never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const { state, bytes } = segmentNow(this.#mm, this.#ref.slot, this.#ref.gen);
    const permit = (field: number): Permit | undefined => (bytes === undefined ? undefined : PERMITS[this.#word(field)]);
    return inspected('Segment', { id: this.id, name: this.name || undefined, bytes, permit: permit(SEG_PERMIT), protection: permit(SEG_PROT), state }, depth, options);
  }

  /**
   * The owner's own view of this memory: a 'rw' attachment of `range` (default: all of it) that
   * owns its permit, so detach() (or `using att = seg.attach()`) releases both.
   */
  attach(range?: AttachOptions): Attachment {
    return getAccess(this.#mm, this.id, true).attachOwning(range);
  }

  /**
   * Revokes every attachment and frees the memory (xpmem_remove). One invalidation; none when
   * nobody but the owner could observe the segment (no permit held, no owner notifier). Such a
   * segment, with no other VM operation on it, is removed at once, without the invalidation's
   * machinery, when the domain mutex is free (it is never waited for here: the event loop is
   * never blocked).
   */
  remove(opts?: WaitOptions): Promise<void> {
    try {
      if (this.#quickly(opts, 0)) return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#async(() => removal(this.#mm.cb, this.#mm.slot, this.#ref, 'remove'), opts);
  }

  /**
   * remove(), blocking the thread. A segment nobody but its owner could observe, with no other
   * VM operation on it, is removed at once, without the invalidation's machinery.
   */
  removeSync(opts?: WaitOptions): void {
    if (this.#quickly(opts, opts?.deadlineMs ?? this.#mm.cb.deadlineMs)) return;
    this.#sync(() => removal(this.#mm.cb, this.#mm.slot, this.#ref, 'remove'), opts);
  }

  /**
   * The quick removal (vm/operations.ts quickRemoval), waiting for the domain mutex at most
   * `patienceMs` (0: only if it is free). True if it removed the segment. May sleep on the mutex.
   */
  #quickly(opts: WaitOptions | undefined, patienceMs: number): boolean {
    checkWaitOptions(opts);
    this.#mm.checkLive();
    return quickRemoval(this.#mm.cb, this.#mm.slot, this.#ref, patienceMs);
  }

  /** Moves the bytes to another arena range. One invalidation; nothing written is lost. */
  migrate(opts?: WaitOptions): Promise<void> {
    return this.#async(() => migration(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /** migrate(), blocking the thread. */
  migrateSync(opts?: WaitOptions): void {
    this.#sync(() => migration(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /** Grows (new bytes read as zero) or shrinks (attachments past the end become unusable). */
  resize(bytes: number, opts?: WaitOptions): Promise<void> {
    return this.#async(() => resizing(this.#mm.cb, this.#mm.slot, this.#ref, checkBytes(bytes)), opts);
  }

  /** resize(), blocking the thread. */
  resizeSync(bytes: number, opts?: WaitOptions): void {
    this.#sync(() => resizing(this.#mm.cb, this.#mm.slot, this.#ref, checkBytes(bytes)), opts);
  }

  /** Changes what sections may do, for every attacher and the owner (mprotect). */
  protect(prot: Permit, opts?: WaitOptions): Promise<void> {
    return this.#async(() => protection(this.#mm.cb, this.#mm.slot, this.#ref, checkPermit('prot', prot)), opts);
  }

  /** protect(), blocking the thread. */
  protectSync(prot: Permit, opts?: WaitOptions): void {
    this.#sync(() => protection(this.#mm.cb, this.#mm.slot, this.#ref, checkPermit('prot', prot)), opts);
  }

  /**
   * Writes the bytes to a swap file and frees the arena range (one invalidation); the next
   * section or map() swaps them back in. ERR_XPMEM_PERMISSION for a segment made with
   * `swappable: false`; ERR_XPMEM_SWAP_IO (data kept resident) when the file cannot be written.
   * A no-op when already swapped out.
   */
  swapOut(opts?: WaitOptions): Promise<void> {
    return this.#async(() => swapOut(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /** swapOut(), blocking the thread. */
  swapOutSync(opts?: WaitOptions): void {
    this.#sync(() => swapOut(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /**
   * Reads the bytes back from the swap file (one invalidation), reclaiming others under
   * memoryLimit. ERR_XPMEM_SWAP_IO when the file cannot be read (it stays swapped out; a missing
   * or resized file means its data is lost). A no-op when resident.
   */
  swapIn(opts?: WaitOptions): Promise<void> {
    return this.#async(() => swapIn(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /** swapIn(), blocking the thread. */
  swapInSync(opts?: WaitOptions): void {
    this.#sync(() => swapIn(this.#mm.cb, this.#mm.slot, this.#ref), opts);
  }

  /**
   * remove(), for `await using seg = space.make(bytes)`: a no-op when the segment is already
   * removed, or its domain closed (which freed it with the rest).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.remove();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'ERR_XPMEM_REMOVED' && code !== 'ERR_XPMEM_CLOSED') throw error;
    }
  }

  /** True while the bytes are in the swap file. */
  get swapped(): boolean {
    checkSegment(this.#mm.cb, this.#ref);
    return swappedOut(this.#mm.cb, this.#ref);
  }

  async #async(build: () => Operation, opts: WaitOptions | undefined): Promise<void> {
    checkWaitOptions(opts);
    const op = build();
    this.#mm.checkLive();
    this.#mm.callBegan(); // in flight until it settles: an opener's close() waits for it
    try {
      await this.#mm.runAsync(this.#run(op, this.#mm.bounds(opts, false)));
    } finally {
      this.#mm.callEnded();
    }
  }

  #sync(build: () => Operation, opts: WaitOptions | undefined): void {
    checkWaitOptions(opts);
    const op = build();
    this.#mm.checkLive();
    this.#mm.runSync(this.#run(op, this.#mm.bounds(opts, true)));
  }

  /** The operation as one invalidation, reclaiming others first when it needs memory over memoryLimit. */
  #run(op: Operation, bounds: Bounds): Waits<boolean> {
    return reclaiming(this.#mm, this.#ref.slot, bounds, () => invalidate(this.#mm, op, bounds));
  }
}

/**
 * Validates a segment size: 1 to 2^31 - 1 bytes. Sizes live in 32-bit control-block words; a
 * larger one would wrap (a swapped-out segment needs no arena, so no allocation refuses it).
 */
export function checkBytes(bytes: unknown): number {
  return checkIndex('bytes', bytes, 1, MAX_SEGMENT_BYTES);
}

/** Validates a permit name and returns its PERMIT_* value. */
export function checkPermit(name: string, value: unknown): number {
  const p = checkOneOf(name, value, PERMITS);
  return p === 'rw' ? PERMIT_RW : p === 'ro' ? PERMIT_RO : PERMIT_NONE;
}
