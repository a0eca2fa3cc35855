/** Space: one thread's address space in a domain; the XPMEM verbs start here. */
import { checkOneOf, checkOptions, invalidArgType, xpmemError } from '../errors.js';
import { SEGF_SWAPPABLE, SP_THREAD, idOf, slotBase } from '../layout.js';
import type { Mm } from '../mm.js';
import { checkWaitOptions } from '../sync/futex.js';
import { getAccess, type Access, type AttachOptions } from './access.js';
import type { Attachment } from './attachment.js';
import { Segment, checkBytes, checkPermit, type MakeOptions } from './segment.js';
import { makeSegment, type Made } from './verbs.js';
import { limited, reclaiming } from '../vm/reclaim.js';
import { type Notifier, registerNotifier } from '../notifier/notifier.js';
import { transaction } from '../notifier/invalidate.js';
import type { NotifierCallbacks } from '../notifier/range.js';
import { keepOf, type KeepOptions } from './scope.js';
import { INSPECT, inspected, type HandleInspectOptions } from './inspect.js';

/**
 * One thread's address space in a domain (an mm_struct): the XPMEM verbs start here. Each
 * joined thread has one; its methods run in that thread only.
 */
export class Space {
  readonly #mm: Mm;

  /** @internal built by Domain.create and join */
  constructor(mm: Mm) {
    this.#mm = mm;
  }

  /** This space's id (stable while it lives; never reused for another space). */
  get id(): number {
    return idOf(this.#mm.layout.spaces, this.#mm.slot, this.#mm.gen);
  }

  /**
   * Exports `bytes` of new zero-filled memory (xpmem_make). Synchronous: one transaction, which
   * may grow the arena. Under memoryLimit it first swaps out unreferenced segments (see
   * docs/CONTRACT.md, reclaim), blocking this thread meanwhile, never waiting for this thread
   * itself, within `opts.deadlineMs`: ERR_XPMEM_NO_MEMORY when nothing it could ever reclaim would
   * do (the size alone passes the limit, or the arena or segment table is full), ERR_XPMEM_TIMEOUT
   * naming the space that kept the memory busy at the deadline. In an event loop that must keep
   * running, prefer makeAsync().
   */
  make(bytes: number, opts: MakeOptions = {}): Segment {
    const attempt = this.#maker(bytes, opts);
    const mm = this.#mm;
    let made: Made;
    if (limited(mm)) {
      const bounds = mm.bounds(opts, true);
      made = mm.runSync(reclaiming(mm, -1, bounds, () => transaction(mm, bounds, bounds.deadline, attempt)));
    } else {
      made = opts.deadlineMs === undefined ? attempt() : mm.cb.patiently(opts.deadlineMs, attempt);
    }
    return new Segment(mm, made, opts.name ?? '');
  }

  /**
   * make() without blocking the event loop: waits for the domain mutex and for reclaim under
   * memoryLimit asynchronously, and `opts.signal` can end that wait (ERR_XPMEM_ABORTED).
   */
  async makeAsync(bytes: number, opts: MakeOptions = {}): Promise<Segment> {
    const attempt = this.#maker(bytes, opts);
    const mm = this.#mm;
    const bounds = mm.bounds(opts, false);
    mm.callBegan(); // in flight until it settles: an opener's close() waits for it
    try {
      const made = await mm.runAsync(reclaiming(mm, -1, bounds, () => transaction(mm, bounds, bounds.deadline, attempt)));
      return new Segment(mm, made, opts.name ?? '');
    } finally {
      mm.callEnded();
    }
  }

  /** Validates make()'s arguments; returns its one transaction. */
  #maker(bytes: number, opts: MakeOptions): () => Made {
    checkBytes(bytes);
    checkOptions('options', opts);
    const permit = checkPermit('options.permit', opts.permit ?? 'rw');
    if (opts.swappable !== undefined && typeof opts.swappable !== 'boolean') throw invalidArgType('options.swappable', 'of type boolean', opts.swappable);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidArgType('options.name', 'of type string', opts.name);
    checkWaitOptions(opts);
    this.#mm.checkLive();
    const flags = opts.swappable === false ? 0 : SEGF_SWAPPABLE;
    return () => makeSegment(this.#mm, bytes, permit, flags, opts.name ?? '');
  }

  /**
   * Gets a permit to segment `segId` (xpmem_get), 'rw' unless `mode` says 'ro':
   * ERR_XPMEM_PERMISSION if the segment's permit forbids it. Release it when done (release(), or
   * `using`); inside a pool task it is released when the task settles, with what it attached,
   * unless `opts.keep` is true: then it lives, with what it attaches, until release() or until
   * this thread exits.
   */
  get(segId: number, mode: 'ro' | 'rw' = 'rw', opts?: KeepOptions): Access {
    const { writable, keep } = this.#checkGet(segId, mode, opts);
    return getAccess(this.#mm, segId, writable, keep);
  }

  /**
   * get() and attach() in one: the attachment owns its permit, so its detach() (or `using att =
   * space.attach(...)`) releases both. `range` defaults to the whole segment. Inside a pool task
   * both are released when the task settles, unless `opts.keep` is true (see get()).
   */
  attach(segId: number, mode: 'ro' | 'rw', range?: AttachOptions, opts?: KeepOptions): Attachment {
    const { writable, keep } = this.#checkGet(segId, mode, opts);
    return getAccess(this.#mm, segId, writable, keep).attachOwning(range);
  }

  /** Validates get()'s and attach()'s segment id, mode and options; checks this space is live. */
  #checkGet(segId: unknown, mode: unknown, opts: unknown): { writable: boolean; keep: boolean } {
    if (typeof segId !== 'number') throw invalidArgType('segId', 'of type number', segId);
    const writable = checkOneOf('mode', mode, ['ro', 'rw'] as const) === 'rw';
    const keep = keepOf('options', opts);
    this.#mm.checkLive();
    if (!Number.isSafeInteger(segId) || segId < 0) throw xpmemError('ERR_XPMEM_NO_SEGMENT', `no segment ${segId}: segment ids are non-negative integers from Segment.id`, { segId });
    return { writable, keep };
  }

  /** @internal util.inspect calls this: it shows id, its thread (while live) and state ('live', 'reaped', 'closed'); never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const mm = this.#mm;
    const state = mm.state();
    const threadId = state === 'live' ? Atomics.load(mm.words, slotBase(mm.layout.spaces, mm.slot) + SP_THREAD) : undefined;
    return inspected('Space', { id: this.id, threadId, state }, depth, options);
  }

  /** Registers notifiers for memory this space owns (every segment it made). */
  notifier(callbacks: NotifierCallbacks): Notifier {
    return registerNotifier(this.#mm, callbacks, undefined);
  }
}
