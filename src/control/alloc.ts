/**
 * Arena allocation within the domain's bounds: the arena grows up to maxArenaBytes when no free
 * block fits, and resident bytes never pass memoryLimit (the shortfall error tells reclaim how
 * much to free). Every function runs in the calling thread and never sleeps; those taking a Tx
 * are called with the domain mutex held.
 */
import { xpmemError, type XpmemError } from '../errors.js';
import { H_ARENA_UNITS, H_FRESH_UNITS, H_LIMIT_UNITS, H_MAX_ARENA_UNITS, UNIT } from '../layout.js';
import type { Tx } from '../sync/mutex.js';
import type { Words } from './arena.js';
import type { ControlBlock } from './control.js';

/** Units of arena for `bytes` (at least one). */
export function unitsFor(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / UNIT));
}

/**
 * Allocates `units` of arena, growing the arena when no free block fits.
 * Caller holds the mutex (tx); throws ERR_XPMEM_NO_MEMORY past maxArenaBytes.
 */
export function allocUnits(tx: Tx, cb: ControlBlock, units: number): number {
  checkHeadroom(cb, units, tx);
  let block = cb.allocator.alloc(tx, units);
  if (block >= 0) return block;
  const total = tx.get(H_ARENA_UNITS);
  const max = tx.get(H_MAX_ARENA_UNITS);
  const want = Math.min(max, Math.max(total * 2, total + units));
  if (want > total) {
    if (cb.arena.byteLength < want * UNIT) cb.arena.grow(want * UNIT);
    cb.allocator.grow(tx, want);
    tx.set(H_ARENA_UNITS, want);
    block = cb.allocator.alloc(tx, units);
  }
  if (block < 0) {
    throw xpmemError(
      'ERR_XPMEM_NO_MEMORY',
      `no ${units * UNIT} bytes free in the arena (${cb.allocator.freeUnits(tx) * UNIT} free of ${max * UNIT} max, largest hole ${cb.allocator.largestFree(tx) * UNIT}); remove segments, compact, or raise maxArenaBytes`,
    );
  }
  return block;
}

/** What an allocation over memoryLimit lacked: `short` units to free for an allocation of `units`. */
export interface Shortfall {
  readonly short: number;
  readonly units: number;
}

/** ERR_XPMEM_NO_MEMORY over memoryLimit: reclaim may cure it by freeing `short` units. */
function shortfall(lack: Shortfall, limit: number): XpmemError {
  const error = xpmemError(
    'ERR_XPMEM_NO_MEMORY',
    `resident memory would pass memoryLimit (${limit * UNIT} bytes) by ${lack.short * UNIT} bytes and nothing more could be swapped out; remove or swap out segments, or raise memoryLimit`,
  );
  return Object.assign(error, { [SHORT]: lack });
}

const SHORT = Symbol('shortfall');

/** What a NO_MEMORY error over memoryLimit asks reclaim to free; undefined for any other error. */
export function shortfallOf(error: unknown): Shortfall | undefined {
  return (error as { [SHORT]?: Shortfall } | null)?.[SHORT];
}

/**
 * Throws the memoryLimit shortfall when allocating `units` more would pass the limit. Inside a
 * transaction (`tx`) this is the rule; without one it is an early hint (an operation's prepare,
 * so the caller can reclaim before any invalidation starts).
 */
export function checkHeadroom(cb: ControlBlock, units: number, tx: Words = atomicWords(cb.words)): void {
  const limit = tx.get(H_LIMIT_UNITS);
  if (limit === 0) return;
  if (units > limit) throw xpmemError('ERR_XPMEM_NO_MEMORY', `${units * UNIT} bytes can never be resident under memoryLimit (${limit * UNIT} bytes)`);
  const used = cb.allocator.totalUnits(tx) - cb.allocator.freeUnits(tx);
  if (used + units > limit) throw shortfall({ short: used + units - limit, units }, limit);
}

/** Read-only Words over the control block, outside the mutex. */
function atomicWords(words: Int32Array): Words {
  return {
    get: (i) => Atomics.load(words, i),
    set: () => {
      throw new Error('read-only');
    },
  };
}

/** Zeros copied in: fill() on shared memory stores byte by byte, set() copies words (5x faster). */
const ZEROS = new Uint8Array(64 * 1024);

/**
 * Zero-fills bytes [from, to) of a block just taken (or grown in place) that ends at byte
 * `end`, where they may hold old data: arena units never handed out since the domain was made
 * are zero already (a new or grown SharedArrayBuffer, a new shared memory file, whose pages
 * then stay untouched) and are skipped. The fresh mark is raised past the block first, so data
 * the caller writes into it next can never lie above the mark, even if its transaction then
 * fails or its thread dies. Caller holds the mutex; never sleeps.
 */
export function zeroTaken(cb: ControlBlock, from: number, to: number, end: number): void {
  const fresh = Atomics.load(cb.words, H_FRESH_UNITS) * UNIT;
  if (end > fresh) Atomics.store(cb.words, H_FRESH_UNITS, Math.ceil(end / UNIT));
  if (from < fresh) zero(cb.arena, from, Math.min(to, fresh));
}

/**
 * Zero-fills arena bytes [from, to), like a new SharedArrayBuffer. Only on memory nobody else
 * can reach yet: a fresh range before the transaction that publishes it commits.
 */
function zero(arena: SharedArrayBuffer, from: number, to: number): void {
  const bytes = new Uint8Array(arena, from, to - from);
  for (let at = 0; at < bytes.length; at += ZEROS.length) bytes.set(bytes.length - at >= ZEROS.length ? ZEROS : ZEROS.subarray(0, bytes.length - at), at);
}
