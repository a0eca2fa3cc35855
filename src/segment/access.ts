/** Access: a permit to a segment (xpmem_get's apid), from which ranges are attached. */
import { checkIndex, checkOptions, xpmemError } from '../errors.js';
import type { Mm } from '../mm.js';
import { Attachment } from './attachment.js';
import { attachRange, releaseGrant, type GrantSlot } from './verbs.js';
import { track } from './scope.js';
import { checkSegment } from '../vm/operations.js';
import { SEG_BYTES } from '../layout.js';

/** The range to attach; defaults to the whole segment. */
export interface AttachOptions {
  /** First byte, relative to the segment (default 0). */
  offset?: number;
  /** Bytes (default: to the segment's end). */
  length?: number;
}

export class Access {
  readonly #mm: Mm;
  readonly #grant: GrantSlot;
  readonly #attachments = new Set<Attachment>();
  #released = false;

  /** @internal built by Space.get */
  constructor(mm: Mm, grant: GrantSlot) {
    this.#mm = mm;
    this.#grant = grant;
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
   * Inside a pool task, the attachment is detached when the task settles.
   */
  attach(opts: AttachOptions = {}): Attachment {
    checkOptions('options', opts);
    const offset = opts.offset === undefined ? 0 : checkIndex('options.offset', opts.offset, 0, 2 ** 32);
    const length = opts.length === undefined ? undefined : checkIndex('options.length', opts.length, 1, 2 ** 32);
    this.#mm.checkLive();
    if (this.#released) throw xpmemError('ERR_XPMEM_DETACHED', `access to segment ${this.segId} was released; get() it again`);
    const att = new Attachment(this.#mm, attachRange(this.#mm, this.#grant, offset, length));
    this.#attachments.add(att);
    track(() => att.detachWhenIdle());
    return att;
  }

  /** Detaches every attachment and drops the permit (xpmem_release). A second call is a no-op. */
  release(): void {
    if (this.#released) return;
    for (const att of this.#attachments) att.detach();
    this.#released = true;
    releaseGrant(this.#mm, this.#grant);
  }

  /**
   * @internal A task scope's cleanup: release() now, or, while a section of one of its
   * attachments is still open, once the last of them has ended. Runs in this access's thread.
   */
  releaseWhenIdle(): void {
    const list = [...this.#attachments];
    let left = list.length + 1;
    const detached = (): void => {
      if (--left === 0) this.release();
    };
    for (const att of list) att.detachWhenIdle(detached);
    detached();
  }
}
