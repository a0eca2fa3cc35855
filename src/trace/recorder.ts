/**
 * Floor 1 of src/ (docs/LAYERS.md), trace/: recording Chrome trace events (this file), collecting
 * them from every thread of a domain (session.ts), and writing them to a file (file.ts).
 *
 * A Recorder is one space's buffer, in its own thread: operations and callbacks record spans,
 * flow ends and instants into it while a trace of the domain records (H_TRACE, a control-block
 * word every thread reads: off, each hook costs one plain load of it). On the first event of a
 * trace it opens the trace's BroadcastChannel and marks its space as recording (SP_TRACED), so
 * the collector knows to wait for its answer. The buffer is bounded by H_TRACE_EVENTS: past it,
 * events are counted, not kept, and the trace says how many were dropped. A worker that exits
 * (not one terminated) sends what it holds on its way out. In a shared domain, a thread whose
 * process does not collect the trace (a worker, or a main thread whose process exits without
 * leaving) writes it in a piece of its process's hand-over instead (handover.ts): no channel
 * reaches the collecting process. Every method runs in the space's own thread; none sleeps or
 * takes a lock.
 */
import { BroadcastChannel, isMainThread, threadId } from 'node:worker_threads';
import { H_TRACE, H_TRACE_COLLECTOR, H_TRACE_EVENTS, SP_TRACED, slotBase, type Layout } from '../layout.js';
import { pieceFile, writeHandOver } from './handover.js';
import { nowUs } from './clock.js';
import { EventBuffer, type RecordedPhase, type TraceEvent } from './buffer.js';

export type { TraceEvent } from './buffer.js';

/** What one thread sends the collector: its events of session `session`. */
export interface Flush {
  readonly session: number;
  /** Its space's slot, and the thread the slot held then. */
  readonly slot: number;
  readonly pid: number;
  readonly tid: number;
  /** 'main' for a main thread; a worker is named by whoever collects. */
  readonly name: string | undefined;
  readonly events: readonly TraceEvent[];
  readonly dropped: number;
  /** When the first event was dropped (µs). */
  readonly droppedAt: number;
}

/** A span begun and not yet ended. */
export interface Span {
  readonly name: string;
  readonly ts: number;
  readonly session: number;
  readonly args: Record<string, unknown> | undefined;
}

/** The BroadcastChannel of the trace of domain `domainId`. */
export function channelName(domainId: number): string {
  return `xpmem-trace:${domainId}`;
}

/**
 * The id of the flow from an operation to the callbacks of space `slot` it caused: record `r` of
 * generation `gen`, phase `phase` (STARTED or ENDED). The callback's thread reads the same
 * record, so it derives the same id.
 */
export function flowId(r: number, gen: number, phase: number, slot: number): string {
  return `${r}.${gen}.${phase}.${slot}`;
}

/** Recorders with events, flushed when their thread exits. */
const holding = new Set<Recorder>();
let exitHooked = false;

export class Recorder {
  readonly #words: Int32Array;
  readonly #domainId: number;
  readonly #slot: number;
  readonly #tracedAt: number;
  #session = 0;
  #events = new EventBuffer(0);
  /** Spans begun and not ended, oldest first: one that ends under a younger one is not nested. */
  readonly #open: Span[] = [];
  #asyncIds = 0;
  #channel: BroadcastChannel | undefined;
  /** A shared domain's file (pieces of hand-overs go beside it); undefined for threads only. */
  readonly #file: string | undefined;

  constructor(words: Int32Array, layout: Layout, domainId: number, slot: number, file: string | undefined) {
    this.#words = words;
    this.#file = file;
    this.#domainId = domainId;
    this.#slot = slot;
    this.#tracedAt = slotBase(layout.spaces, slot) + SP_TRACED;
    Atomics.store(words, this.#tracedAt, 0); // a slot's last member may have recorded in the trace recording now
  }

  /**
   * True while a trace of the domain records. One plain load: trace() stores the word with
   * Atomics, and a thread that sees it a few events late only records them late.
   */
  get on(): boolean {
    return this.#words[H_TRACE]! > 0;
  }

  /** Begins a span named `name` at `ts` (default now; its args, if any, may be added to until it ends). */
  begin(name: string, args: Record<string, unknown> | undefined, ts?: number): Span {
    const session = this.#current(); // first, so that joining a trace is not timed in the span
    const span = { name, ts: ts ?? nowUs(), session, args };
    this.#open.push(span);
    return span;
  }

  /**
   * Ends `span`: a complete span (X) on this thread's track when every span begun inside it
   * ended first, else (an async operation that interleaved with other work) an async span (b/e)
   * beside the track, so the track's spans always nest. At `ts` (default now).
   */
  end(span: Span, ts = nowUs()): void {
    const at = this.#open.lastIndexOf(span);
    if (at >= 0) this.#open.splice(at, 1);
    if (span.session === 0 || span.session !== this.#current()) return;
    if (at === this.#open.length) this.#push('X', span.name, span.ts, ts - span.ts, undefined, span.args);
    else this.#apart(span, ts);
  }

  /** Records `span` again as an async span lasting until now (a callback's promise settled). */
  settled(span: Span): void {
    if (span.session !== 0 && span.session === this.#current()) this.#apart(span, nowUs());
  }

  /**
   * A flow start (an operation) or end (a callback it caused, binding to the span around it), at
   * `ts` (default now).
   */
  flow(ph: 's' | 'f', id: string, name: string, ts = nowUs()): void {
    if (this.#current() === 0) return;
    this.#push(ph, name, ts, 0, id, undefined);
  }

  /**
   * Hands over what this space recorded in trace `session` and forgets it (the collector asked,
   * or the thread exits); undefined when it recorded nothing in it.
   */
  take(session: number): Flush | undefined {
    if (session !== this.#session) return undefined;
    const { dropped, droppedAt } = this.#events;
    const flush = { session, slot: this.#slot, pid: process.pid, tid: threadId, name: isMainThread ? 'main' : undefined, events: this.#events.events(process.pid, threadId), dropped, droppedAt };
    this.#events = new EventBuffer(Atomics.load(this.#words, H_TRACE_EVENTS));
    holding.delete(this);
    return flush;
  }

  /** Stops answering (the space left its domain): what it holds is sent first. */
  close(): void {
    this.#sendOnItsWay();
    this.#channel?.close();
    this.#channel = undefined;
    this.#session = 0;
  }

  #apart(span: Span, end: number): void {
    const id = `${threadId}.${++this.#asyncIds}`;
    this.#push('b', span.name, span.ts, 0, id, span.args);
    this.#push('e', span.name, end, 0, id, undefined);
  }

  /** The trace recording now (0: none), joining it on its first event here. */
  #current(): number {
    const session = Math.max(0, Atomics.load(this.#words, H_TRACE)); // -1: a trace starting
    if (session !== this.#session && session !== 0) this.#join(session);
    return session;
  }

  /**
   * Joins trace `session`: a fresh buffer, the trace's channel opened before SP_TRACED says so
   * (the collector asks only spaces it sees marked, and a channel hears only what is posted after
   * it opened).
   */
  #join(session: number): void {
    this.#channel?.close();
    this.#session = session;
    this.#events = new EventBuffer(Atomics.load(this.#words, H_TRACE_EVENTS));
    this.#open.length = 0;
    const channel = new BroadcastChannel(channelName(this.#domainId));
    channel.unref();
    channel.onmessage = (m: unknown) => {
      if ((m as { data: { collect?: number } }).data.collect === this.#session) this.#send();
    };
    this.#channel = channel;
    Atomics.store(this.#words, this.#tracedAt, session);
    if (!exitHooked && (!isMainThread || this.#file !== undefined)) {
      exitHooked = true;
      process.once('exit', () => {
        for (const r of holding) r.#exiting();
      });
    }
  }

  /**
   * Hands over what this space holds as its thread exits: to the collector through the channel
   * in its own process, else (a shared domain another process collects) in a piece of this
   * process's hand-over. A piece that cannot be written is a warning.
   */
  #exiting(): void {
    const file = this.#file;
    if (file === undefined || this.#collectedHere()) {
      this.#sendOnItsWay();
      return;
    }
    const flush = this.take(this.#session);
    if (flush === undefined) return;
    const name = flush.name ?? `worker ${threadId}`;
    try {
      writeHandOver(pieceFile(file, flush.session, process.pid, threadId), { pid: process.pid, tid: threadId, name, flushes: [{ ...flush, name }], silent: [] });
    } catch (error) {
      process.emitWarning(`xpmem-threads: could not hand trace events over: ${(error as Error).message}`, 'XpmemTraceWarning');
    }
  }

  /**
   * Sends what this space holds as its thread leaves, and, when the collector is in this process
   * (its channel hears it), marks it on its way (SP_TRACED negated): the collector waits for it
   * though the space is gone by the time it looks.
   */
  #sendOnItsWay(): void {
    if (this.#send() && this.#collectedHere()) Atomics.store(this.#words, this.#tracedAt, -this.#session);
  }

  /** True when the trace's collector runs in this process: always for threads only. */
  #collectedHere(): boolean {
    return this.#file === undefined || Atomics.load(this.#words, H_TRACE_COLLECTOR) === process.pid;
  }

  /** Sends what this space holds of its trace to the collector (it may be another thread); false when it held nothing. */
  #send(): boolean {
    const flush = this.take(this.#session);
    if (flush === undefined || this.#channel === undefined) return false;
    this.#channel.postMessage(flush);
    return true;
  }

  #push(ph: RecordedPhase, name: string, ts: number, dur: number, id: string | undefined, args: Record<string, unknown> | undefined): void {
    if (this.#events.length === 0) holding.add(this);
    this.#events.push(ph, name, ts, dur, id, args);
  }
}
