/**
 * Mm: one thread's membership of one domain (the mm_struct behind a Space). Internal: public
 * objects (Space, Segment, Access, Attachment, Notifier) hold one and never expose it.
 * Every method runs in the thread that joined; none is safe to call from another thread.
 */
import { xpmemError } from './errors.js';
import { H_CLOSED, HELD_GRANTED, SP_GEN, SP_HELD, SPACE_LIVE, idOf, slotBase, slotIs } from './layout.js';
import type { ControlBlock } from './control/control.js';
import { shmPath } from './control/shm.js';
import { Delivery } from './notifier/delivery.js';
import { runAsync, runSync, type BlockedWatch, type Waiting, type Waits } from './notifier/wait.js';
import type { Bounds, Invalidator } from './notifier/invalidate.js';
import { deadlineIn, type WaitOptions } from './sync/futex.js';
import { Recorder } from './trace/recorder.js';

export class Mm implements Waiting, Invalidator {
  readonly cb: ControlBlock;
  readonly words: Int32Array;
  readonly layout: ControlBlock['layout'];
  /** Word index of this space's first held-section slot. */
  readonly #held: number;
  /** Word index of this space's generation. */
  readonly #genAt: number;
  readonly slot: number;
  readonly gen: number;
  readonly delivery: Delivery;
  /** What this space records while a trace of its domain runs. */
  readonly trace: Recorder;
  /** Held-section slots: segment slot per SP_HELD index, -1 = free. Mirrors the shared words. */
  readonly held: Int32Array;
  /** Segment id per held-section slot, -1 = free: sections nest in increasing id order. */
  readonly heldIds: Float64Array;
  /** 1 where the held-section slot belongs to an async section (held across awaits). */
  readonly heldAsync: Uint8Array;
  /** Number of sections this thread holds now. */
  holding = 0;
  /** A shared domain's: what this thread's synchronous waits do for deaths of other processes (set by its join). */
  blocked: BlockedWatch | undefined;
  #gone = false;
  /** Set once an opener's close() found nothing of this thread in flight (drain): nothing new starts. */
  #leaving = false;
  /** Async calls of this thread in flight (callBegan()): operations, async section entries, makeAsync, compact. */
  #running = 0;
  /** Wakes drain() when a call or a section of this thread ends. */
  #ended: (() => void) | undefined;

  constructor(cb: ControlBlock, slot: number, gen: number) {
    this.cb = cb;
    this.words = cb.words;
    this.layout = cb.layout;
    this.#held = slotBase(cb.layout.spaces, slot) + SP_HELD;
    this.#genAt = slotBase(cb.layout.spaces, slot) + SP_GEN;
    this.slot = slot;
    this.gen = gen;
    this.trace = new Recorder(cb.words, cb.layout, cb.id, slot, cb.shared === undefined ? undefined : shmPath(cb.shared));
    this.delivery = new Delivery(cb, slot, this.trace);
    this.held = new Int32Array(cb.layout.caps.depth).fill(-1);
    this.heldIds = new Float64Array(cb.layout.caps.depth).fill(-1);
    this.heldAsync = new Uint8Array(cb.layout.caps.depth);
  }

  /** Word index of held-section slot `i`. */
  heldAt(i: number): number {
    return this.#held + i;
  }

  /**
   * Two plain loads: true once the domain was closed, this membership left (or is leaving), or
   * this space was reaped (the reaper bumps its generation): the section fast path; checkLive()
   * says which.
   * Plain, not Atomics.load (a builtin call on Node 20, ~10 ns each): both words change once,
   * for good, and nothing unsafe follows from seeing the change one section late (the arena
   * outlives the domain; a reaped space's thread has exited).
   */
  closed(): boolean {
    return this.#gone || this.#leaving || this.words[H_CLOSED] !== 0 || this.words[this.#genAt] !== this.gen;
  }

  /** What this membership is now: 'closed' (its domain closed, or it left), 'reaped', or 'live'. Never throws. */
  state(): 'live' | 'closed' | 'reaped' {
    if (this.#gone || Atomics.load(this.words, H_CLOSED) !== 0) return 'closed';
    const base = slotBase(this.cb.layout.spaces, this.slot);
    return slotIs(this.words, base, this.gen, SPACE_LIVE) ? 'live' : 'reaped';
  }

  /** Throws ERR_XPMEM_CLOSED / ERR_XPMEM_SPACE_DEAD when this membership is over, or ERR_XPMEM_CLOSED once it is leaving. */
  checkLive(): void {
    const state = this.state();
    if (state === 'live' && this.#leaving) throw xpmemError('ERR_XPMEM_CLOSED', 'this thread is leaving the domain (its close() was called); nothing new starts through it');
    if (state === 'closed') throw xpmemError('ERR_XPMEM_CLOSED', 'the domain was closed; nothing can be done through it any more');
    if (state === 'reaped') throw xpmemError('ERR_XPMEM_SPACE_DEAD', `space ${idOf(this.layout.spaces, this.slot, this.gen)} was reaped; join again`);
  }

  /** Ends this thread's use of the membership (close / reap): stops the dispatcher, sends what it traced. */
  leave(): void {
    this.#gone = true;
    this.delivery.stop();
    this.trace.close();
  }

  deliverInline(): void {
    this.delivery.deliver(false);
  }

  unsettledFor(seg: number): boolean {
    return this.delivery.unsettledFor(seg);
  }

  /**
   * True if this thread is inside a section on segment `seg`: its hold published or granted.
   * An entry still parked behind a window is not a hold (the window's end may grant it). With
   * `sync` false, only async sections count: a sync one ends before the caller's first await.
   */
  holds(seg: number, sync = true): boolean {
    if (this.holding === 0) return false;
    for (let i = 0; i < this.held.length; i++) {
      if (this.held[i] !== seg || (!sync && this.heldAsync[i] === 0)) continue;
      const v = Atomics.load(this.words, this.#held + i);
      if (v === seg + 1 || (v & HELD_GRANTED) !== 0) return true;
    }
    return false;
  }

  /** Highest segment id this thread holds a section on, or -1. */
  highestHeld(): number {
    if (this.holding === 0) return -1;
    let max = -1;
    for (const id of this.heldIds) if (id > max) max = id;
    return max;
  }

  bounds(opts: WaitOptions | undefined, sync: boolean): Bounds {
    return { deadline: deadlineIn(opts?.deadlineMs ?? this.cb.deadlineMs), signal: opts?.signal, sync };
  }

  /** Runs a protocol generator blocking the thread. May sleep. */
  runSync<T>(g: Waits<T>): T {
    return runSync(this, g);
  }

  /** Runs a protocol generator without blocking the event loop. May sleep. */
  runAsync<T>(g: Waits<T>): Promise<T> {
    return runAsync(this, g);
  }

  /**
   * Counts an async call of this thread's user as in flight from now until its callEnded(): an
   * opener's close() leaves only when none is (drain()). Never sleeps.
   */
  callBegan(): void {
    this.#running++;
  }

  /** Ends what callBegan() counted. Never sleeps. */
  callEnded(): void {
    this.#running--;
    this.#ended?.();
  }

  /** Counts `call`, an async call of this thread's user begun just now, as in flight until it settles (callBegan). Never sleeps itself. */
  async inFlight<T>(call: Promise<T>): Promise<T> {
    this.callBegan();
    try {
      return await call;
    } finally {
      this.callEnded();
    }
  }

  /** Records held-section slot `i` as this thread's hold of segment slot `seg`, id `segId` (-1: frees it). Never sleeps. */
  claimHeld(i: number, seg: number, segId: number): void {
    this.held[i] = seg;
    this.heldIds[i] = segId;
    this.holding += seg < 0 ? -1 : 1;
    if (seg < 0) this.#ended?.();
  }

  /**
   * An opener's close(): waits for an instant when no call of this thread is in flight (none
   * counted by callBegan(), no section held), and from that instant on lets nothing new start
   * through this membership (calls fail with ERR_XPMEM_CLOSED); or, past `deadline`
   * (performance.now() ms), resolves with what is still in flight, having changed nothing.
   * Calls begun meanwhile are let in, and waited for too. Waits without blocking the event loop.
   */
  async drain(deadline: number): Promise<{ calls: number; sections: number } | undefined> {
    while (this.#running > 0 || this.holding > 0) {
      const left = deadline - performance.now();
      if (left <= 0) return { calls: this.#running, sections: this.holding };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#ended = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#ended = undefined;
    }
    this.#leaving = true;
    return undefined;
  }
}
