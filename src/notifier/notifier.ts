/**
 * Notifier registration (mmu_notifier_register / mmu_interval_notifier_insert).
 *
 * Race-free by construction: registration is one transaction that takes a new registration
 * sequence number and bumps the count that invalidators read when choosing targets; an
 * invalidation's target snapshot takes H_REGSEQ in its own transaction. So a notifier either
 * precedes the snapshot (it is targeted and gets start and end) or follows it (it gets neither
 * for that window; new sections it enters still wait for the window). Unregister is the SRCU
 * side: it returns once no callback of the notifier is in flight.
 */
import { checkFunction, checkOptions, invalidArgType } from '../errors.js';
import { checkWaitOptions, deadlineIn, within, type WaitOptions } from '../sync/futex.js';
import { AT_GEN, AT_NOTIFIERS, AT_STATE, H_REGSEQ, NT_ATT, NT_GEN, NT_LIVE, NT_REGSEQ, NT_SPACE, NT_STATE, SEG_NOTIFIERS, SP_NOTIFIERS, slotBase } from '../layout.js';
import { freeSlot, takeSlot } from '../control/control.js';
import { xpmemError } from '../errors.js';
import type { ControlBlock } from '../control/control.js';
import type { Delivery, LocalNotifier } from './delivery.js';
import type { NotifierCallbacks } from './range.js';

/** The registering space, as registration sees it (an Mm, mm.ts). Its own thread only. */
export interface Registrar {
  readonly cb: ControlBlock;
  readonly slot: number;
  readonly delivery: Delivery;
  /** Throws ERR_XPMEM_CLOSED / ERR_XPMEM_SPACE_DEAD when the membership is over. */
  checkLive(): void;
  /** What the membership is now: 'live', or over ('closed', 'reaped'). */
  state(): 'live' | 'closed' | 'reaped';
}

const CALLBACKS = ['invalidateStart', 'invalidateEnd', 'release', 'referenced'] as const;

/** A registered notifier. */
export class Notifier {
  readonly #mm: Registrar;
  readonly #local: LocalNotifier;
  readonly #gen: number;
  /** The words counting this notifier (its space's or its attachment's and segment's), -1 each when unregistered. */
  readonly #counts: readonly number[];
  readonly #onGone: () => void;
  #gone: Promise<void> | undefined;

  /** @internal built by registerNotifier */
  constructor(mm: Registrar, local: LocalNotifier, gen: number, counts: readonly number[], onGone: () => void) {
    this.#mm = mm;
    this.#local = local;
    this.#gen = gen;
    this.#counts = counts;
    this.#onGone = onGone;
  }

  /**
   * True until unregister() was called, or its attachment's segment was removed (its table
   * entry went with it, in every thread at once; its invalidateEnd for the removal still runs).
   */
  get registered(): boolean {
    if (this.#gone !== undefined || !this.#local.live) return false;
    const { words, layout } = this.#mm.cb;
    const base = slotBase(layout.notifiers, this.#local.slot);
    return Atomics.load(words, base + NT_STATE) !== 0 && Atomics.load(words, base + NT_GEN) === this.#gen;
  }

  /**
   * Stops further callbacks at once; resolves once callbacks in flight finished (a start in
   * flight still gets its end first), or rejects with ERR_XPMEM_TIMEOUT at `opts.deadlineMs`
   * (default: the domain's) or ERR_XPMEM_ABORTED: the notifier is unregistered either way. Every
   * call waits for the same callbacks. May be called from a callback (then do not await it
   * there: it resolves after that callback's invalidation ends).
   */
  unregister(opts?: WaitOptions): Promise<void> {
    try {
      checkWaitOptions(opts);
    } catch (error) {
      return Promise.reject(error);
    }
    const deadline = deadlineIn(opts?.deadlineMs ?? this.#mm.cb.deadlineMs);
    return within(
      this.#unregistered(),
      deadline,
      opts?.signal,
      () => xpmemError('ERR_XPMEM_TIMEOUT', 'notifier callbacks were still in flight past the deadline; the notifier is unregistered'),
      () => xpmemError('ERR_XPMEM_ABORTED', `unregister() aborted: ${String(opts?.signal?.reason)}`),
    );
  }

  /** unregister(), for `await using n = att.notifier(callbacks)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.unregister();
  }

  #unregistered(): Promise<void> {
    if (this.#gone !== undefined) return this.#gone;
    const { cb } = this.#mm;
    const base = slotBase(cb.layout.notifiers, this.#local.slot);
    try {
      // Once the membership is over, the domain's close or the space's reap drops it: a space that
      // left a shared domain must not take the mutex as itself while another process reaps it.
      if (this.#mm.state() === 'live') {
        cb.transact(this.#mm.slot, (tx) => {
          if (tx.get(base + NT_STATE) === 0 || tx.get(base + NT_GEN) !== this.#gen) return; // dropped with its attachment
          for (const at of this.#counts) tx.set(at, tx.get(at) - 1);
          freeSlot(tx, cb.notifierList, this.#local.slot);
        });
      }
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_XPMEM_CLOSED') throw error;
    }
    this.#onGone();
    this.#gone = this.#mm.delivery.remove(this.#local);
    return this.#gone;
  }
}

/** Validates a notifier's callbacks object (argument errors come before any state error). */
export function checkCallbacks(callbacks: unknown): void {
  checkOptions('callbacks', callbacks);
  if (callbacks === undefined) throw invalidArgType('callbacks', 'of type object', callbacks);
  for (const name of CALLBACKS) {
    const fn = (callbacks as Record<string, unknown>)[name];
    if (fn !== undefined) checkFunction(`callbacks.${name}`, fn);
  }
}

/**
 * Registers `callbacks` for space-wide scope (`att` undefined: memory owned by the space) or
 * for one attachment's range. One transaction; may sleep briefly on the domain mutex.
 * ERR_XPMEM_REMOVED when the attachment is gone (its segment was removed).
 */
export function registerNotifier(
  mm: Registrar,
  callbacks: NotifierCallbacks,
  att: { slot: number; gen: number; seg: number; segGen: number; segId: number; offset: number; length: number } | undefined,
  onGone: () => void = () => {},
): Notifier {
  checkCallbacks(callbacks);
  mm.checkLive();
  const { cb } = mm;
  const { layout } = cb;
  const counts = att === undefined ? [slotBase(layout.spaces, mm.slot) + SP_NOTIFIERS] : [slotBase(layout.attachments, att.slot) + AT_NOTIFIERS, slotBase(layout.segments, att.seg) + SEG_NOTIFIERS];
  const { slot, gen, regSeq } = cb.transact(mm.slot, (tx) => {
    if (att !== undefined) {
      // The segment's removal freed the attachment slot (and may have reused it): counting a
      // notifier there would corrupt another attachment's count and leak the notifier slot.
      const at = slotBase(layout.attachments, att.slot);
      if (tx.get(at + AT_STATE) === 0 || tx.get(at + AT_GEN) !== att.gen) {
        throw xpmemError('ERR_XPMEM_REMOVED', `segment ${att.segId} was removed by its owner; this attachment is gone`, { segId: att.segId });
      }
    }
    const n = takeSlot(tx, cb.notifierList);
    if (n < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `notifier table full (${layout.notifiers.capacity}); unregister some or raise capacity.notifiers`);
    const base = slotBase(layout.notifiers, n);
    const seq = tx.get(H_REGSEQ) + 1;
    tx.set(H_REGSEQ, seq);
    tx.set(base + NT_SPACE, mm.slot);
    tx.set(base + NT_ATT, att === undefined ? -1 : att.slot);
    tx.set(base + NT_REGSEQ, seq);
    for (const at of counts) tx.set(at, tx.get(at) + 1);
    tx.set(base + NT_STATE, NT_LIVE); // last: published whole (takeSlot)
    return { slot: n, gen: tx.get(base + NT_GEN), regSeq: seq };
  });
  const local: LocalNotifier = {
    slot,
    regSeq,
    callbacks: { ...callbacks },
    scope: att === undefined ? null : { seg: att.seg, segGen: att.segGen, offset: att.offset, length: att.length },
    live: true,
    inflight: 0,
    idle: [],
  };
  mm.delivery.add(local);
  return new Notifier(mm, local, gen, counts, onGone);
}
