/**
 * Delivery of invalidation events to one space's notifiers, in that space's thread.
 *
 * A space learns it has events from SP_EVENTS (set by `post`); it then scans the invalidation
 * records that target it. For each record it runs, in registration order:
 *   START phase: invalidateStart (or release) on every local notifier that matches the range,
 *     is live, and was registered before the record's snapshot (IV_SNAP); then acks STARTED.
 *   END phase: invalidateEnd on exactly the notifiers whose invalidateStart ran; then ENDED.
 * A promise returned by a callback defers the ack until it settles. Callbacks of one record
 * never overlap; a thrown callback counts as done and is reported as a process warning.
 *
 * Order: ends are run before starts, and a record's start waits while an earlier record on the
 * same segment is in flight here (its start running or settling, its end not yet posted by its
 * invalidator, or its end running or settling): no notifier sees a later start of a segment
 * before its earlier end completed (returned and, if it returned a promise, that promise
 * settled). The invalidator of the later record waits for that, within its deadline: the
 * back-pressure that keeps a slow end from letting its segment's records pile up. Records of
 * different segments are independent.
 *
 * Runs from the dispatcher (Atomics.waitAsync on the doorbell while the thread is idle;
 * blockable = true) and inline from library waits and section boundaries (blockable = false).
 * While the space has notifiers, the dispatcher holds the event loop open (a pending
 * waitAsync does not: nodejs/node#61941) and arms one waitAsync per idle period
 * (nodejs/performance#5: each arm takes a global V8 mutex).
 */
import {
  IV_EVENT,
  IV_INVALIDATOR,
  IV_LENGTH,
  IV_OFFSET,
  IV_SEG,
  IV_SNAP,
  IV_START,
  IV_STATE,
  IV_FREE,
  H_CLOSED,
  SEG_GEN,
  SEG_OWNER,
  SP_DOORBELL,
  SP_EVENTS,
  EVENTS,
  idOf,
  segmentLive,
  slotBase,
} from '../layout.js';
import type { ControlBlock } from '../control/control.js';
import { waitAsync } from '../sync/futex.js';
import type { CallbackResult, NotifierCallbacks, Range } from './range.js';
import { ENDED, STARTED, TARGETS, ack, hasBit, readRecord } from './record.js';
import { ring, sleepers } from '../sync/doorbell.js';
import { pause } from '../sync/pause.js';
import { idling, spinForEnd, spinForNext, spinsForAcks, type Spin } from './spin.js';
import { answerAging } from './aging.js';
import { reportThrown } from './thrown.js';
import { idle, publishCallback, returned, settled, type CallbackName } from './busy.js';
import { flowId, type Recorder, type Span } from '../trace/recorder.js';

/** A notifier as its own thread knows it. */
export interface LocalNotifier {
  readonly slot: number;
  readonly regSeq: number;
  readonly callbacks: NotifierCallbacks;
  /** For a range notifier: its attachment's segment slot and byte range; null = space-wide. */
  readonly scope: { seg: number; segGen: number; offset: number; length: number } | null;
  live: boolean;
  /** Invalidation records that matched it and have not ended here. */
  inflight: number;
  /** Resolvers waiting for inflight to reach 0 (unregister). */
  idle: (() => void)[];
}

interface Inflight {
  readonly gen: number;
  readonly seg: number;
  /** Generation of the segment when the start was delivered (its id in every Range). */
  readonly segGen: number;
  /** A remove or release: if it was applied, range notifiers on the segment end with it. */
  readonly removal: boolean;
  readonly notifiers: LocalNotifier[];
  /** Those of `notifiers` whose invalidateStart ran (release-only ones are not paired). */
  readonly paired: LocalNotifier[];
  /** Made when a callback first reads range.signal (an AbortSignal costs microseconds to create). */
  abort: AbortController | undefined;
  /** Callbacks of this record are on this thread's stack now. */
  running: boolean;
  /** A start or end promise of this record has not settled. */
  pending: boolean;
  /** A delivery passed this record (or a later one on its segment) over while busy: deliver again once not. */
  skipped: boolean;
  /** START until the start callbacks finished, then END. */
  phase: 'start' | 'end';
  /** When this space acked the start, its invalidator spun for the acks (spin.ts spinsForAcks). */
  invalidatorSpun: boolean;
}

function overlaps(a: number, alen: number, b: number, blen: number): boolean {
  return a < b + blen && b < a + alen;
}

export class Delivery {
  readonly #cb: ControlBlock;
  readonly #self: number;
  readonly #notifiers: LocalNotifier[] = [];
  readonly #inflight = new Map<number, Inflight>();
  #dispatching = false;
  /** Set by stop(): the space left or its domain closed, and its slot may be another's. */
  #stopped = false;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  readonly #words: Int32Array;
  /** Word index of this space's SP_EVENTS (checked at every section boundary). */
  readonly #eventsAt: number;
  readonly #trace: Recorder;

  constructor(cb: ControlBlock, self: number, trace: Recorder) {
    this.#cb = cb;
    this.#self = self;
    this.#trace = trace;
    idle(cb.words, cb.layout, self); // a slot's last member may have died inside a callback
    this.#words = cb.words;
    this.#eventsAt = slotBase(cb.layout.spaces, self) + SP_EVENTS;
  }

  /** Adds a registered notifier (after its tx committed) and arms the dispatcher. */
  add(n: LocalNotifier): void {
    this.#notifiers.push(n);
    this.#arm();
  }

  /**
   * Stops delivering to `n`; resolves once no callback of it is in flight (its pending starts
   * got their ends). Never sleeps itself; the returned promise may wait.
   */
  remove(n: LocalNotifier): Promise<void> {
    n.live = false;
    const i = this.#notifiers.indexOf(n);
    if (i >= 0) this.#notifiers.splice(i, 1);
    this.#settle();
    if (n.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => n.idle.push(resolve));
  }

  get count(): number {
    return this.#notifiers.length;
  }

  /**
   * True if an invalidation of segment `seg` waits for a callback of this thread: a start still
   * running or whose promise has not settled (its invalidator waits for the ack), or an end
   * running or settling (a later start on the segment waits for it).
   */
  unsettledFor(seg: number): boolean {
    for (const f of this.#inflight.values()) if (f.seg === seg && (f.running || f.pending)) return true;
    return false;
  }

  /**
   * Runs this space's pending events. Called in the space's own thread only: inline (one word
   * checked when nothing is pending) or from the dispatcher. Re-entrant: a callback may call
   * back into the library, which may deliver nested events of other records.
   *
   * The check is a plain load, not Atomics.load (a builtin call on Node 20, paid twice per
   * section). Nothing is lost by it: `post` stores SP_EVENTS before it rings the doorbell, and
   * every sleeper reads its doorbell with Atomics.load before it delivers and sleeps on the value
   * it read, so either that read follows the ring (and then the store is visible to the plain
   * load) or the sleep returns at once. At a section boundary a flag seen late is delivered at
   * the next boundary or wait.
   */
  deliver(blockable: boolean): void {
    if (this.#words[this.#eventsAt] !== 0) this.#pending(blockable); // one plain load when idle (see below)
  }

  #pending(blockable: boolean): void {
    if (this.#stopped) return; // the events are its slot's next member's now
    const words = this.#words;
    const at = this.#eventsAt;
    if (Atomics.exchange(words, at, 0) === 0) return;
    if (!blockable) idling(words, this.#cb.layout, this.#self, false); // delivering at a section boundary: awake
    answerAging(this.#cb, this.#self, this.#notifiers, blockable, this.#trace);
    const { invalidations } = this.#cb.layout;
    for (const starts of [false, true]) {
      // ends first (see the file comment)
      for (let r = 0; r < invalidations.capacity; r++) {
        // A plain load skips free records: a record posted to us was committed before the post
        // that the exchange above read, so it is not seen free here.
        const state = words[slotBase(invalidations, r) + IV_STATE];
        if (state === IV_FREE && (this.#inflight.size === 0 || !this.#inflight.has(r))) continue;
        if ((state === IV_START) === starts) this.#step(r, blockable);
      }
    }
  }

  #step(r: number, blockable: boolean): void {
    const base = slotBase(this.#cb.layout.invalidations, r);
    const { gen, state, targeted, started, ended } = readRecord(this.#words, this.#cb.layout, r, this.#self);
    let f = this.#inflight.get(r);
    if (f !== undefined && (state === IV_FREE || f.gen !== gen)) {
      this.#finish(r, f);
      f = undefined;
    }
    if (state === IV_FREE || !targeted) return;
    if (state === IV_START) {
      if (f !== undefined || started) return;
      this.#start(r, base, gen, blockable);
      return;
    }
    if (ended) return;
    if (f === undefined) {
      this.#ack(r, ENDED); // never started here: nothing to end
      return;
    }
    if (f.running || f.pending) {
      // Never nested or concurrent with this record's own callbacks: re-stepped when they finish.
      if (f.phase === 'start') (f.abort ??= new AbortController()).abort(); // the invalidator moved on while our start still runs (a signal first read later is aborted too)
      f.skipped = true;
      return;
    }
    f.phase = 'end';
    const ends = f.paired.map((n) => n.callbacks.invalidateEnd);
    this.#run(r, f, 'invalidateEnd', ends, this.#range(base, f, blockable), () => {
      this.#ack(r, ENDED);
      this.#finish(r, f);
    });
  }

  /** Runs the starts of record `r` (generation `gen`, read START: its fields are complete and stay). */
  #start(r: number, base: number, gen: number, blockable: boolean): void {
    const { words, layout } = this.#cb;
    const seg = Atomics.load(words, base + IV_SEG);
    for (const earlier of this.#inflight.values()) {
      if (earlier.seg === seg) {
        earlier.skipped = true; // its end completes first (returned, its promise settled); delivered again when it finishes
        return;
      }
    }
    const snap = Atomics.load(words, base + IV_SNAP);
    const segBase = slotBase(layout.segments, seg);
    const owner = Atomics.load(words, segBase + SEG_OWNER) === this.#self;
    const segGen = Atomics.load(words, segBase + SEG_GEN);
    const offset = Atomics.load(words, base + IV_OFFSET);
    const length = Atomics.load(words, base + IV_LENGTH);
    const event = EVENTS[Atomics.load(words, base + IV_EVENT)]!;
    const release = event === 'release';
    // A removal ends every range notifier on the segment, also one whose range lies past a shrunk end.
    const everyRange = release || event === 'remove';
    const notifiers = this.#notifiers.filter(
      (n) => n.live && n.regSeq <= snap && (n.scope === null ? owner : n.scope.seg === seg && n.scope.segGen === segGen && (everyRange || overlaps(n.scope.offset, n.scope.length, offset, length))),
    );
    const paired = release ? notifiers.filter((n) => n.callbacks.release === undefined) : notifiers;
    const f: Inflight = {
      gen,
      seg,
      segGen,
      removal: release || event === 'remove',
      notifiers,
      paired,
      abort: undefined,
      running: false,
      pending: false,
      skipped: false,
      phase: 'start',
      invalidatorSpun: false,
    };
    for (const n of notifiers) n.inflight++;
    this.#inflight.set(r, f);
    const calls = notifiers.map((n) => (release && n.callbacks.release !== undefined ? n.callbacks.release : n.callbacks.invalidateStart));
    this.#run(r, f, release ? 'release' : 'invalidateStart', calls, this.#range(base, f, blockable), () => {
      f.invalidatorSpun = spinsForAcks(words, layout, Atomics.load(words, base + IV_INVALIDATOR)); // before the ack it may see at once
      this.#ack(r, STARTED);
    });
  }

  /**
   * Calls `calls` (the `name` callbacks of record `r`) in order; `done` runs when every returned
   * promise settled (or at once). While they run, the record is busy: a nested delivery (a
   * callback calling into the library) skips it, and a re-check is kicked once they finish if one
   * did, or if promises were awaited (no self-wake otherwise: the delivery that called us goes on
   * scanning). The space publishes that it runs them (busy.ts), and a trace records them as one
   * span, the end of its operation's flow.
   */
  #run(r: number, f: Inflight, name: CallbackName, calls: (((range: Range) => CallbackResult) | undefined)[], range: Range, done: () => void): void {
    f.running = true;
    const busy = publishCallback(this.#words, this.#cb.layout, this.#self, name, f.seg);
    const span = this.#trace.on ? this.#traced(r, f, name, range, calls.length) : undefined;
    const promises: Promise<void>[] = [];
    for (const call of calls) {
      if (call === undefined) continue;
      try {
        const result = call(range);
        if (result !== undefined && typeof (result as Promise<void>).then === 'function') promises.push(Promise.resolve(result).catch(reportThrown));
      } catch (error) {
        reportThrown(error);
      }
    }
    f.running = false;
    if (span !== undefined) this.#trace.end(span);
    returned(this.#words, busy, promises.length > 0);
    if (promises.length === 0) {
      done();
      if (f.skipped) this.#kick();
      f.skipped = false;
      return;
    }
    f.pending = true;
    void Promise.all(promises).then(() => {
      f.pending = false;
      // Stopped meanwhile (the space left, and was reaped): its slot, and the record, may be
      // another's by now; the reaper acked for it.
      if (this.#stopped) return;
      settled(this.#words, busy);
      if (span !== undefined) this.#trace.settled(span);
      done();
      this.#kick();
    });
  }

  /** Begins the span of `calls` callbacks `name` of record `r`, inside which the flow from its operation ends. */
  #traced(r: number, f: Inflight, name: CallbackName, range: Range, calls: number): Span {
    const span = this.#trace.begin(name, { segId: range.segId, event: range.event, blockable: range.blockable, notifiers: calls });
    this.#trace.flow('f', flowId(r, f.gen, f.phase === 'start' ? STARTED : ENDED, this.#self), name);
    return span;
  }

  #range(base: number, f: Inflight, blockable: boolean): Range {
    const { words, layout } = this.#cb;
    return {
      segId: idOf(layout.segments, f.seg, f.segGen),
      offset: Atomics.load(words, base + IV_OFFSET),
      length: Atomics.load(words, base + IV_LENGTH),
      event: EVENTS[Atomics.load(words, base + IV_EVENT)]!,
      blockable,
      get signal() {
        return (f.abort ??= new AbortController()).signal;
      },
    };
  }

  /** Acks phase `which` of record `r` for this space (record.ts ack: who that rings, and why). */
  #ack(r: number, which: number): void {
    ack(this.#words, this.#cb.layout, r, which, this.#self);
  }

  #finish(r: number, f: Inflight): void {
    this.#inflight.delete(r);
    for (const n of f.notifiers) this.#release(n);
    if (f.removal && !segmentLive(this.#words, this.#cb.layout, f.seg, f.segGen)) for (const n of f.notifiers) if (n.scope !== null) void this.remove(n);
  }

  #release(n: LocalNotifier): void {
    if (--n.inflight === 0 && n.idle.length > 0) for (const resolve of n.idle.splice(0)) resolve();
  }

  /** Re-checks events soon (after a promise settled, a later phase may be waiting). */
  #kick(): void {
    const { words, layout } = this.#cb;
    Atomics.store(words, slotBase(layout.spaces, this.#self) + SP_EVENTS, 1);
    ring(words, layout, this.#self);
  }

  #arm(): void {
    if (this.#keepAlive !== undefined) return;
    this.#keepAlive = setInterval(() => {}, 0x7fffffff);
    if (!this.#dispatching) void this.#dispatch();
  }

  /**
   * With no notifier left, the dispatcher still runs until every record that targeted this
   * space (chosen before the last unregister) has its ENDED ack: no invalidator waits on us.
   */
  #settle(): void {
    if (this.#notifiers.length > 0) return;
    const { words, layout } = this.#cb;
    for (let r = 0; r < layout.invalidations.capacity; r++) {
      if (Atomics.load(words, slotBase(layout.invalidations, r) + IV_STATE) !== IV_FREE && hasBit(words, layout, r, TARGETS, this.#self) && !hasBit(words, layout, r, ENDED, this.#self)) return;
    }
    this.#disarm();
  }

  #disarm(): void {
    if (this.#keepAlive === undefined) return;
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    ring(this.#cb.words, this.#cb.layout, this.#self);
  }

  /**
   * Stops the dispatcher for good (space reaped or domain closed): no callback will run again,
   * so every unregister() still waiting for one resolves.
   */
  stop(): void {
    this.#stopped = true;
    this.#notifiers.length = 0;
    for (const f of this.#inflight.values()) for (const n of f.notifiers) this.#release(n);
    this.#inflight.clear();
    this.#disarm();
  }

  /**
   * Spins (notifier/spin.ts, adaptive) while the doorbell reads `seen`, before the dispatcher
   * sleeps: for the end when every record started here has acked its start and awaits its end
   * (it usually follows within microseconds), or for the next event when nothing is in flight
   * (operations back to back). A thread that sees the doorbell move while spinning needs no
   * wake-up, and an invalidator that finds it awake spins for its ack instead of sleeping.
   * Blocks the event loop for the spin only; never while a callback's promise is pending (it
   * would need the event loop to settle). Unless the spin saw the doorbell move, returns it and
   * when it began: the wait that follows tells it how long the event took, so a spin that
   * stopped after misses learns when events come fast again.
   */
  #linger(bell: number, seen: number): { spin: Spin; since: number } | undefined {
    let spin: Spin;
    if (this.#inflight.size === 0) spin = spinForNext(this.#words, this.#cb.layout);
    else {
      let spun = true;
      for (const f of this.#inflight.values()) {
        if (f.pending) return undefined;
        spun &&= f.invalidatorSpun;
      }
      spin = spinForEnd(this.#words, this.#cb.layout, spun);
    }
    const since = performance.now();
    for (const until = since + spin.ms; performance.now() < until; pause()) {
      if (Atomics.load(this.#words, bell) !== seen) {
        spin.observe(performance.now() - since);
        return undefined;
      }
    }
    return { spin, since }; // missed, or did not spin: the wait tells it how long the event took
  }

  /** The idle-time dispatcher: one waitAsync armed per idle period. */
  async #dispatch(): Promise<void> {
    this.#dispatching = true;
    const { words, layout } = this.#cb;
    const bell = slotBase(layout.spaces, this.#self) + SP_DOORBELL;
    try {
      while (this.#keepAlive !== undefined) {
        if (Atomics.load(words, H_CLOSED) !== 0) return this.stop();
        const seen = Atomics.load(words, bell);
        this.deliver(true);
        this.#settle();
        if (this.#keepAlive === undefined) break;
        const lingered = this.#linger(bell, seen);
        idling(words, layout, this.#self, true);
        sleepers(words, layout, this.#self, 1);
        try {
          await waitAsync(words, bell, seen, Infinity);
        } finally {
          sleepers(words, layout, this.#self, -1);
          idling(words, layout, this.#self, false);
        }
        lingered?.spin.observe(performance.now() - lingered.since);
      }
    } finally {
      this.#dispatching = false;
    }
  }
}
