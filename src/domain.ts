/**
 * Domain: the control block and arena shared by every space, created by one thread (usually
 * the main thread), which also watches the workers it spawns and reaps them when they exit.
 */
import { Worker, isMainThread, threadId, type WorkerOptions } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSwapDir, discardAll } from './control/swapfile.js';
import { checkFunction, checkIndex, checkOptions, invalidArgType, invalidArgValue, outOfRange, xpmemError, type XpmemError } from './errors.js';
import { checkKeys } from './options.js';
import { ControlBlock, type DomainHandle } from './control/control.js';
import { H_ARENA_UNITS, H_CLOSED, H_TRACE, SP_PID, SP_STATE, SP_THREAD, SPACE_LIVE, UNIT, slotBase, type Capacities, type Layout } from './layout.js';
import { handOverEnded, handOverLeaving, startTrace, type TracedDomain, type TraceOptions, type Tracing } from './trace/session.js';
import { removeHandOvers } from './trace/handover.js';
import { traceToFile } from './trace/file.js';
import { ringAll } from './sync/doorbell.js';
import { checkWaitOptions, within, type WaitOptions } from './sync/futex.js';
import { checkControlBlock, type CheckReport } from './control/check.js';
import { forget, joinMm } from './workers/join.js';
import { seize, seizeIfDied, type Tx } from './sync/mutex.js';
import { reap, spacesOfThread, type DeadSpace } from './workers/reap.js';
import { WATCH_MS, departed, unreaped } from './workers/process.js';
import { joinerOf, ofThisProcess } from './sync/robust.js';
import { createShared, openShared } from './workers/shared.js';
import { shmPath, unlinkOwn } from './control/shm.js';
import { native } from './sync/native.js';
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
  /**
   * Shares the domain with other processes under this name (1 to 200 letters, digits, '.', '_'
   * or '-'): its memory is the file /dev/shm/xpmem-threads.<name>, mode 0600, mapped whole
   * (maxArenaBytes up front; only touched pages take memory), and any process of the same user
   * joins it with Domain.open(name). Needs Linux and Node's native addon: elsewhere
   * ERR_XPMEM_UNSUPPORTED. A file of that name left by processes that all died is taken over;
   * one whose processes run is ERR_XPMEM_EXISTS. See docs/CONTRACT.md, "Processes".
   */
  shared?: string;
}

/** Options of Domain.open. */
export interface OpenOptions {
  /** This process's default bound, in ms, of every wait (default: the creator's deadlineMs). */
  deadlineMs?: number;
}

/** The keys DomainOptions knows (the compiler keeps this list and the interface the same). */
const DOMAIN_KEYS = { arenaBytes: true, maxArenaBytes: true, deadlineMs: true, memoryLimit: true, swapDir: true, capacity: true, slowMs: true, shared: true } as const satisfies Record<
  keyof DomainOptions,
  true
>;

/** The keys OpenOptions knows. */
const OPEN_KEYS = { deadlineMs: true } as const satisfies Record<keyof OpenOptions, true>;

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
  /** A shared domain's file, and whether this process created it; undefined for threads only. */
  readonly #shared: { readonly path: string; readonly creator: boolean; readonly ino?: number } | undefined;
  /** The timer that looks for departed processes (shared domains). */
  #watcher: NodeJS.Timeout | undefined;
  /** Slots of departed processes' spaces whose reap runs now in this process. */
  readonly #departing = new Set<number>();
  /** The workers watch() watches that have not exited, by threadId: an opener's close() ends them. */
  readonly #watched = new Map<number, Worker>();
  /** Names of the workers spawn() started, by threadId: their tracks in a trace. */
  readonly #names = new Map<number, string>();
  /** With XPMEM_TRACE: writes the trace of the whole run (close() calls it). */
  #traceFile: (() => Promise<void>) | undefined;
  /** The domain as its traces read it. */
  readonly #traced: TracedDomain;
  /** Traces another process stopped whose events this process handed over (shared domains). */
  readonly #handed = new Set<number>();
  /** Aborted when this process leaves a shared domain it opened: the reaps of other processes it runs stop, for the others to finish. */
  readonly #leaving = new AbortController();
  /** The first close()'s promise, which every later call returns. */
  #closing: Promise<void> | undefined;
  /** Set once an opener's close() marked this thread's space as left. */
  #left = false;
  /** What onClose() registered, once ended (#endRegistered). */
  #endedRegistered: Promise<unknown> | undefined;

  private constructor(cb: ControlBlock, mm: Mm, space: Space, ownSwapDir: boolean, shared?: { path: string; creator: boolean; ino?: number }) {
    this.#cb = cb;
    this.#mm = mm;
    this.space = space;
    this.#ownSwapDir = ownSwapDir;
    this.#shared = shared;
    const { words, layout, id } = cb;
    this.#traced = { words, layout, id, own: mm.trace, nameOf: (threadId) => this.#names.get(threadId), file: shared?.path };
    if (shared !== undefined) this.#watcher = setInterval(() => this.#watch(), WATCH_MS).unref();
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
    if (opts.shared !== undefined) {
      shmPath(opts.shared);
      native();
    }
    const swapDir = opts.swapDir ?? mkdtempSync(join(tmpdir(), 'xpmem-swap-'));
    const format = { arenaBytes, maxArenaBytes, memoryLimit, deadlineMs, swapDir, slowMs };
    let domain: Domain;
    if (opts.shared === undefined) {
      const cb = ControlBlock.format(caps, format);
      const { mm, space } = joinMm(cb.handle);
      domain = new Domain(cb, mm, space, opts.swapDir === undefined);
      if (opts.swapDir === undefined && isMainThread) removeAtExit(swapDir); // the domain goes with the process
    } else {
      try {
        const { cb, mm, space, path, ino } = createShared(opts.shared, caps, format, opts.swapDir === undefined);
        domain = new Domain(cb, mm, space, opts.swapDir === undefined, { path, creator: true, ino });
      } catch (error) {
        if (opts.swapDir === undefined) rmSync(swapDir, { recursive: true, force: true });
        throw error;
      }
    }
    const file = process.env.XPMEM_TRACE;
    if (file !== undefined && file !== '') domain.#traceFile = traceToFile(domain.trace(), file);
    return domain;
  }

  /**
   * Joins this process to the shared domain `name`, created by another process of the same
   * user (Domain.create({ shared: name })): `domain.space` is this thread's space; spawn() and
   * createPool() add this process's workers. close() leaves the domain, as the process's exit
   * would: the workers this Domain watches end and are reaped, and this thread's space is.
   * ERR_XPMEM_NO_DOMAIN when there is none (or none of its processes runs), ERR_XPMEM_INCOMPATIBLE when another version of the library made it, ERR_XPMEM_CLOSED
   * once its creator closed it, ERR_XPMEM_UNSUPPORTED where the native addon cannot load.
   */
  static async open(name: string, opts: OpenOptions = {}): Promise<Domain> {
    checkOptions('options', opts);
    checkKeys('options', opts, OPEN_KEYS);
    const deadlineMs = opts.deadlineMs === undefined ? undefined : checkIndex('options.deadlineMs', opts.deadlineMs, 1, 2 ** 31 - 1);
    const { cb, mm, space, path } = openShared(name, deadlineMs);
    return new Domain(cb, mm, space, false, { path, creator: false });
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
    return startTrace(this.#traced, maxEvents);
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
    this.#watched.set(threadId, worker);
    worker.once('exit', () => {
      this.#watched.delete(threadId);
      void this.#track(this.#reapThread(threadId), `thread ${threadId}`);
    });
    return worker;
  }

  /** Reaps every live space of thread `threadId`, which has exited; resolves when their segments are removed. */
  async #reapThread(threadId: number): Promise<number> {
    if (this.#mm.state() !== 'live') return 0; // closed, or this process left: the others reap
    seize(this.#cb.words, this.#cb.layout, joinerOf(threadId, this.#shared !== undefined), this.#mm.slot); // died inside its join
    return this.#reapAll(spacesOfThread(this.#cb, threadId));
  }

  /** Reaps `spaces`, one after another, until `signal` aborts (see reap()); resolves with the segments removed. */
  async #reapAll(spaces: DeadSpace[], signal?: AbortSignal): Promise<number> {
    let removed = 0;
    for (const dead of spaces) {
      if (signal?.aborted) break;
      removed += await reap(
        this.#mm,
        dead,
        (error) => {
          this.#stalled = error;
        },
        signal,
      );
    }
    return removed;
  }

  /** Tracks a reap (settled() and close() wait for it); `what` names it in a warning if it fails. */
  #track(reaping: Promise<number>, what: string): Promise<number> {
    const done = reaping.catch((error: unknown) => {
      process.emitWarning(`xpmem-threads: reaping ${what} failed: ${String(error)}`, 'XpmemReapWarning');
      return 0;
    });
    this.#reaps.add(done);
    void done.finally(() => this.#reaps.delete(done));
    return done;
  }

  /** The shared domain's watcher (every WATCH_MS, on this thread's loop): reaps, then hands over traces other processes stopped. Never blocks. */
  #watch(): void {
    this.#reapDeparted();
    if (this.#mm.state() === 'live') handOverEnded(this.#traced, this.#handed);
  }

  /**
   * Reaps the spaces of processes that died or left, each once (several processes may watch one
   * death: reap.ts claims each space for one reaper), and frees the mutex of a process that died
   * while joining.
   */
  #reapDeparted(): void {
    const { words, layout } = this.#cb;
    if (this.#mm.state() !== 'live' || this.#leaving.signal.aborted) return;
    seizeIfDied(words, layout, this.#mm.slot);
    for (const { pid, spaces } of departed(words, layout)) {
      const fresh = spaces.filter((dead) => !this.#departing.has(dead.slot));
      for (const dead of fresh) this.#departing.add(dead.slot);
      if (fresh.length === 0) continue;
      const own = ofThisProcess(Math.abs(fresh[0]!.pid), fresh[0]!.start); // this process's workers: a leaving close() waits for their reaps
      void this.#track(this.#reapAll(fresh, own ? undefined : this.#leaving.signal), `process ${pid}`).finally(() => {
        for (const dead of fresh) this.#departing.delete(dead.slot);
      });
    }
  }

  /**
   * Resolves when every reap started by a worker exit has finished; in a shared domain, also once
   * every process that died or left before the call is reaped, by this process or another. A reap waits only for live
   * attachers of the dead space's segments, and retries past each deadline until they answer:
   * settled() gives up at `opts.deadlineMs` (default: the domain's) with ERR_XPMEM_TIMEOUT
   * naming the space a reap waited for last, or ERR_XPMEM_ABORTED (the reaps go on).
   */
  async settled(opts?: WaitOptions): Promise<void> {
    checkWaitOptions(opts);
    const { deadline, signal } = this.#mm.bounds(opts, false);
    const all = (async () => {
      for (;;) {
        this.#reapDeparted(); // a shared domain's processes already gone: their reaps start now
        while (this.#reaps.size > 0) await Promise.allSettled([...this.#reaps]);
        if (this.#shared === undefined || this.#mm.state() !== 'live' || !unreaped(this.#cb.words, this.#cb.layout)) return;
        await new Promise((resolve) => setTimeout(resolve, WATCH_MS)); // reaped by another process: look again
      }
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

  /** Runs the invariant checker over the whole control block. ERR_XPMEM_CLOSED once this process left the domain. */
  check(): CheckReport {
    return checkControlBlock(this.#cb, this.#self());
  }

  /** Counters: memory, swap, faults, reclaims, invalidations, waits. May sleep briefly on the mutex. ERR_XPMEM_CLOSED once this process left the domain. */
  stats(): DomainStats {
    return statsOf(this.#cb, this.#self());
  }

  /** A /proc/pid/maps-like list: every segment and attachment, or those of one space. May sleep briefly. ERR_XPMEM_CLOSED once this process left the domain. */
  maps(spaceId?: number): MapRow[] {
    if (spaceId !== undefined) checkIndex('spaceId', spaceId, 0, Number.MAX_SAFE_INTEGER);
    return mapsOf(this.#cb, this.#self(), spaceId);
  }

  /**
   * This thread's space, as the mutex's holder; ERR_XPMEM_CLOSED once this process left the
   * shared domain (an opener's close()): other processes reap that space meanwhile, and one that
   * saw it hold the mutex would take it away mid-transaction.
   */
  #self(): number {
    if (this.#left) throw xpmemError('ERR_XPMEM_CLOSED', 'this process left the domain (its close()); open it again to look at it');
    return this.#mm.slot;
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
    return this.#mm.inFlight(compact(this.#mm, opts));
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
   * Closes the domain: every later call through it, in any thread (of any process, for a shared
   * domain), fails with ERR_XPMEM_CLOSED, but for detach(), release() and unregister(), which have
   * nothing left to undo and do nothing; sleepers are woken (their waits fail with
   * ERR_XPMEM_CLOSED); what onClose() registered runs (pools end their tasks); this thread's
   * dispatcher stops once reaps in progress have ended. A shared domain's name is free again at
   * once (its file is unlinked; processes still mapping it keep their memory until they exit).
   *
   * In a process that joined with Domain.open(), close() leaves the domain instead, as the
   * process's exit would: pools end, the workers this Domain watches (spawn(), watch()) are
   * terminated and reaped here, then this thread's space is marked as having left, and the other
   * processes reap it (within about 50 ms, their watchers' period). Calls through this Domain
   * then fail with ERR_XPMEM_CLOSED. Before any of that, it waits, up to the domain's deadlineMs,
   * for an instant when no async call (an operation, an async section, makeAsync, compact) and no
   * section of this thread is in flight, and from then on lets none start: a space must not be
   * marked as left under its own calls. When none came by then, close() rejects with
   * ERR_XPMEM_TIMEOUT and changes nothing; call it again once they ended.
   *
   * Every call returns the first one's promise: it resolves once the domain is closed (or left).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#shared?.creator === false) return this.#leave();
    clearInterval(this.#watcher);
    const { words, layout } = this.#cb;
    if (Atomics.load(words, H_CLOSED) !== 0) return;
    // While the domain is open: the other processes of a shared domain still hand their events
    // over; and before pools terminate their workers with what they recorded.
    await this.#traceFile?.();
    if (Atomics.exchange(words, H_CLOSED, 1) !== 0) return;
    const shared = this.#shared;
    // Its own name only: a takeover may have replaced the file since the domain was marked closed.
    if (shared?.ino !== undefined && unlinkOwn(shared.path, this.#cb.shared!, shared.ino, this.#cb.deadlineMs)) removeHandOvers(shared.path); // a process may hand a trace over after its stop() gave up
    ringAll(words, layout);
    await this.#endRegistered();
    await this.settled({ deadlineMs: 2 ** 31 - 1 }); // the reaps see the domain closed and end
    forget(this.#cb.id);
    if (this.#ownSwapDir) {
      rmSync(this.#cb.swapDir, { recursive: true, force: true });
      ownSwapDirs.delete(this.#cb.swapDir);
    } else discardAll(this.#cb.swapDir, this.#cb.id);
  }

  /**
   * close() in a process that opened the domain: this process leaves it (see close()), also once
   * its creator closed it (its pools still end). First it waits for an instant when no call of
   * this thread is in flight (Mm drain()), from which on calls fail; or nothing changes. The
   * reaps of other processes it runs stop, their claims let go: the processes that stay finish
   * them, and a reap held up elsewhere (a callback that does not answer) does not hold this
   * process up. The workers it watches end, as the
   * process's exit would end them, and are reaped here, before this thread's space is marked as
   * left: a worker still running in a space marked left would be reaped by another process under
   * its feet (its mutex taken in the middle of a transaction).
   */
  async #leave(): Promise<void> {
    const busy = await this.#mm.drain(performance.now() + this.#cb.deadlineMs);
    if (busy !== undefined) {
      this.#closing = undefined; // a later close() tries again
      const what = `${busy.calls} call(s) and ${busy.sections} section(s)`;
      throw xpmemError(
        'ERR_XPMEM_TIMEOUT',
        `close() waited ${this.#cb.deadlineMs} ms for this thread's ${what} still in flight, and changed nothing: let them end (a close() awaited inside one waits for itself), then close again`,
      );
    }
    clearInterval(this.#watcher);
    this.#leaving.abort();
    await this.#endRegistered();
    const { words, layout } = this.#cb;
    if (Atomics.load(words, H_CLOSED) === 0) await handOverLeaving(this.#traced); // its spaces will be gone when the trace stops
    await Promise.all([...this.#watched.values()].map((worker) => worker.terminate()));
    while (this.#reaps.size > 0) await Promise.allSettled([...this.#reaps]);
    if (Atomics.load(words, H_CLOSED) === 0) {
      try {
        this.#cb.transact(this.#mm.slot, (tx) => markLeft(tx, layout, process.pid, threadId));
        this.#left = true;
      } catch (error) {
        this.#closing = undefined; // the mutex held past the deadline: a later close() marks it left
        throw error;
      }
      ringAll(words, layout);
    }
    forget(this.#cb.id);
  }

  /** Runs what onClose() registered, once for this Domain (a close() called again after one failed runs nothing again). */
  #endRegistered(): Promise<unknown> {
    this.#endedRegistered ??= Promise.allSettled([...this.#onClose].map(async (end) => end()));
    return this.#endedRegistered;
  }

  /** close(), for `await using domain = await Domain.create()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The swap dirs create() made for threads-only domains of this process not yet closed: they go with the process (removeAtExit). */
const ownSwapDirs = new Set<string>();
let exitHooked = false;

/**
 * Removes swap dir `dir` when the process exits without closing its domain: a threads-only
 * domain made on the main thread ends with its process (a worker's may outlive it in other
 * threads), and its swap files with it. One 'exit' listener serves every domain.
 */
function removeAtExit(dir: string): void {
  ownSwapDirs.add(dir);
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const d of ownSwapDirs) rmSync(d, { recursive: true, force: true });
  });
}

/**
 * Records that the live spaces of thread `thread` of process `pid` left the domain: their SP_PID
 * negated, so every process's watcher reaps them (process.ts departed()). Caller holds the mutex via tx.
 */
function markLeft(tx: Tx, layout: Layout, pid: number, thread: number): void {
  for (let s = 0; s < layout.spaces.capacity; s++) {
    const base = slotBase(layout.spaces, s);
    if (tx.get(base + SP_STATE) === SPACE_LIVE && tx.get(base + SP_PID) === pid && tx.get(base + SP_THREAD) === thread) tx.set(base + SP_PID, -pid);
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
