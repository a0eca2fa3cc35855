/**
 * A trace of a domain, from domain.trace() to tracing.stop(): the collector. trace() stores a
 * fresh session number in the control block's H_TRACE word, which every thread of the domain
 * reads before it records (recorder.ts); stop() clears it, asks every space of this process
 * marked as recording in it (SP_TRACED) for its events over the trace's BroadcastChannel, waits
 * for their answers within a bound, and returns them as one Chrome trace-event JSON object: a
 * track per thread, a pid per process. Workers that exit while the trace records send their
 * events on their way out, and the collector keeps them; a worker terminated (worker.terminate(),
 * a pool's abort) cannot, and what it recorded is lost: the trace says so.
 *
 * In a shared domain, each other process that recorded sees the trace end (its watcher looks
 * every 50 ms: handOverEnded), gathers its own threads the same way and hands their events over
 * in a file (handover.ts), which stop() waits for within the same bound; a process that does not
 * answer by then (its event loop blocked) is named in the trace, its events not gathered. A
 * thread of another process that exits while recording writes a piece of that hand-over
 * (recorder.ts), which stop() takes with the rest. The
 * collector runs in the thread that called trace(); it never blocks, and stop() waits without
 * blocking the event loop.
 */
import { BroadcastChannel, isMainThread, threadId } from 'node:worker_threads';
import { checkIndex, checkOptions, xpmemError } from '../errors.js';
import { checkKeys } from '../options.js';
import { H_CLOSED, H_TRACE, H_TRACE_COLLECTOR, H_TRACE_EVENTS, H_TRACE_STOP_MS, SP_PID, SP_STATE, SP_THREAD, SP_TRACED, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';
import { claimHandOver, handedOver, handOverFile, takeHandOver, writeHandOver, type HandOver, type Silent } from './handover.js';
import { nowUs } from './clock.js';
import type { TraceEvent } from './buffer.js';
import { channelName, type Flush } from './recorder.js';

/** Options of domain.trace(). */
export interface TraceOptions {
  /** Events each thread keeps (default 100,000); past it they are counted as dropped. */
  maxEvents?: number;
}

/** Options of tracing.stop(). */
export interface StopOptions {
  /** How long to wait for threads to send their events, in ms (default 2,000). */
  deadlineMs?: number;
}

/** What stop() returns: Chrome trace-event JSON (`JSON.stringify` it, open it in ui.perfetto.dev). */
export interface Trace {
  /** Every event of every thread that answered, with the metadata naming processes and threads. */
  readonly traceEvents: TraceEvent[];
  /** How a viewer shows times. */
  readonly displayTimeUnit: 'ms';
}

/** The domain a trace is of, as the collector reads it. */
export interface TracedDomain {
  readonly words: Int32Array;
  readonly layout: Layout;
  readonly id: number;
  /** The recorder of the collecting thread's own space. */
  readonly own: { take(session: number): Flush | undefined };
  /** A worker's name (given to domain.spawn), by threadId. */
  nameOf(threadId: number): string | undefined;
  /** A shared domain's file: other processes hand their events over beside it. */
  readonly file: string | undefined;
}

const STOP_MS = 2_000;
/** The keys StopOptions knows. */
const STOP_KEYS = { deadlineMs: true } as const satisfies Record<keyof StopOptions, true>;
/** How often stop() looks again at which spaces it still waits for (one may be reaped meanwhile). */
const LOOK_MS = 10;

/** Starts a trace of `domain`. ERR_XPMEM_BUSY when one already records. Never sleeps. */
export function startTrace(domain: TracedDomain, maxEvents: number): Tracing {
  const session = 1 + Math.floor(Math.random() * 0x7ffffffe);
  // Claimed (-1, which no thread records under) before the bound is stored, so a thread that
  // sees the session sees its bound.
  if (Atomics.compareExchange(domain.words, H_TRACE, 0, -1) !== 0) {
    throw xpmemError('ERR_XPMEM_BUSY', 'a trace of this domain is already recording (domain.trace(), or XPMEM_TRACE); stop it first');
  }
  Atomics.store(domain.words, H_TRACE_EVENTS, maxEvents);
  Atomics.store(domain.words, H_TRACE_COLLECTOR, process.pid);
  const tracing = new Tracing(domain, session); // its channel listens before any thread records
  Atomics.store(domain.words, H_TRACE, session);
  return tracing;
}

/** A space slot as traces read it: its first word, process (a left one's too), trace session (SP_TRACED), and whether it is live. */
interface TracedSpace {
  readonly slot: number;
  readonly base: number;
  readonly pid: number;
  readonly session: number;
  readonly live: boolean;
}

/** Every space slot of `domain` joined so far. Any thread; never blocks. */
function* spacesOf({ words, layout }: TracedDomain): Generator<TracedSpace> {
  for (let slot = 0, top = spaceTop(words); slot < top; slot++) {
    const base = slotBase(layout.spaces, slot);
    yield {
      slot,
      base,
      pid: Math.abs(Atomics.load(words, base + SP_PID)),
      session: Atomics.load(words, base + SP_TRACED),
      live: Atomics.load(words, base + SP_STATE) === SPACE_LIVE,
    };
  }
}

/**
 * The events of this process's threads in trace `session`, as they answer its channel (opened
 * at construction: a worker that exits while the trace records sends on its way out). Runs in
 * one thread; never blocks.
 */
class Collector {
  readonly #domain: TracedDomain;
  readonly #session: number;
  readonly #channel: BroadcastChannel;
  /** What threads sent, by `${slot}:${tid}`. */
  readonly flushes = new Map<string, Flush>();
  #onFlush: (() => void) | undefined;

  constructor(domain: TracedDomain, session: number) {
    this.#domain = domain;
    this.#session = session;
    this.#channel = new BroadcastChannel(channelName(domain.id));
    this.#channel.unref();
    this.#channel.onmessage = (m: unknown) => {
      const flush = (m as { data: Flush }).data;
      if (flush.session === session && flush.events !== undefined) this.add(flush);
    };
  }

  /** Keeps `flush`, appended to what its thread sent before. */
  add(flush: Flush): void {
    const key = `${flush.slot}:${flush.tid}`;
    const known = this.flushes.get(key);
    this.flushes.set(key, known === undefined ? flush : { ...flush, events: [...known.events, ...flush.events], dropped: known.dropped + flush.dropped });
    this.#onFlush?.();
  }

  /**
   * Asks this process's threads for their events (and takes this thread's own), then waits
   * until `done()` (looked at on each answer and every LOOK_MS) or `deadline`. Waits without
   * blocking the event loop.
   */
  async gather(deadline: number, done: () => boolean): Promise<void> {
    this.#channel.postMessage({ collect: this.#session });
    const own = this.#domain.own.take(this.#session);
    if (own !== undefined) this.add(own);
    while (!done() && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(LOOK_MS, Math.max(0, deadline - performance.now())));
        this.#onFlush = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onFlush = undefined;
    }
  }

  /**
   * Spaces of this process whose events have not come: live ones marked as recording in this
   * trace, and those whose thread sent its events as it exited (the channel may deliver them
   * after the thread's exit is seen).
   */
  missing(): Silent[] {
    const missing: Silent[] = [];
    for (const { slot, base, live, pid, session } of spacesOf(this.#domain)) {
      const waited = session === -this.#session || (live && session === this.#session);
      if (!waited || pid !== process.pid) continue;
      const threadId = Atomics.load(this.#domain.words, base + SP_THREAD);
      if (!this.flushes.has(`${slot}:${threadId}`)) missing.push({ slot, threadId });
    }
    return missing;
  }

  /**
   * Closes the channel. With `forget`, this process's spaces no longer show as recording in the
   * trace (unless one joined another since), so no watcher of this process hands it over after.
   */
  close(forget = false): void {
    this.#channel.close();
    if (!forget) return;
    for (const { base, pid } of spacesOf(this.#domain)) if (pid === process.pid) Atomics.compareExchange(this.#domain.words, base + SP_TRACED, this.#session, 0);
  }
}

/**
 * The shared domain's watcher's part (every 50 ms, in each process's Domain thread): for each
 * trace another process stopped in which this process's spaces recorded, gathers their events
 * and hands them over (handover.ts), once per trace (`handed`; and once per process: the first
 * Domain of the process to claim it). The process that made the trace hands nothing over: it
 * gathers its own threads itself. Never blocks.
 */
export function handOverEnded(domain: TracedDomain, handed: Set<number>): void {
  const { words } = domain;
  if (Atomics.load(words, H_TRACE_COLLECTOR) === process.pid) return;
  const current = Atomics.load(words, H_TRACE);
  for (const { live, pid, session } of spacesOf(domain)) {
    if (session <= 0 || session === current || handed.has(session) || !live || pid !== process.pid) continue;
    handed.add(session);
    void handOver(domain, session, Atomics.load(words, H_TRACE_STOP_MS));
  }
}

/**
 * A process leaving its shared domain (an opener's close()) while a trace another process made
 * records: gathers this process's events so far and hands them over now, since its spaces will
 * be gone when the trace stops. Waits without blocking the event loop, at most STOP_MS.
 */
export async function handOverLeaving(domain: TracedDomain): Promise<void> {
  const session = Atomics.load(domain.words, H_TRACE);
  if (session <= 0 || Atomics.load(domain.words, H_TRACE_COLLECTOR) === process.pid) return;
  for (const s of spacesOf(domain)) if (s.session === session && s.pid === process.pid) return handOver(domain, session, STOP_MS);
}

/**
 * Gathers this process's events of trace `session` within `deadlineMs`, and writes them for the
 * process that stops it. A failure (the file cannot be written) is a warning: the stopping
 * process names this one as not answering.
 */
async function handOver(domain: TracedDomain, session: number, deadlineMs: number): Promise<void> {
  const { file } = domain;
  if (file === undefined || !claimHandOver(handOverFile(file, session, process.pid))) return;
  const collector = new Collector(domain, session);
  try {
    await collector.gather(performance.now() + deadlineMs, () => collector.missing().length === 0);
    if (Atomics.load(domain.words, H_CLOSED) !== 0) return;
    const flushes = [...collector.flushes.values()].map((f) => ({ ...f, name: f.name ?? domain.nameOf(f.tid) }));
    const silent = collector.missing().map((m) => ({ ...m, deadlineMs }));
    const name = isMainThread ? 'main' : (domain.nameOf(threadId) ?? `worker ${threadId}`);
    writeHandOver(handOverFile(file, session, process.pid), { pid: process.pid, tid: threadId, name, flushes, silent });
  } catch (error) {
    process.emitWarning(`xpmem-threads: could not hand trace events over: ${(error as Error).message}`, 'XpmemTraceWarning');
  } finally {
    collector.close();
  }
}

/** A trace recording: stop() ends it and gathers every thread's events. */
export class Tracing {
  readonly #domain: TracedDomain;
  readonly #session: number;
  readonly #collector: Collector;
  #stopped: Promise<Trace> | undefined;

  constructor(domain: TracedDomain, session: number) {
    this.#domain = domain;
    this.#session = session;
    this.#collector = new Collector(domain, session);
  }

  /**
   * Stops recording in every thread and resolves with the events of every thread that sent
   * them within `opts.deadlineMs`, in this process and, in a shared domain, in the others: a
   * thread or a process that does not answer by then (blocked, or in a long synchronous loop)
   * is named in the trace, its events lost. Calling it again resolves with the same trace. Bad
   * options throw before anything stops. Waits without blocking the event loop.
   */
  stop(opts: StopOptions = {}): Promise<Trace> {
    checkOptions('options', opts);
    checkKeys('options', opts, STOP_KEYS);
    const deadlineMs = opts.deadlineMs === undefined ? STOP_MS : checkIndex('options.deadlineMs', opts.deadlineMs, 0, 2 ** 31 - 1);
    this.#stopped ??= this.#gather(deadlineMs);
    return this.#stopped;
  }

  /**
   * The trace as far as it got here, synchronously (the process is exiting): this thread's own
   * events, and those of threads that exited and sent theirs. Stops recording.
   */
  snapshot(): Trace {
    this.#end();
    const own = this.#domain.own.take(this.#session);
    if (own !== undefined) this.#collector.add(own);
    const missing = this.#collector.missing();
    this.#collector.close(true);
    const why = 'the trace was taken as the process exited, without waiting for other processes';
    return this.#assemble(
      missing,
      [],
      [...this.#elsewhere()].map((pid) => ({ pid, why })),
    );
  }

  async #gather(deadlineMs: number): Promise<Trace> {
    Atomics.store(this.#domain.words, H_TRACE_STOP_MS, deadlineMs); // before the end the others see
    this.#end();
    const { file } = this.#domain;
    const handed: HandOver[] = [];
    const whole = new Set<number>(); // processes whose hand-over came (pieces may come before)
    const pending = (): number[] => [...this.#elsewhere()].filter((pid) => !whole.has(pid));
    const done = (): boolean => {
      // Every hand-over and piece written: also those of processes that left or exited while the trace recorded.
      if (file !== undefined) {
        for (const { file: written, pid, whole: all } of handedOver(file, this.#session)) {
          const handOver = takeHandOver(written);
          if (handOver === undefined) continue;
          handed.push(handOver);
          if (all) whole.add(pid);
        }
      }
      return this.#collector.missing().length === 0 && pending().length === 0;
    };
    await this.#collector.gather(performance.now() + deadlineMs, done);
    const missing = this.#collector.missing();
    this.#collector.close(true);
    return this.#assemble(
      missing.map((m) => ({ ...m, deadlineMs })),
      handed,
      pending().map((pid) => ({ pid, why: `the process did not hand its events over within ${deadlineMs} ms (its event loop busy or blocked)` })),
    );
  }

  /** Stops recording (H_TRACE back to 0, unless another trace took it since). */
  #end(): void {
    Atomics.compareExchange(this.#domain.words, H_TRACE, this.#session, 0);
  }

  /** Other processes with live spaces that recorded in this trace. */
  #elsewhere(): Set<number> {
    const pids = new Set<number>();
    for (const { live, pid, session } of spacesOf(this.#domain)) if (live && session === this.#session && pid !== process.pid) pids.add(pid);
    return pids;
  }

  /**
   * Every event sent or handed over, with the metadata naming each process and thread, and what
   * was lost: threads of this process that did not answer (`silent`), threads another process
   * named as silent in its hand-over, and processes that handed nothing over (`unanswered`).
   */
  #assemble(silent: readonly Silent[], handed: readonly HandOver[], unanswered: readonly { pid: number; why: string }[]): Trace {
    const events: TraceEvent[] = [];
    const tracks = new Set<string>();
    const processes = new Set<number>();
    const track = (pid: number, tid: number, name: string): void => {
      processes.add(pid);
      if (tracks.has(`${pid}:${tid}`)) return;
      tracks.add(`${pid}:${tid}`);
      events.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name } });
    };
    const ts = nowUs();
    // On the track of the thread that gathered: the silent one has none (it sent nothing).
    const lost = (pid: number, tid: number, name: string, m: Silent): void => {
      track(pid, tid, name);
      const why = m.deadlineMs === undefined ? 'the process exited first' : `it did not answer within ${m.deadlineMs} ms`;
      events.push({ name: 'events lost', ph: 'i', s: 't', ts, pid, tid, args: { slot: m.slot, threadId: m.threadId, why } });
    };
    for (const f of [...this.#collector.flushes.values(), ...handed.flatMap((h) => h.flushes)]) {
      track(f.pid, f.tid, f.name ?? this.#domain.nameOf(f.tid) ?? `worker ${f.tid}`);
      events.push(...f.events);
      if (f.dropped > 0) events.push({ name: 'trace buffer full', ph: 'i', s: 't', ts: f.droppedAt, pid: f.pid, tid: f.tid, args: { dropped: f.dropped } });
    }
    for (const m of silent) lost(process.pid, threadId, isMainThread ? 'main' : (this.#domain.nameOf(threadId) ?? `worker ${threadId}`), m);
    for (const h of handed) for (const m of h.silent) lost(h.pid, h.tid, h.name, m);
    for (const { pid, why } of unanswered) {
      track(pid, 0, 'not gathered');
      events.push({ name: 'events not gathered', ph: 'i', s: 't', ts, pid, tid: 0, args: { why } });
    }
    for (const pid of processes) events.push({ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: `node ${pid}` } });
    return { traceEvents: events, displayTimeUnit: 'ms' };
  }
}
