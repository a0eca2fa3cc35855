/**
 * Attachment: a range of a segment mapped into this space (xpmem_attach). Access goes through
 * sections, the shared side of the segment's mapping lock (see sync/rwlock.ts):
 *
 *   enter: publish the hold, check the seqcount is even (else wait for the window to close,
 *          answering this space's own events meanwhile), check the segment still exists and
 *          allows the access, take the cached view.
 *   exit:  drop the hold, ring a drainer if a window opened meanwhile.
 *
 * Sections nest only in increasing segment id order (the rwlock order), else
 * ERR_XPMEM_WOULD_DEADLOCK. Every method runs in the attaching thread only.
 */
import { xpmemError, checkFunction, checkOneOf } from '../errors.js';
import { AT_LIVE, SEG_OPLOCK, SEG_REF, segmentLive, slotBase, slotIs } from '../layout.js';
import type { Mm } from '../mm.js';
import { checkWaitOptions, type WaitOptions } from '../sync/futex.js';
import { enterShared, exitShared, retryShared } from '../sync/rwlock.js';
import { checkViewType, ViewCache, type ViewType } from './view.js';
import { Mapping } from './mapping.js';
import type { Waits } from '../notifier/wait.js';
import type { Bounds } from '../notifier/invalidate.js';
import { faultIn } from '../vm/fault.js';
import { checkEscape, checkSyncResult, type SyncResult } from './result.js';
import type { NotifierCallbacks } from '../notifier/range.js';
import { type Notifier, checkCallbacks, registerNotifier } from '../notifier/notifier.js';
import { checkSegment } from '../vm/operations.js';
import { detachAttachment, type AttachmentSlot } from './verbs.js';
import { quietly, releasedByTask } from './scope.js';
import { spinForWindow } from '../notifier/spin.js';
import { INSPECT, inspected, type HandleInspectOptions, segmentNow, type HandleState } from './inspect.js';
import { turn } from '../sync/turn.js';

/** A section opened with `att.section(mode)`, ended by `using` (Symbol.dispose) or end(). */
export interface Section<V = Uint8Array> extends Disposable {
  /** The attached range: valid until the section ends. */
  readonly view: V;
  /** Ends the section (what `using` calls); a second call is a no-op. */
  end(): void;
}

/**
 * A range of a segment mapped into this space (xpmem_attach), read and written in sections;
 * detach() (or `using`) unmaps it. Its methods run in its space's thread only.
 */
export class Attachment {
  readonly #mm: Mm;
  readonly #a: AttachmentSlot;
  readonly #views = new ViewCache();
  readonly #notifiers = new Set<Notifier>();
  #detached = false;
  /** Detached by its task's scope (detachWhenIdle), not by detach(): its error says so. */
  #detachedByTask = false;
  #inside = 0;
  /** Runs after detach (Access.attachOwning: the access it owns is released). */
  #whenDetached: (() => void) | undefined;
  /** Set by detachWhenIdle while a section is open: the last section's exit runs it. */
  #atIdle: (() => void) | undefined;
  /**
   * Seqcount values at the last full check that passed for a read / a write section (-1: none).
   * Every VM operation moves the seqcount, so while it reads the same, that check still holds
   * and an entry skips it (the fast path).
   */
  #readSeq = -1;
  #writeSeq = -1;
  /** Word index of the segment's referenced bit. */
  readonly #refAt: number;
  /** Word index of the segment's first word. */
  readonly #segBase: number;

  /** @internal built by Access.attach */
  constructor(mm: Mm, a: AttachmentSlot) {
    this.#mm = mm;
    this.#a = a;
    this.#segBase = slotBase(mm.layout.segments, a.seg);
    this.#refAt = this.#segBase + SEG_REF;
  }

  /** The attached segment's id. */
  get segId(): number {
    return this.#a.segId;
  }

  /** First attached byte, relative to the segment. */
  get offset(): number {
    return this.#a.offset;
  }

  /** Attached bytes. */
  get length(): number {
    return this.#a.length;
  }

  /** True once detach() ran (or the access was released). */
  get detached(): boolean {
    return this.#detached;
  }

  /**
   * @internal A task scope's cleanup: detach() now, or when the last open section of this
   * attachment ends (an async section its task did not await); then runs `then`. A failure
   * there is a process warning. Runs in the attaching thread.
   */
  detachWhenIdle(then?: () => void): void {
    const close = (): void => {
      this.#detachedByTask ||= !this.#detached;
      this.detach();
      then?.();
    };
    if (this.#inside === 0) close();
    else this.#atIdle = () => quietly(close);
  }

  /**
   * Runs `fn` inside a read section and returns what it returns. The view is valid inside `fn`
   * only: copy what must outlive the section (`view.slice()`); returning the view itself is
   * ERR_XPMEM_VIEW_ESCAPE. `fn` must not return a promise: the section ends when `fn` returns,
   * so it would end at the first `await` (ERR_XPMEM_ASYNC_CALLBACK; use readAsync()). May sleep
   * (sync) while an invalidation window is open.
   *
   * The view is read-only in its TypeScript type only: from JavaScript, a write through it
   * succeeds. No cheap refusal exists: a typed array over a SharedArrayBuffer cannot be frozen,
   * a Proxy is no typed array (its methods throw), and comparing the bytes at the exit cannot
   * tell this thread's writes from those of other threads' write sections, which may run at the
   * same time (every section is the shared side of the mapping lock).
   */
  read<T>(fn: (view: Readonly<Uint8Array>) => SyncResult<T>, opts?: WaitOptions): T;
  read<V, T>(type: ViewType<V>, fn: (view: Readonly<V>) => SyncResult<T>, opts?: WaitOptions): T;
  read(a: unknown, b?: unknown, c?: unknown): unknown {
    return this.#section(false, a, b, c);
  }

  /**
   * Runs `fn` inside a write section (as read(): no promise from `fn`, use writeAsync()). May
   * sleep (sync) while an invalidation window is open.
   */
  write<T>(fn: (view: Uint8Array) => SyncResult<T>, opts?: WaitOptions): T;
  write<V, T>(type: ViewType<V>, fn: (view: V) => SyncResult<T>, opts?: WaitOptions): T;
  write(a: unknown, b?: unknown, c?: unknown): unknown {
    return this.#section(true, a, b, c);
  }

  /** Like read(), but waits without blocking and `fn` may await: the section lasts until it settles. */
  readAsync<T>(fn: (view: Readonly<Uint8Array>) => T | Promise<T>, opts?: WaitOptions): Promise<T>;
  readAsync<V, T>(type: ViewType<V>, fn: (view: Readonly<V>) => T | Promise<T>, opts?: WaitOptions): Promise<T>;
  readAsync(a: unknown, b?: unknown, c?: unknown): Promise<unknown> {
    return this.#sectionAsync(false, a, b, c);
  }

  /** Like write(), but waits without blocking and `fn` may await: the section lasts until it settles. */
  writeAsync<T>(fn: (view: Uint8Array) => T | Promise<T>, opts?: WaitOptions): Promise<T>;
  writeAsync<V, T>(type: ViewType<V>, fn: (view: V) => T | Promise<T>, opts?: WaitOptions): Promise<T>;
  writeAsync(a: unknown, b?: unknown, c?: unknown): Promise<unknown> {
    return this.#sectionAsync(true, a, b, c);
  }

  /**
   * Opens an explicit section, ended by `using` or end(): `using s = att.section('rw',
   * Float64Array)`. Its view is valid until then; an 'ro' section's view is read-only in its
   * TypeScript type only (see read()). May sleep (sync).
   */
  section(mode: 'ro', opts?: WaitOptions): Section<Readonly<Uint8Array>>;
  section<V>(mode: 'ro', type: ViewType<V>, opts?: WaitOptions): Section<Readonly<V>>;
  section(mode: 'rw', opts?: WaitOptions): Section;
  section<V>(mode: 'rw', type: ViewType<V>, opts?: WaitOptions): Section<V>;
  section(mode: 'ro' | 'rw', opts?: WaitOptions): Section<Readonly<Uint8Array>>;
  section<V>(mode: 'ro' | 'rw', type: ViewType<V>, opts?: WaitOptions): Section<Readonly<V>>;
  section(mode: 'ro' | 'rw', a?: unknown, b?: unknown): Section<unknown> {
    const write = checkOneOf('mode', mode, ['ro', 'rw'] as const) === 'rw';
    const type = typeof a === 'function' ? (a as ViewType<unknown>) : undefined;
    const opts = (type === undefined ? a : b) as WaitOptions | undefined;
    if (type !== undefined) checkViewType('type', type);
    checkWaitOptions(opts);
    const held = this.#enterSync(write, opts);
    let open = true;
    const end = (): void => {
      if (!open) return;
      open = false;
      this.#exit(held);
    };
    return { view: type === undefined ? this.#views.bytes : this.#views.typed(type), end, [Symbol.dispose]: end };
  }

  /** Mapped mode (a secondary MMU): a view with no lock held, checked with retry(). May sleep (sync). */
  map(opts?: WaitOptions): Mapping {
    checkWaitOptions(opts);
    this.#usable();
    return new Mapping(this.#mm, this.#a, this.#views, { check: this.#check.bind(this), fault: this.#fault.bind(this), state: this.#state.bind(this) }, opts);
  }

  /**
   * Marks the range used now (mark_page_accessed), so the reclaim clock passes over it once more:
   * for memory used through a long-lived mapped view, which sections would otherwise mark.
   * Sets one word; never faults and never sleeps.
   */
  touch(): void {
    this.#usable();
    checkSegment(this.#mm.cb, { slot: this.#a.seg, gen: this.#a.segGen, id: this.#a.segId }); // never another segment's bit
    Atomics.store(this.#mm.words, this.#refAt, 1);
  }

  /** Registers range notifiers for exactly this attachment's range. */
  notifier(callbacks: NotifierCallbacks): Notifier {
    checkCallbacks(callbacks);
    this.#usable();
    const n = registerNotifier(this.#mm, callbacks, this.#a, () => this.#notifiers.delete(n));
    this.#notifiers.add(n);
    return n;
  }

  /**
   * Unmaps the range (xpmem_detach); an attachment that owns its access (space.attach(),
   * seg.attach()) releases it too. Local and synchronous; a second call is a no-op.
   */
  detach(): void {
    if (this.#detached) return;
    if (this.#inside > 0) throw xpmemError('ERR_XPMEM_BUSY', 'detach() inside a section of the same attachment; end the section first', { segId: this.#a.segId });
    this.#detached = true;
    for (const n of this.#notifiers) void n.unregister();
    detachAttachment(this.#mm, this.#a);
    this.#whenDetached?.();
  }

  /** @internal Access.attachOwning: `then` runs once this attachment is detached. */
  whenDetached(then: () => void): void {
    this.#whenDetached = then;
  }

  /** What it is now: 'closed' or 'reaped' with its space, 'detached', 'removed', 'swapped' or 'live'. Never throws. */
  #state(): HandleState {
    return segmentNow(this.#mm, this.#a.seg, this.#a.segGen, this.#detached ? 'detached' : undefined).state;
  }

  /** @internal util.inspect calls this: it shows segment, range, mode and state; never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const { segId, offset, length, writable } = this.#a;
    return inspected('Attachment', { segId, offset, length, mode: writable ? 'rw' : 'ro', state: this.#state() }, depth, options);
  }

  /** detach(), for `using att = access.attach()`. */
  [Symbol.dispose](): void {
    this.detach();
  }

  /** Throws unless this attachment can be used: ERR_XPMEM_CLOSED / SPACE_DEAD, or ERR_XPMEM_DETACHED saying who detached it. */
  #usable(): void {
    this.#mm.checkLive();
    if (this.#detached) {
      const what = `attachment of segment ${this.#a.segId}`;
      throw xpmemError('ERR_XPMEM_DETACHED', this.#detachedByTask ? releasedByTask(what, 'attached') : `${what} was detached; attach again`, { segId: this.#a.segId });
    }
  }

  /**
   * The segment is still the one attached and the attachment still exists (else REMOVED) and
   * allows the access; marks it referenced. False when it is swapped out: fault it in first.
   */
  #check(write: boolean): boolean {
    const { words, layout } = this.#mm;
    this.#usable();
    const segBase = this.#segBase;
    const attBase = slotBase(layout.attachments, this.#a.slot);
    if (!segmentLive(words, layout, this.#a.seg, this.#a.segGen) || !slotIs(words, attBase, this.#a.gen, AT_LIVE)) {
      throw xpmemError('ERR_XPMEM_REMOVED', `segment ${this.#a.segId} was removed by its owner; this attachment is gone`, { segId: this.#a.segId });
    }
    if (write && !this.#a.writable) throw xpmemError('ERR_XPMEM_PERMISSION', `segment ${this.#a.segId} was granted read-only; get() it with 'rw' to write`, { segId: this.#a.segId });
    if (!this.#views.check(words, segBase, this.#a.offset, this.#a.length, write, this.#mm.cb.arena)) return false;
    this.#referenced();
    return true;
  }

  /** Sets the segment's referenced bit (a plain read first: no store while it is set). */
  #referenced(): void {
    const words = this.#mm.words;
    if (words[this.#refAt] === 0) Atomics.store(words, this.#refAt, 1);
  }

  /** Swaps the segment back in for this thread (a page fault). May sleep. */
  #fault(bounds: Bounds): Waits<void> {
    return faultIn(this.#mm, { slot: this.#a.seg, gen: this.#a.segGen, id: this.#a.segId }, bounds);
  }

  /** A sync section: `(fn, opts?)`, or `(type, fn, opts?)` when `a` is a typed-array constructor. */
  #section(write: boolean, a: unknown, b: unknown, c: unknown): unknown {
    const { type, fn, opts } = sectionArgs(a, b, c);
    const held = this.#enterSync(write, opts);
    let result: unknown;
    try {
      result = fn(type === undefined ? this.#views.bytes : this.#views.typed(type));
    } finally {
      this.#exit(held);
    }
    if ((typeof result === 'object' && result !== null) || typeof result === 'function') checkSyncResult(result, this.#mm.cb.arena, this.#a.segId);
    return result;
  }

  async #sectionAsync(write: boolean, a: unknown, b: unknown, c: unknown): Promise<unknown> {
    const { type, fn, opts } = sectionArgs(a, b, c);
    // In flight while it enters (an opener's close() waits for it); once held, its hold counts.
    this.#mm.callBegan();
    let held: number;
    try {
      held = await this.#enterAsync(write, opts);
    } finally {
      this.#mm.callEnded();
    }
    let result: unknown;
    try {
      result = await fn(type === undefined ? this.#views.bytes : this.#views.typed(type));
    } finally {
      this.#exit(held);
      const yielded = turn();
      if (yielded !== undefined) await yielded;
    }
    if (typeof result === 'object' && result !== null) checkEscape(result, this.#mm.cb.arena, this.#a.segId);
    return result;
  }

  /**
   * Synchronous section entry: no allocation unless a window is open or the segment is swapped
   * out; then blocks until the window ends or the fault is served (answering this space's
   * events), all within one deadline. Returns the held index used. May sleep.
   */
  #enterSync(write: boolean, opts?: WaitOptions): number {
    let bounds: Bounds | undefined;
    for (;;) {
      const i = this.#begin(false);
      const seq = this.#publish(i);
      if (seq < 0) {
        bounds ??= this.#mm.bounds(opts, true);
        try {
          this.#mm.runSync(this.#windowEnd(i, bounds));
        } catch (error) {
          this.#abandon(i);
          throw error;
        }
      }
      if (this.#admit(write, i, seq)) return i;
      bounds ??= this.#mm.bounds(opts, true);
      this.#mm.runSync(this.#fault(bounds));
    }
  }

  /** Asynchronous section entry: waits out an open window or a fault without blocking. May sleep. */
  async #enterAsync(write: boolean, opts: WaitOptions | undefined): Promise<number> {
    const bounds = this.#mm.bounds(opts, false);
    for (;;) {
      const i = this.#begin(true);
      const seq = this.#publish(i);
      if (seq < 0)
        await this.#mm.runAsync(this.#windowEnd(i, bounds)).catch((error: unknown) => {
          this.#abandon(i);
          throw error;
        });
      if (this.#admit(write, i, seq)) return i;
      await this.#mm.runAsync(this.#fault(bounds));
    }
  }

  /**
   * Checks the entry may proceed and claims a held index before any wait, so entries of one
   * thread that interleave (async sections) never share a held word. Events are delivered at
   * the exit, not here: a loop of sections still checks once per section, and an entry held off
   * by a window delivers while it waits.
   */
  #begin(async: boolean): number {
    const mm = this.#mm;
    if (this.#detached || mm.closed()) this.#usable(); // throws the right error
    if (mm.holding > 0 && mm.highestHeld() >= this.#a.segId) throw nesting(mm.highestHeld(), this.#a.segId, async);
    const i = mm.holding === 0 ? 0 : mm.held.indexOf(-1);
    if (i < 0) throw xpmemError('ERR_XPMEM_WOULD_DEADLOCK', `more than ${mm.held.length} nested sections in one thread; raise capacity.depth`);
    mm.claimHeld(i, this.#a.seg, this.#a.segId);
    mm.heldAsync[i] = async ? 1 : 0;
    return i;
  }

  /** Publishes the hold in held word `i`; returns the seqcount seen, or -1 (parked) when a window is open. */
  #publish(i: number): number {
    const { words, layout } = this.#mm;
    return enterShared(words, layout, this.#mm.heldAt(i), this.#a.seg, this.#segBase);
  }

  /** Waits until the open window ends (or grants the hold parked in held word `i`). */
  *#windowEnd(i: number, bounds: Bounds): Waits<void> {
    const mm = this.#mm;
    const { words, layout } = mm;
    const seg = this.#a.seg;
    const segBase = slotBase(layout.segments, seg);
    const at = mm.heldAt(i);
    yield {
      seg,
      held: at,
      spin: spinForWindow(words, layout, Atomics.load(words, segBase + SEG_OPLOCK) - 1),
      deadline: bounds.deadline,
      signal: bounds.signal,
      until: () => this.#detached || retryShared(words, layout, at, seg, segBase),
      timeout: () => xpmemError('ERR_XPMEM_TIMEOUT', `an invalidation of segment ${this.#a.segId} stayed open past the deadline`, { segId: this.#a.segId }),
    };
  }

  /**
   * Last checks with the hold published in held index `i`, at seqcount `seq` (-1 after a wait:
   * the attachment may have been detached, the space closed or reaped); counts the section, or
   * abandons it. When `seq` is the value of the last full check for this access, nothing can
   * have changed and only the referenced bit is set. False (abandoned) when the segment is
   * swapped out: the caller faults it in and enters again.
   */
  #admit(write: boolean, i: number, seq: number): boolean {
    if (seq >= 0 && seq === (write ? this.#writeSeq : this.#readSeq)) {
      this.#referenced();
      this.#inside++;
      return true;
    }
    let resident: boolean;
    try {
      if (seq < 0) this.#usable();
      resident = this.#check(write);
    } catch (error) {
      this.#abandon(i);
      throw error;
    }
    if (!resident) {
      this.#abandon(i);
      return false;
    }
    if (seq >= 0) {
      this.#readSeq = seq;
      if (write) this.#writeSeq = seq;
    }
    this.#inside++;
    return true;
  }

  /** Undoes a failed entry: drops the hold (parked, granted or published) and the claim. */
  #abandon(i: number): void {
    const { words, layout } = this.#mm;
    exitShared(words, layout, this.#mm.heldAt(i), slotBase(layout.segments, this.#a.seg));
    this.#mm.claimHeld(i, -1, -1);
  }

  #exit(i: number): void {
    const mm = this.#mm;
    mm.claimHeld(i, -1, -1);
    this.#inside--;
    exitShared(mm.words, mm.layout, mm.heldAt(i), this.#segBase);
    mm.deliverInline();
    if (this.#atIdle !== undefined && this.#inside === 0) {
      const close = this.#atIdle;
      this.#atIdle = undefined;
      close();
    }
  }
}

/** The arguments of a section call: `(fn, opts?)` or `(type, fn, opts?)`, checked. */
function sectionArgs(a: unknown, b: unknown, c: unknown): { type: ViewType<unknown> | undefined; fn: (view: unknown) => unknown; opts: WaitOptions | undefined } {
  const typed = typeof b === 'function' || (a as { BYTES_PER_ELEMENT?: unknown } | undefined)?.BYTES_PER_ELEMENT !== undefined;
  const type = typed ? (a as ViewType<unknown>) : undefined;
  const fn = (typed ? b : a) as (view: unknown) => unknown;
  const opts = (typed ? c : b) as WaitOptions | undefined;
  checkFunction('fn', fn);
  if (type !== undefined) checkViewType('type', type);
  if (opts !== undefined) checkWaitOptions(opts);
  return { type, fn, opts };
}

/** ERR_XPMEM_WOULD_DEADLOCK for a section entry on segment `segId` while this thread holds one on `held` (>= segId). */
function nesting(held: number, segId: number, async: boolean): Error {
  const why =
    held === segId
      ? `this thread already holds a section on segment ${segId}: sections of one segment do not nest${async ? ' (nor overlap: await the first async section before starting another)' : ''}`
      : `this thread holds a section on segment ${held}: sections nest only in increasing segment id order, and ${segId} < ${held}`;
  return xpmemError('ERR_XPMEM_WOULD_DEADLOCK', why, { segId });
}
