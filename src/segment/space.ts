/** Space: one thread's address space in a domain (an mm_struct): the XPMEM verbs start here. */
import { checkOneOf, checkOptions, invalidArgType, xpmemError } from '../errors.js';
import { SEGF_SWAPPABLE, idOf } from '../layout.js';
import { checkWaitOptions, type Mm } from '../mm.js';
import { Access } from './access.js';
import { Segment, checkBytes, checkPermit, type MakeOptions } from './segment.js';
import { getGrant, makeSegment, type Made } from './verbs.js';
import { limited, reclaiming } from '../vm/reclaim.js';
import { track } from './scope.js';
import { Notifier, registerNotifier } from '../notifier/notifier.js';
import type { NotifierCallbacks } from '../notifier/range.js';

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
   * may grow the arena. Under memoryLimit it first swaps out unreferenced segments on the
   * non-blocking path (it may then wait for their notifiers, never for this thread, bounded by
   * `opts.deadlineMs` / `opts.signal`); ERR_XPMEM_NO_MEMORY when nothing more can be reclaimed,
   * the size alone passes the limit, or the arena or segment table is full.
   */
  make(bytes: number, opts: MakeOptions = {}): Segment {
    checkBytes(bytes);
    checkOptions('options', opts);
    const permit = checkPermit('options.permit', opts.permit ?? 'rw');
    if (opts.swappable !== undefined && typeof opts.swappable !== 'boolean') throw invalidArgType('options.swappable', 'of type boolean', opts.swappable);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidArgType('options.name', 'of type string', opts.name);
    checkWaitOptions(opts);
    this.#mm.checkLive();
    const mm = this.#mm;
    const flags = opts.swappable === false ? 0 : SEGF_SWAPPABLE;
    const attempt = (): Made => makeSegment(mm, bytes, permit, flags, opts.name ?? '');
    const made = limited(mm) ? mm.runSync(reclaiming(mm, -1, mm.bounds(opts, true), function* () { return attempt(); })) : attempt();
    return new Segment(this.#mm, made, opts.name ?? '');
  }

  /**
   * Gets a permit to segment `segId` (xpmem_get): ERR_XPMEM_PERMISSION if its permit forbids
   * `mode`. Inside a pool task, it is released when the task settles.
   */
  get(segId: number, mode: 'ro' | 'rw' = 'rw'): Access {
    if (typeof segId !== 'number') throw invalidArgType('segId', 'of type number', segId);
    const writable = checkOneOf('mode', mode, ['ro', 'rw'] as const) === 'rw';
    this.#mm.checkLive();
    if (!Number.isSafeInteger(segId) || segId < 0) throw xpmemError('ERR_XPMEM_NO_SEGMENT', `no segment ${segId}: segment ids are non-negative integers from Segment.id`);
    const access = new Access(this.#mm, getGrant(this.#mm, segId, writable));
    track(() => access.releaseWhenIdle());
    return access;
  }

  /** Registers notifiers for memory this space owns (every segment it made). */
  notifier(callbacks: NotifierCallbacks): Notifier {
    return registerNotifier(this.#mm, callbacks, undefined);
  }
}
