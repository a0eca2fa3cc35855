/**
 * Domain: the control block and arena shared by every space, created by one thread (usually
 * the main thread), which also watches the workers it spawns and reaps them when they exit.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { checkIndex, checkOptions, invalidArgType } from './errors.js';
import { ControlBlock, type DomainHandle } from './segment/control.js';
import {
  AT_LENGTH, AT_OFFSET, AT_SEG, AT_SPACE, AT_STATE, GR_MODE, AT_GRANT, H_ARENA_UNITS, H_CLOSED, IV_STATE,
  SEG_BYTES, SEG_GEN, SEG_OWNER, SEG_PROT, SEG_STATE, SEG_UNIT, SP_GEN, SP_STATE, SPACE_LIVE, UNIT, idOf, slotBase,
  type Capacities,
} from './segment/layout.js';
import { ring } from './sync/doorbell.js';
import { checkControlBlock, type CheckReport } from './segment/check.js';
import { forget, joinerOf, joinMm } from './workers/join.js';
import { seize } from './sync/mutex.js';
import { reap, spacesOfThread } from './workers/reap.js';
import type { Mm } from './mm.js';
import type { Space } from './space.js';
import { PERMITS, type Permit } from './segment/segment.js';

/** Options of Domain.create. */
export interface DomainOptions {
  /** Initial arena size in bytes (default 16 MiB); the arena grows on demand. */
  arenaBytes?: number;
  /** Arena limit in bytes (default 1 GiB, at most 4 GiB). */
  maxArenaBytes?: number;
  /** Default bound, in ms, of every wait (callbacks, locks): default 10,000. */
  deadlineMs?: number;
  /** Table capacities (fixed for the domain's life). */
  capacity?: Partial<Capacities>;
}

/** One row of maps(): a segment as its owner sees it, or an attachment. */
export interface MapRow {
  /** Owning or attaching space id. */
  readonly space: number;
  readonly segId: number;
  /** 'segment' rows give the arena byte offset; 'attachment' rows the offset in the segment. */
  readonly kind: 'segment' | 'attachment';
  readonly offset: number;
  readonly length: number;
  /** Protection (segment) or granted mode (attachment). */
  readonly mode: Permit;
  readonly state: 'live' | 'removing';
}

/** Counters of domain.stats(). */
export interface DomainStats {
  readonly spaces: number;
  readonly segments: number;
  readonly attachments: number;
  readonly invalidationsInFlight: number;
  readonly arenaBytes: number;
  readonly freeBytes: number;
  readonly residentBytes: number;
}

const DEFAULT_CAPS: Capacities = { spaces: 64, segments: 4096, grants: 8192, attachments: 8192, notifiers: 4096, invalidations: 64, depth: 8, journal: 8192 };

export class Domain {
  readonly #cb: ControlBlock;
  readonly #mm: Mm;
  /** The creating thread's own space. */
  readonly space: Space;
  readonly #reaps = new Set<Promise<unknown>>();

  private constructor(cb: ControlBlock, mm: Mm, space: Space) {
    this.#cb = cb;
    this.#mm = mm;
    this.space = space;
  }

  /** Creates a domain and joins the calling thread to it. */
  static async create(opts: DomainOptions = {}): Promise<Domain> {
    checkOptions('options', opts);
    const maxArenaBytes = opts.maxArenaBytes === undefined ? 2 ** 30 : checkIndex('options.maxArenaBytes', opts.maxArenaBytes, UNIT, 2 ** 32 - UNIT);
    const arenaBytes = opts.arenaBytes === undefined ? Math.min(16 * 2 ** 20, maxArenaBytes) : checkIndex('options.arenaBytes', opts.arenaBytes, 0, maxArenaBytes);
    const deadlineMs = opts.deadlineMs === undefined ? 10_000 : checkIndex('options.deadlineMs', opts.deadlineMs, 1, 2 ** 31 - 1);
    checkOptions('options.capacity', opts.capacity);
    const caps = { ...DEFAULT_CAPS };
    for (const [key, value] of Object.entries(opts.capacity ?? {})) {
      if (!(key in caps)) throw invalidArgType(`options.capacity.${key}`, 'a known capacity', key);
      caps[key as keyof Capacities] = checkIndex(`options.capacity.${key}`, value, 1, 2 ** 20);
    }
    caps.spaces = Math.min(caps.spaces, 1024);
    const cb = ControlBlock.format(caps, arenaBytes - (arenaBytes % UNIT), maxArenaBytes - (maxArenaBytes % UNIT), deadlineMs);
    const { mm, space } = joinMm(cb.handle);
    return new Domain(cb, mm, space);
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
    this.watch(worker);
    return worker;
  }

  /**
   * Reaps the spaces of `worker`'s thread when it exits (spawn does this for you). The reap
   * runs in this thread; see workers/reap.ts. Returns the worker.
   */
  watch(worker: Worker): Worker {
    if (!(worker instanceof Worker)) throw invalidArgType('worker', 'an instance of Worker', worker);
    const threadId = worker.threadId;
    worker.once('exit', () => {
      const done = this.reapThread(threadId);
      this.#reaps.add(done);
      void done.finally(() => this.#reaps.delete(done));
    });
    return worker;
  }

  /** Reaps every live space of thread `threadId` now; resolves when their segments are removed. */
  async reapThread(threadId: number): Promise<number> {
    if (Atomics.load(this.#cb.words, H_CLOSED) !== 0) return 0;
    seize(this.#cb.words, this.#cb.layout, joinerOf(threadId), this.#mm.slot); // died inside its join
    let removed = 0;
    for (const slot of spacesOfThread(this.#cb, threadId)) removed += await reap(this.#mm, slot);
    return removed;
  }

  /** Resolves when every reap started by a worker exit has finished. */
  async settled(): Promise<void> {
    while (this.#reaps.size > 0) await Promise.allSettled([...this.#reaps]);
  }

  /** Runs the invariant checker over the whole control block. */
  check(): CheckReport {
    return checkControlBlock(this.#cb, this.#mm.slot);
  }

  /** Counters. */
  stats(): DomainStats {
    const { layout, allocator } = this.#cb;
    return this.#cb.transact(this.#mm.slot, (tx) => {
      const count = (table: typeof layout.spaces, field: number, want?: number): number => {
        let n = 0;
        for (let s = 0; s < table.capacity; s++) {
          const v = tx.get(slotBase(table, s) + field);
          if (want === undefined ? v !== 0 : v === want) n++;
        }
        return n;
      };
      const arenaUnits = tx.get(H_ARENA_UNITS);
      const freeUnits = allocator.freeUnits(tx);
      return {
        spaces: count(layout.spaces, SP_STATE, SPACE_LIVE),
        segments: count(layout.segments, SEG_STATE),
        attachments: count(layout.attachments, AT_STATE),
        invalidationsInFlight: count(layout.invalidations, IV_STATE),
        arenaBytes: arenaUnits * UNIT,
        freeBytes: freeUnits * UNIT,
        residentBytes: (arenaUnits - freeUnits) * UNIT,
      };
    });
  }

  /** A /proc/pid/maps-like list: every segment and attachment, or those of one space. */
  maps(spaceId?: number): MapRow[] {
    if (spaceId !== undefined) checkIndex('spaceId', spaceId, 0, Number.MAX_SAFE_INTEGER);
    const { layout } = this.#cb;
    return this.#cb.transact(this.#mm.slot, (tx) => {
      const rows: MapRow[] = [];
      const spaceIdOf = (slot: number): number => idOf(layout.spaces, slot, tx.get(slotBase(layout.spaces, slot) + SP_GEN));
      const segIdOf = (slot: number): number => idOf(layout.segments, slot, tx.get(slotBase(layout.segments, slot) + SEG_GEN));
      for (let s = 0; s < layout.segments.capacity; s++) {
        const base = slotBase(layout.segments, s);
        const state = tx.get(base + SEG_STATE);
        if (state === 0) continue;
        rows.push({ space: spaceIdOf(tx.get(base + SEG_OWNER)), segId: segIdOf(s), kind: 'segment', offset: tx.get(base + SEG_UNIT) * UNIT, length: tx.get(base + SEG_BYTES), mode: PERMITS[tx.get(base + SEG_PROT)]!, state: state === 1 ? 'live' : 'removing' });
      }
      for (let a = 0; a < layout.attachments.capacity; a++) {
        const base = slotBase(layout.attachments, a);
        if (tx.get(base + AT_STATE) === 0) continue;
        const mode = tx.get(slotBase(layout.grants, tx.get(base + AT_GRANT)) + GR_MODE);
        rows.push({ space: spaceIdOf(tx.get(base + AT_SPACE)), segId: segIdOf(tx.get(base + AT_SEG)), kind: 'attachment', offset: tx.get(base + AT_OFFSET), length: tx.get(base + AT_LENGTH), mode: PERMITS[mode]!, state: 'live' });
      }
      return spaceId === undefined ? rows : rows.filter((r) => r.space === spaceId);
    });
  }

  /**
   * Closes the domain: every later call through it, in any thread, fails with ERR_XPMEM_CLOSED;
   * sleepers are woken (their waits fail with ERR_XPMEM_CLOSED); this thread's dispatcher stops
   * once reaps in progress have ended.
   */
  async close(): Promise<void> {
    const { words, layout } = this.#cb;
    if (Atomics.exchange(words, H_CLOSED, 1) !== 0) return;
    for (let s = 0; s < layout.spaces.capacity; s++) if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE) ring(words, layout, s);
    await this.settled();
    forget(this.#cb.id);
  }
}
