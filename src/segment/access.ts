/**
 * Access: a permit to a segment (xpmem_get's apid), from which ranges are attached. Release it
 * when done (release(), or `using`): an attachment made by attachOwning() does it on detach.
 * Inside a pool task, the task scope releases it when the task settles, unless it was got with
 * { keep: true }; what a kept access attaches is kept with it.
 */
import { checkIndex, checkOptions, xpmemError } from '../errors.js';
import type { Mm } from '../mm.js';
import { Attachment } from './attachment.js';
import { attachRange, getGrant, releaseGrant, type GrantSlot } from './verbs.js';
import { releasedByTask, track } from './scope.js';
import { checkSegment } from '../vm/operations.js';
import { MAX_SEGMENT_BYTES, SEG_BYTES } from '../layout.js';
import { INSPECT, inspected, type HandleInspectOptions, segmentNow } from './inspect.js';

/** The range to attach; defaults to the whole segment. */
export interface AttachOptions {
  /** First byte, relative to the segment (default 0). */
  offset?: number;
  /** Bytes (default: to the segment's end). */
  length?: number;
}

/**
 * A permit to a segment (xpmem_get's apid), from which ranges are attached; release() (or
 * `using`) drops it and detaches what it attached. Its methods run in its space's thread only.
 */
export class Access {
  readonly #mm: Mm;
  readonly #grant: GrantSlot;
  readonly #attachments = new Set<Attachment>();
  /** Got with { keep: true }: no task scope releases it or what it attaches. */
  readonly #kept: boolean;
  #released = false;
  /** Released by its task's scope (releaseWhenIdle), not by release(): its error says so. */
  #releasedByTask = false;

  /** @internal built by Space.get */
  constructor(mm: Mm, grant: GrantSlot, kept: boolean) {
    this.#mm = mm;
    this.#grant = grant;
    this.#kept = kept;
  }

  /** The segment this access is to. */
  get segId(): number {
    return this.#grant.segId;
  }

  /**
   * The segment's size now, in bytes (its owner may resize it at any time: read it again after
   * an invalidation, as a driver re-reads a range it refills). ERR_XPMEM_REMOVED once it is gone.
   */
  get bytes(): number {
    this.#mm.checkLive();
    const { cb } = this.#mm;
    checkSegment(cb, { slot: this.#grant.seg, gen: this.#grant.segGen, id: this.#grant.segId });
    return cb.load(cb.layout.segments, this.#grant.seg, SEG_BYTES);
  }

  /** 'rw' or 'ro', as granted. */
  get mode(): 'ro' | 'rw' {
    return this.#grant.writable ? 'rw' : 'ro';
  }

  /**
   * Maps a range (xpmem_attach). One transaction; throws ERR_XPMEM_RANGE / REMOVED / DETACHED.
   * Inside a pool task, the attachment is detached when the task settles, unless this access
   * was got with { keep: true }.
   */
  attach(opts: AttachOptions = {}): Attachment {
    checkOptions('options', opts);
    const offset = opts.offset === undefined ? 0 : checkIndex('options.offset', opts.offset, 0, MAX_SEGMENT_BYTES);
    const length = opts.length === undefined ? undefined : checkIndex('options.length', opts.length, 1, MAX_SEGMENT_BYTES);
    this.#mm.checkLive();
    if (this.#released) {
      const what = `access to segment ${this.segId}`;
      throw xpmemError('ERR_XPMEM_DETACHED', this.#releasedByTask ? releasedByTask(what, 'got') : `${what} was released; get() it again`, { segId: this.segId });
    }
    const att = new Attachment(this.#mm, attachRange(this.#mm, this.#grant, offset, length));
    this.#attachments.add(att);
    if (!this.#kept) track(() => att.detachWhenIdle());
    return att;
  }

  /**
   * attach(), with the attachment owning this access: its detach() (or `using`) releases the
   * access too, and so does a failed attach. What space.attach() and seg.attach() give.
   */
  attachOwning(opts: AttachOptions = {}): Attachment {
    let att: Attachment;
    try {
      att = this.attach(opts);
    } catch (error) {
      this.release();
      throw error;
    }
    att.whenDetached(() => this.release());
    return att;
  }

  /** Detaches every attachment and drops the permit (xpmem_release). A second call is a no-op. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const att of this.#attachments) att.detach();
    releaseGrant(this.#mm, this.#grant);
  }

  /** @internal util.inspect calls this: it shows segment, mode, the segment's size and state ('released' once released); never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const { state, bytes } = segmentNow(this.#mm, this.#grant.seg, this.#grant.segGen, this.#released ? 'released' : undefined);
    return inspected('Access', { segId: this.segId, mode: this.mode, bytes, state }, depth, options);
  }

  /** release(), for `using access = space.get(segId, 'ro')`. */
  [Symbol.dispose](): void {
    this.release();
  }

  /**
   * @internal A task scope's cleanup: release() now, or, while a section of one of its
   * attachments is still open, once the last of them has ended. Runs in this access's thread.
   */
  releaseWhenIdle(): void {
    const list = [...this.#attachments];
    let left = list.length + 1;
    const detached = (): void => {
      if (--left !== 0) return;
      this.#releasedByTask ||= !this.#released;
      this.release();
    };
    for (const att of list) att.detachWhenIdle(detached);
    detached();
  }
}

/**
 * Gets a permit to segment `segId` (xpmem_get) for space `mm`, tracked by the task scope unless
 * `keep`: inside a pool task it is released when the task settles. Its thread only.
 */
export function getAccess(mm: Mm, segId: number, writable: boolean, keep = false): Access {
  const access = new Access(mm, getGrant(mm, segId, writable), keep);
  if (!keep) track(() => access.releaseWhenIdle());
  return access;
}
