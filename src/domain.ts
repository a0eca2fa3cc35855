/**
 * Domain: the control block and arena shared by every space, created by one thread (usually
 * the main thread), which also watches the workers it spawns and reaps them when they exit.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSwapDir, discardAll } from './control/swapfile.js';
import { checkFunction, checkIndex, checkOptions, invalidArgType, invalidArgValue, outOfRange, xpmemError, type XpmemError } from './errors.js';
import { checkKeys } from './options.js';
import { ControlBlock, type DomainHandle } from './control/control.js';
import { H_ARENA_UNITS, H_CLOSED, H_SLOW_MS, H_TRACE, SP_STATE, SPACE_LIVE, UNIT, slotBase, type Capacities } from './layout.js';
import { startTrace, type TraceOptions, type Tracing } from './trace/session.js';
import { traceToFile } from './trace/file.js';
import { ring } from './sync/doorbell.js';
import { checkWaitOptions, within, type WaitOptions } from './sync/futex.js';
import { checkControlBlock, type CheckReport } from './control/check.js';
import { forget, joinerOf, joinMm } from './workers/join.js';
import { seize } from './sync/mutex.js';
import { reap, spacesOfThread } from './workers/reap.js';
import type { Space } from './segment/space.js';
import { formatRows, mapsOf, statsOf, type DomainStats, type MapRow } from './observe.js';
import { INSPECT, inspected, type HandleInspectOptions } from './segment/inspect.js';
import type { Mm } from './mm.js';
import { compact, type CompactReport } from './vm/compact.js';

/**
 * Options of Domain.create. An unknown key is refused (ERR_INVALID_ARG_VALUE, naming the known
 * key it resembles); byte sizes are multiples of 64, the arena's unit (else ERR_OUT_OF_RANGE).
 */
export interface DomainOptions {
  /**
   * Initial arena size in bytes (default 16 MiB, or maxArenaBytes if smaller); the arena grows
   * on demand. At most maxArenaBytes: for a larger arena, raise that too.
   */
  arenaBytes?: number;
  /** Arena limit in bytes (default 1 GiB, at most 4 GiB - 64). */
  maxArenaBytes?: number;
  /** Default bound, in ms, of every wait (callbacks, locks): default 10,000. */
  deadlineMs?: number;
  /**
   * Resident bytes allowed (default: no limit). An allocation that would pass it first swaps out
   * unreferenced swappable segments (the reclaim clock), else fails with ERR_XPMEM_NO_MEMORY.
   */
  memoryLimit?: number;
  /**
   * Directory for swap files (default: a fresh directory under the OS temp dir, removed by
   * close()). A directory you give must exist and be writable, else create() fails with
   * ERR_XPMEM_SWAP_IO (the fs error as `cause`); close() removes only this domain's files in it.
   */
  swapDir?: string;
  /** Table capacities (fixed for the domain's life). */
  capacity?: Partial<Capacities>;
  /**
   * How long, in ms, a VM operation waits before `xpmem:slow` reports it in its thread, and again
   * after each further slowMs while it still waits (default 1,000).
   */
  slowMs?: number;
}

/** The keys DomainOptions knows (the compiler keeps this list and the interface the same). */
const DOMAIN_KEYS = { arenaBytes: true, maxArenaBytes: true, deadlineMs: true, memoryLimit: true, swapDir: true, capacity: true, slowMs: true } as const satisfies Record<keyof DomainOptions, true>;

/** The keys TraceOptions knows. */
const TRACE_KEYS = { maxEvents: true } as const satisfies Record<keyof TraceOptions, true>;

/** The largest arena: its size in units lives in a 32-bit control-block word. */
const MAX_ARENA = 2 ** 32 - UNIT;

/** maxArenaBytes when none is given: 1 GiB. */
const DEFAULT_MAX_ARENA = 2 ** 30;

const DEFAULT_CAPS: Capacities = { spaces: 64, segments: 4096, grants: 8192, attachments: 8192, notifiers: 4096, invalidations: 64, depth: 8, journal: 8192 };

/** The keys options.capacity knows: those of the default capacities. */
const CAPACITY_KEYS: Readonly<Record<string, true>> = Object.fromEntries(Object.keys(DEFAULT_CAPS).map((key) => [key, true]));

/**
 * A domain: the shared control block and the arena every joined thread sees. The creating
 * thread joins it (`domain.space`); workers join through `spawn()` or `join(handle)`, and are
 * reaped when they exit. Its methods run in the creating thread.
 */
export class Domain {
  readonly #cb: ControlBlock;
  readonly #mm: Mm;
  /** The creating thread's own space. */
  readonly space: Space;
  readonly #reaps = new Set<Promise<unknown>>();
  /** The last ERR_XPMEM_TIMEOUT a reap retried after (what settled() names at its deadline). */
  #stalled: XpmemError | undefined;
  /** True when swapDir was made by create() (close() removes it). */
  readonly #ownSwapDir: boolean;
  /** What close() runs once the domain is marked closed (onClose). */
  readonly #onClose = new Set<() => Promise<void>>();
  /** Names of the workers spawn() started, by threadId: their tracks in a trace. */
  readonly #names = new Map<number, string>();
  /** With XPMEM_TRACE: writes the trace of the whole run (close() calls it). */
  #traceFile: (() => Promise<void>) | undefined;

  private constructor(cb: ControlBlock, mm: Mm, space: Space, ownSwapDir: boolean) {
    this.#cb = cb;
    this.#mm = mm;
    this.space = space;
    this.#ownSwapDir = ownSwapDir;
  }

  /** Creates a domain and joins the calling thread to it. */
  static async create(opts: DomainOptions = {}): Promise<Domain> {
    checkOptions('options', opts);
    checkKeys('options', opts, DOMAIN_KEYS);
    const maxArenaBytes = opts.maxArenaBytes === undefined ? DEFAULT_MAX_ARENA : checkUnits('options.maxArenaBytes', opts.maxArenaBytes, UNIT, MAX_ARENA);
    const arenaBytes = opts.arenaBytes === undefined ? Math.min(16 * 2 ** 20, maxArenaBytes) : checkUnits('options.arenaBytes', opts.arenaBytes, 0, maxArenaBytes, arenaBound(opts.maxArenaBytes));
    const deadlineMs = opts.deadlineMs === undefined ? 10_000 : checkIndex('options.deadlineMs', opts.deadlineMs, 1, 2 ** 31 - 1);
    const slowMs = opts.slowMs === undefined ? 1_000 : checkIndex('options.slowMs', opts.slowMs, 1, 2 ** 31 - 1);
    checkOptions('options.capacity', opts.capacity);
    const caps = { ...DEFAULT_CAPS };
    checkKeys('options.capacity', opts.capacity ?? {}, CAPACITY_KEYS);
    for (const [key, value] of Object.entries(opts.capacity ?? {})) caps[key as keyof Capacities] = checkIndex(`options.capacity.${key}`, value, 1, 2 ** 20);
    caps.spaces = Math.min(caps.spaces, 1024);
    const memoryLimit = opts.memoryLimit === undefined ? 0 : checkUnits('options.memoryLimit', opts.memoryLimit, UNIT, MAX_ARENA);
    if (opts.swapDir !== undefined && typeof opts.swapDir !== 'string') throw invalidArgType('options.swapDir', 'of type string', opts.swapDir);
    if (opts.swapDir !== undefined) checkSwapDir(opts.swapDir);
    const swapDir = opts.swapDir ?? mkdtempSync(join(tmpdir(), 'xpmem-swap-'));
    const cb = ControlBlock.format(caps, { arenaBytes, maxArenaBytes, memoryLimit, deadlineMs, swapDir });
    Atomics.store(cb.words, H_SLOW_MS, slowMs);
    const { mm, space } = joinMm(cb.handle);
    const domain = new Domain(cb, mm, space, opts.swapDir === undefined);
    const file = process.env.XPMEM_TRACE;
    if (file !== undefined && file !== '') domain.#traceFile = traceToFile(domain.trace(), file);
    return domain;
  }

  /**
   * Starts recording a trace of the domain, in every thread of it: operations, their phases,
   * callbacks, and the flows between them. `await tracing.stop()` gives it as Chrome trace-event
   * JSON (open it in ui.perfetto.dev). ERR_XPMEM_BUSY while another trace of the domain records
   * (XPMEM_TRACE records one from create to close). Runs in the creating thread.
   */
  trace(opts: TraceOptions = {}): Tracing {
    checkOptions('options', opts);
    checkKeys('options', opts, TRACE_KEYS);
    const maxEvents = opts.maxEvents === undefined ? 100_000 : checkIndex('options.maxEvents', opts.maxEvents, 1, 2 ** 31 - 1);
    this.#mm.checkLive();
    const { words, layout, id } = this.#cb;
    return startTrace({ words, layout, id, own: this.#mm.trace, nameOf: (threadId) => this.#names.get(threadId) }, maxEvents);
  }

  /** A structured-cloneable handle: pass it to a worker, which calls join(handle). */
  handle(): DomainHandle {
    return this.#cb.handle;
  }

  /**
   * Starts a worker whose workerData.xpmem is this domain's handle (the rest of `opts.workerData`
   * kept) and watches it: when it exits, its space is reaped.
   */
  spawn(file: string | URL, opts: WorkerOptions = {}): Worker {
    checkOptions('options', opts);
    const data = opts.workerData === undefined ? {} : opts.workerData;
    if (typeof data !== 'object' || data === null) throw invalidArgType('options.workerData', 'an object (xpmem adds its handle to it)', data);
    const worker = new Worker(file, { ...opts, workerData: { ...data, xpmem: this.handle() } });
    if (typeof opts.name === 'string') this.#nameTrack(worker, opts.name);
    this.watch(worker);
    return worker;
  }

  /** Names `worker`'s track in traces, until it exits outside a trace (one recording keeps the name for its stop()). */
  #nameTrack(worker: Worker, name: string): void {
    const { threadId } = worker;
    this.#names.set(threadId, name);
    worker.once('exit', () => {
      if (Atomics.load(this.#cb.words, H_TRACE) === 0) this.#names.delete(threadId);
    });
  }

  /**
   * Reaps the spaces of `worker`'s thread when it exits (spawn does this for you): its 'exit'
   * event is the only way a space is reaped, so a thread still running is never reaped under
   * its feet. The reap runs in this thread; see workers/reap.ts. Returns the worker; a worker
   * that has already exited is ERR_INVALID_ARG_VALUE (its thread can no longer be known).
   */
  watch(worker: Worker): Worker {
    if (!(worker instanceof Worker)) throw invalidArgType('worker', 'an instance of Worker', worker);
    const threadId = worker.threadId;
    if (threadId < 0) throw invalidArgValue('worker', 'a Worker that has not exited (watch it before it exits, as domain.spawn() does)', 'an exited Worker');
    worker.once('exit', () => {
      const done = this.#reapThread(threadId).catch((error: unknown) => {
        process.emitWarning(`xpmem-threads: reaping thread ${threadId} failed: ${String(error)}`, 'XpmemReapWarning');
        return 0;
      });
      this.#reaps.add(done);
      void done.finally(() => this.#reaps.delete(done));
    });
    return worker;
  }

  /** Reaps every live space of thread `threadId`, which has exited; resolves when their segments are removed. */
  async #reapThread(threadId: number): Promise<number> {
    if (Atomics.load(this.#cb.words, H_CLOSED) !== 0) return 0;
    seize(this.#cb.words, this.#cb.layout, joinerOf(threadId), this.#mm.slot); // died inside its join
    let removed = 0;
    for (const slot of spacesOfThread(this.#cb, threadId))
      removed += await reap(this.#mm, slot, (error) => {
        this.#stalled = error;
      });
    return removed;
  }

  /**
   * Resolves when every reap started by a worker exit has finished. A reap waits only for live
   * attachers of the dead space's segments, and retries past each deadline until they answer:
   * settled() gives up at `opts.deadlineMs` (default: the domain's) with ERR_XPMEM_TIMEOUT
   * naming the space a reap waited for last, or ERR_XPMEM_ABORTED (the reaps go on).
   */
  async settled(opts?: WaitOptions): Promise<void> {
    checkWaitOptions(opts);
    const { deadline, signal } = this.#mm.bounds(opts, false);
    const all = (async () => {
      while (this.#reaps.size > 0) await Promise.allSettled([...this.#reaps]);
    })();
    await within(
      all,
      deadline,
      signal,
      () => {
        const stalled = this.#stalled;
        return xpmemError('ERR_XPMEM_TIMEOUT', `reaps still running past the deadline${stalled === undefined ? '' : `: ${stalled.message}`}`, { space: stalled?.space, threadId: stalled?.threadId });
      },
      () => xpmemError('ERR_XPMEM_ABORTED', `settled() aborted: ${String(signal?.reason)}`),
    );
  }

  /** @internal util.inspect calls this: it shows its id, arena size (while open) and state ('live' or 'closed'); never throws. */
  [INSPECT](depth: number, options: HandleInspectOptions): string {
    const state = this.#mm.state();
    const arenaBytes = state === 'live' ? Atomics.load(this.#cb.words, H_ARENA_UNITS) * UNIT : undefined;
    return inspected('Domain', { id: this.#cb.id, arenaBytes, state }, depth, options);
  }

  /** Runs the invariant checker over the whole control block. */
  check(): CheckReport {
    return checkControlBlock(this.#cb, this.#mm.slot);
  }

  /** Counters: memory, swap, faults, reclaims, invalidations, waits. May sleep briefly on the mutex. */
  stats(): DomainStats {
    return statsOf(this.#cb, this.#mm.slot);
  }

  /** A /proc/pid/maps-like list: every segment and attachment, or those of one space. May sleep briefly. */
  maps(spaceId?: number): MapRow[] {
    if (spaceId !== undefined) checkIndex('spaceId', spaceId, 0, Number.MAX_SAFE_INTEGER);
    return mapsOf(this.#cb, this.#mm.slot, spaceId);
  }

  /** maps() as a text table a person can read. */
  formatMaps(spaceId?: number): string {
    return formatRows(this.maps(spaceId));
  }

  /**
   * Moves segments down into holes so the arena's free bytes gather at its end: one 'migrate'
   * invalidation per move, attachers lose nothing. The non-blocking path: a segment busy with
   * another operation or a section, or whose notifiers do not answer, is skipped. May sleep.
   */
  compact(opts?: WaitOptions): Promise<CompactReport> {
    checkWaitOptions(opts);
    this.#mm.checkLive();
    return compact(this.#mm, opts);
  }

  /**
   * Registers `end` to run when close() is called, once the domain is marked closed; close()
   * resolves after every such promise settled. A pool ends its tasks there. Returns a function
   * that unregisters it. Runs in the creating thread; `end` runs there too.
   */
  onClose(end: () => Promise<void>): () => void {
    checkFunction('end', end);
    this.#onClose.add(end);
    return () => {
      this.#onClose.delete(end);
    };
  }

  /**
   * Closes the domain: every later call through it, in any thread, fails with ERR_XPMEM_CLOSED;
   * sleepers are woken (their waits fail with ERR_XPMEM_CLOSED); what onClose() registered runs
   * (pools end their tasks); this thread's dispatcher stops once reaps in progress have ended.
   */
  async close(): Promise<void> {
    const { words, layout } = this.#cb;
    if (Atomics.exchange(words, H_CLOSED, 1) !== 0) return;
    for (let s = 0; s < layout.spaces.capacity; s++) if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE) ring(words, layout, s);
    await this.#traceFile?.(); // before pools terminate their workers with what they recorded
    await Promise.allSettled([...this.#onClose].map(async (end) => end()));
    await this.settled({ deadlineMs: 2 ** 31 - 1 }); // the reaps see the domain closed and end
    forget(this.#cb.id);
    if (this.#ownSwapDir) rmSync(this.#cb.swapDir, { recursive: true, force: true });
    else discardAll(this.#cb.swapDir, this.#cb.id);
  }

  /** close(), for `await using domain = await Domain.create()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Validates a byte size the arena counts in 64-byte units: a multiple of UNIT from `min` to `max`
 * (described as `upTo`), else ERR_OUT_OF_RANGE; nothing is rounded.
 */
function checkUnits(name: string, value: unknown, min: number, max: number, upTo = String(max)): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isSafeInteger(value) || value < min || value > max || value % UNIT !== 0) throw outOfRange(name, `a multiple of ${UNIT} (the arena's unit) from ${min} to ${upTo}`, value);
  return value;
}

/** arenaBytes's upper bound in words: maxArenaBytes (`given`, else the default), and how to raise it. */
function arenaBound(given: number | undefined): string {
  const max = given === undefined ? `${DEFAULT_MAX_ARENA}, the default` : String(given);
  return `options.maxArenaBytes (${max}); raise options.maxArenaBytes (at most ${MAX_ARENA}) for a larger arena`;
}
