/**
 * Floor 3 of src/ (docs/LAYERS.md), control/: the shared state, written only in journaled
 * transactions: the control block (this file), its tables' free lists and per-segment lists,
 * the arena allocator and its bounds, the swap files that hold swapped-out segments, and the
 * invariant checker. Uses floors 1 and 2; knows nothing of notifiers, spaces or operations.
 *
 * The control block as one thread sees it: the shared words, their layout, the arena buffer and
 * the allocator. Constructed *from* shared memory (format() writes a fresh one, open() adopts a
 * handle), never owning it: every joined thread builds its own ControlBlock over the same SABs.
 */
import { ArenaAllocator } from './arena.js';
import {
  capacitiesOf,
  H_ARENA_UNITS,
  H_ATT_FREE,
  H_GRANT_FREE,
  H_ID,
  H_INV_FREE,
  H_JOURNAL_CAP,
  H_LIMIT_UNITS,
  H_SLOW_MS,
  H_MAGIC,
  H_MAX_ARENA_UNITS,
  H_MAX_ATTACHMENTS,
  H_MAX_DEPTH,
  H_MAX_GRANTS,
  H_MAX_INVALIDATIONS,
  H_MAX_NOTIFIERS,
  H_MAX_SEGMENTS,
  H_MAX_SPACES,
  H_NOTIFIER_FREE,
  H_SEG_FREE,
  H_SPACE_FREE,
  H_VERSION,
  layoutFor,
  MAGIC,
  slotBase,
  UNIT,
  VERSION,
  AT_NEXT,
  GR_NEXT,
  IV_NEXT,
  NT_NEXT,
  SEG_NEXT,
  SP_NEXT,
  type Capacities,
  type Layout,
  type Table,
} from '../layout.js';
import { Tx, transact } from '../sync/mutex.js';
import { shareAcrossProcesses } from '../sync/futex.js';

/** What a thread needs to join a domain; structured-cloneable. */
export interface DomainHandle {
  /** The control block's buffer. */
  readonly control: SharedArrayBuffer;
  /** The arena (growable). */
  readonly arena: SharedArrayBuffer;
  /** Default deadline for every wait, in ms. */
  readonly deadlineMs: number;
  /** Directory of the domain's swap files. */
  readonly swapDir: string;
  /** The name of a shared domain (its buffers map a file other processes map too); absent for a threads-only one. */
  readonly shared?: string;
}

/** Buffers a shared domain's file provides (control/shm.ts), in place of fresh ones. */
export interface SharedBuffers {
  readonly control: SharedArrayBuffer;
  readonly arena: SharedArrayBuffer;
  readonly shared: string;
}

/** What format() writes besides the capacities. */
export interface FormatOptions {
  readonly arenaBytes: number;
  readonly maxArenaBytes: number;
  /** Resident bytes allowed (0: no limit). */
  readonly memoryLimit: number;
  readonly deadlineMs: number;
  readonly swapDir: string;
  /** When a waiting operation is reported slow (ms). */
  readonly slowMs: number;
}

/** A table with a free list: which header word heads it and which field links it. */
export interface FreeList {
  readonly table: Table;
  readonly head: number;
  readonly next: number;
}

export class ControlBlock {
  readonly words: Int32Array;
  readonly layout: Layout;
  readonly arena: SharedArrayBuffer;
  readonly allocator: ArenaAllocator;
  readonly deadlineMs: number;
  readonly swapDir: string;
  /** The shared domain's name, or undefined (threads only). */
  readonly shared: string | undefined;
  readonly spaceList: FreeList;
  readonly segmentList: FreeList;
  readonly grantList: FreeList;
  readonly attachmentList: FreeList;
  readonly notifierList: FreeList;
  readonly invalidationList: FreeList;
  /** This thread's transaction buffer, reused by each of its transactions. */
  readonly #tx: Tx;
  /** This thread's current mutex patience (patiently()); undefined: the domain deadline. */
  #patienceMs: number | undefined;

  private constructor(handle: DomainHandle) {
    this.words = new Int32Array(handle.control);
    this.arena = handle.arena;
    this.deadlineMs = handle.deadlineMs;
    this.swapDir = handle.swapDir;
    this.shared = handle.shared;
    if (handle.shared !== undefined) shareAcrossProcesses(handle.control);
    this.layout = layoutFor(capacitiesOf(this.words));
    this.allocator = new ArenaAllocator(this.layout);
    this.#tx = new Tx(this.words);
    const l = this.layout;
    this.spaceList = { table: l.spaces, head: H_SPACE_FREE, next: SP_NEXT };
    this.segmentList = { table: l.segments, head: H_SEG_FREE, next: SEG_NEXT };
    this.grantList = { table: l.grants, head: H_GRANT_FREE, next: GR_NEXT };
    this.attachmentList = { table: l.attachments, head: H_ATT_FREE, next: AT_NEXT };
    this.notifierList = { table: l.notifiers, head: H_NOTIFIER_FREE, next: NT_NEXT };
    this.invalidationList = { table: l.invalidations, head: H_INV_FREE, next: IV_NEXT };
  }

  /**
   * Writes a fresh control block and arena, in new buffers or in a shared domain's (`memory`,
   * zero-filled, its arena mapped at maxArenaBytes); called once, by Domain.create.
   */
  static format(caps: Capacities, opts: FormatOptions, memory?: SharedBuffers): ControlBlock {
    const { arenaBytes, maxArenaBytes, deadlineMs, swapDir } = opts;
    const layout = layoutFor(caps);
    const control = memory?.control ?? new SharedArrayBuffer(layout.words * 4);
    const arena = memory?.arena ?? new SharedArrayBuffer(arenaBytes, { maxByteLength: maxArenaBytes });
    const w = new Int32Array(control);
    w[H_MAGIC] = MAGIC;
    w[H_VERSION] = VERSION;
    w[H_MAX_SPACES] = caps.spaces;
    w[H_MAX_SEGMENTS] = caps.segments;
    w[H_MAX_GRANTS] = caps.grants;
    w[H_MAX_ATTACHMENTS] = caps.attachments;
    w[H_MAX_NOTIFIERS] = caps.notifiers;
    w[H_MAX_INVALIDATIONS] = caps.invalidations;
    w[H_MAX_DEPTH] = caps.depth;
    w[H_JOURNAL_CAP] = caps.journal;
    w[H_MAX_ARENA_UNITS] = Math.floor(maxArenaBytes / UNIT);
    w[H_LIMIT_UNITS] = Math.floor(opts.memoryLimit / UNIT);
    w[H_SLOW_MS] = opts.slowMs;
    w[H_ID] = (Math.random() * 0x7fffffff) | 0;
    const cb = new ControlBlock({ control, arena, deadlineMs, swapDir, ...(memory && { shared: memory.shared }) });
    for (const list of cb.lists()) chain(w, list);
    const raw = {
      get: (i: number) => w[i]!,
      set: (i: number, v: number) => {
        w[i] = v;
      },
    };
    cb.allocator.init(raw, Math.floor(arenaBytes / UNIT));
    w[H_ARENA_UNITS] = Math.floor(arenaBytes / UNIT);
    return cb;
  }

  /** Adopts an existing control block from a handle (join). Throws TypeError on a foreign buffer. */
  static open(handle: DomainHandle): ControlBlock {
    const w = new Int32Array(handle.control);
    if (w[H_MAGIC] !== MAGIC || w[H_VERSION] !== VERSION) throw new TypeError('not an xpmem-threads domain handle (bad magic or version)');
    return new ControlBlock(handle);
  }

  get handle(): DomainHandle {
    const handle = { control: this.words.buffer as SharedArrayBuffer, arena: this.arena, deadlineMs: this.deadlineMs, swapDir: this.swapDir };
    return this.shared === undefined ? handle : { ...handle, shared: this.shared };
  }

  /** Domain identity, the same in every thread. */
  get id(): number {
    return this.words[H_ID]!;
  }

  lists(): FreeList[] {
    return [this.spaceList, this.segmentList, this.grantList, this.attachmentList, this.notifierList, this.invalidationList];
  }

  /** Runs `fn` as one journaled transaction for space `self` (see mutex.ts). May sleep on the mutex. */
  transact<T>(self: number, fn: (tx: Tx) => T, deadlineMs = this.#patienceMs ?? this.deadlineMs): T {
    return transact(this.#tx, this.words, this.layout, self, deadlineMs, fn);
  }

  /**
   * Runs `fn` (synchronous) with transactions that give up on a taken mutex after `ms` instead
   * of the domain deadline, so an asynchronous caller can go back to waiting without blocking.
   */
  patiently<T>(ms: number, fn: () => T): T {
    const before = this.#patienceMs;
    this.#patienceMs = ms;
    try {
      return fn();
    } finally {
      this.#patienceMs = before;
    }
  }

  /** Word index of field `field` of slot `slot` in `table`. */
  at(table: Table, slot: number, field: number): number {
    return slotBase(table, slot) + field;
  }

  /** Atomic read of a field (for paths outside the mutex). */
  load(table: Table, slot: number, field: number): number {
    return Atomics.load(this.words, slotBase(table, slot) + field);
  }
}

/** Links every slot of a fresh table into its free list (format only). */
function chain(w: Int32Array, list: FreeList): void {
  const { table } = list;
  for (let s = 0; s < table.capacity; s++) w[slotBase(table, s) + list.next] = s + 1 < table.capacity ? s + 1 : -1;
  w[list.head] = table.capacity > 0 ? 0 : -1;
}

/**
 * Pops a free slot, bumping its generation, and leaves its state word (field 0, still FREE) to
 * the caller, who writes it after the slot's other fields: the commit applies writes in
 * first-write order, so a reader without the mutex that sees the new state sees the whole slot
 * and its new generation (slotIs). Caller holds the mutex via tx; -1 if the table is full.
 */
export function takeSlot(tx: Tx, list: FreeList): number {
  const slot = tx.get(list.head);
  if (slot < 0) return -1;
  const base = slotBase(list.table, slot);
  tx.set(list.head, tx.get(base + list.next));
  tx.set(base + list.next, -1);
  bumpGeneration(tx, base);
  return slot;
}

/** Bumps the generation (field 1 of every table) of the slot at `base`. Caller holds the mutex via tx. */
export function bumpGeneration(tx: Tx, base: number): void {
  tx.set(base + 1, (tx.get(base + 1) + 1) & 0x3fffffff);
}

/** Returns a slot to its free list (caller holds the mutex via tx). */
export function freeSlot(tx: Tx, list: FreeList, slot: number): void {
  const base = slotBase(list.table, slot);
  tx.set(base, 0);
  tx.set(base + list.next, tx.get(list.head));
  tx.set(list.head, slot);
}
