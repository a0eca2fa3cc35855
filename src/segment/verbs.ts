/**
 * The XPMEM verbs' control-block side: make, get, attach, detach, release. Each is one
 * transaction (see sync/mutex.ts): it validates inside the transaction and throws before
 * writing anything, so a failed verb leaves the domain as it was. All may sleep briefly on
 * the domain mutex; none waits for another space.
 */
import { xpmemError, type XpmemError } from '../errors.js';
import {
  AT_GRANT, AT_LENGTH, AT_NOTIFIERS, AT_OFFSET, AT_SEG, AT_SPACE, GR_GEN, GR_MODE, GR_SEG,
  GR_SEGGEN, GR_SPACE, GR_STATE, H_ARENA_UNITS, H_LIMIT_UNITS, H_MAX_ARENA_UNITS, NAME_WORDS, SEG_NAME, SEG_REF, NT_ATT, NT_STATE, PERMIT_RW, SEG_BLOCK,
  SEG_BYTES, SEG_FLAGS, SEG_GEN, SEG_LIVE, SEG_OWNER, SEG_PERMIT, SEG_PROT, SEG_RMAP, SEG_STATE, SEG_UNIT,
  SEG_VIEWGEN, AT_GEN, AT_STATE, SEG_GRANTS, UNIT, idOf, slotBase,
} from '../layout.js';
import { allocSlot, freeSlot, type ControlBlock } from '../control/control.js';
import type { Tx } from '../sync/mutex.js';
import type { Words } from '../control/arena.js';
import { GRANTS, linkFront, RMAP, unlinkFrom } from '../control/lists.js';
import type { Mm } from '../mm.js';
import type { AttachmentSlot } from './attachment.js';

/** Where a grant lives and what it allows. */
export interface GrantSlot {
  readonly slot: number;
  readonly gen: number;
  readonly seg: number;
  readonly segGen: number;
  readonly segId: number;
  readonly writable: boolean;
}

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
    throw xpmemError('ERR_XPMEM_NO_MEMORY', `no ${units * UNIT} bytes free in the arena (${cb.allocator.freeUnits(tx) * UNIT} free of ${max * UNIT} max, largest hole ${cb.allocator.largestFree(tx) * UNIT}); remove segments, compact, or raise maxArenaBytes`);
  }
  return block;
}

/** ERR_XPMEM_NO_MEMORY over memoryLimit: reclaim may cure it by freeing `shortUnits`. */
function shortfall(shortUnits: number, limit: number): XpmemError {
  const error = xpmemError('ERR_XPMEM_NO_MEMORY', `resident memory would pass memoryLimit (${limit * UNIT} bytes) by ${shortUnits * UNIT} bytes and nothing more could be swapped out; remove or swap out segments, or raise memoryLimit`);
  return Object.assign(error, { [SHORT]: shortUnits });
}

const SHORT = Symbol('shortUnits');

/** Units a NO_MEMORY error over memoryLimit asks reclaim to free; 0 for any other error. */
export function shortfallOf(error: unknown): number {
  return (error as { [SHORT]?: number } | null)?.[SHORT] ?? 0;
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
  if (used + units > limit) throw shortfall(used + units - limit, limit);
}

/** Read-only Words over the control block, outside the mutex. */
function atomicWords(words: Int32Array): Words {
  return { get: (i) => Atomics.load(words, i), set: () => { throw new Error('read-only'); } };
}

/** Zeros copied in: fill() on shared memory stores byte by byte, set() copies words (5x faster). */
const ZEROS = new Uint8Array(64 * 1024);

/**
 * Zero-fills arena bytes [from, to), like a new SharedArrayBuffer. Only on memory nobody else
 * can reach yet: a fresh range before the transaction that publishes it commits.
 */
export function zero(arena: SharedArrayBuffer, from: number, to: number): void {
  const bytes = new Uint8Array(arena, from, to - from);
  for (let at = 0; at < bytes.length; at += ZEROS.length) bytes.set(bytes.length - at >= ZEROS.length ? ZEROS : ZEROS.subarray(0, bytes.length - at), at);
}

/** A segment just made: its slot, generation and id. */
export interface Made {
  readonly slot: number;
  readonly gen: number;
  readonly id: number;
}

/** make: a new live segment owned by `mm`, referenced. One transaction; may sleep on the mutex. */
export function makeSegment(mm: Mm, bytes: number, permit: number, flags: number, name: string): Made {
  const { cb } = mm;
  const { layout } = cb;
  const units = unitsFor(bytes);
  const made = cb.transact(mm.slot, (tx) => {
    const slot = allocSlot(tx, cb.segmentList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `segment table full (${layout.segments.capacity}); remove segments or raise capacity.segments`);
    const block = allocUnits(tx, cb, units);
    const base = slotBase(layout.segments, slot);
    const unit = cb.allocator.offset(tx, block);
    tx.set(base + SEG_STATE, SEG_LIVE);
    tx.set(base + SEG_OWNER, mm.slot);
    tx.set(base + SEG_BLOCK, block);
    tx.set(base + SEG_UNIT, unit);
    tx.set(base + SEG_BYTES, bytes);
    tx.set(base + SEG_PERMIT, permit);
    tx.set(base + SEG_PROT, PERMIT_RW);
    tx.set(base + SEG_FLAGS, flags);
    tx.set(base + SEG_RMAP, -1);
    tx.set(base + SEG_GRANTS, -1);
    tx.set(base + SEG_VIEWGEN, tx.get(base + SEG_VIEWGEN) + 1);
    const packed = packName(name);
    for (let w = 0; w < NAME_WORDS; w++) tx.set(base + SEG_NAME + w, packed[w]!);
    // Before the commit publishes it (reclaim and compaction scan live segments): zeroed and young.
    zero(cb.arena, unit * UNIT, (unit + units) * UNIT);
    Atomics.store(cb.words, base + SEG_REF, 1);
    return { slot, gen: tx.get(base + SEG_GEN), unit };
  });
  return { slot: made.slot, gen: made.gen, id: idOf(layout.segments, made.slot, made.gen) };
}

const encoder = new TextEncoder();

/** `name` as NAME_WORDS words of UTF-8 (cut at a character boundary), zero-padded. */
function packName(name: string): Int32Array {
  if (name === '') return NO_NAME;
  const words = new Int32Array(NAME_WORDS);
  encoder.encodeInto(name, new Uint8Array(words.buffer));
  return words;
}

/** packName('') (read only). */
const NO_NAME = new Int32Array(NAME_WORDS);

/** The name stored by packName, read through `get`. */
export function unpackName(get: (i: number) => number, base: number): string {
  const words = Int32Array.from({ length: NAME_WORDS }, (_, w) => get(base + SEG_NAME + w));
  const bytes = new Uint8Array(words.buffer);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Resolves a public segment id to a live slot, or throws ERR_XPMEM_NO_SEGMENT. Caller holds the mutex. */
function liveSegment(tx: Tx, cb: ControlBlock, segId: number): { slot: number; gen: number } {
  const { segments } = cb.layout;
  const slot = segId % segments.capacity;
  const gen = Math.floor(segId / segments.capacity);
  const base = slotBase(segments, slot);
  if (tx.get(base + SEG_GEN) !== gen || tx.get(base + SEG_STATE) !== SEG_LIVE) {
    throw xpmemError('ERR_XPMEM_NO_SEGMENT', `no segment ${segId} in this domain (never made, or removed); ask its owner for a current id`);
  }
  return { slot, gen };
}

/** get: a grant on `segId` for `mm`, checked against the segment's permit (owners always pass). */
export function getGrant(mm: Mm, segId: number, writable: boolean): GrantSlot {
  const { cb } = mm;
  const { layout } = cb;
  return cb.transact(mm.slot, (tx) => {
    const seg = liveSegment(tx, cb, segId);
    const segBase = slotBase(layout.segments, seg.slot);
    const permit = tx.get(segBase + SEG_PERMIT);
    if (tx.get(segBase + SEG_OWNER) !== mm.slot && permit < (writable ? PERMIT_RW : 1)) {
      throw xpmemError('ERR_XPMEM_PERMISSION', `segment ${segId} is exported with permit '${['none', 'ro', 'rw'][permit]}'; '${writable ? 'rw' : 'ro'}' access is not allowed`);
    }
    const slot = allocSlot(tx, cb.grantList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `grant table full (${layout.grants.capacity}); release accesses or raise capacity.grants`);
    const base = slotBase(layout.grants, slot);
    tx.set(base + GR_SPACE, mm.slot);
    tx.set(base + GR_SEG, seg.slot);
    tx.set(base + GR_SEGGEN, seg.gen);
    tx.set(base + GR_MODE, writable ? PERMIT_RW : 1);
    linkFront(tx, layout, GRANTS, seg.slot, slot);
    return { slot, gen: tx.get(base + GR_GEN), seg: seg.slot, segGen: seg.gen, segId, writable };
  });
}

function grantLive(tx: Tx, cb: ControlBlock, g: GrantSlot): boolean {
  const base = slotBase(cb.layout.grants, g.slot);
  return tx.get(base + GR_STATE) !== 0 && tx.get(base + GR_GEN) === g.gen;
}

/** attach: links a new attachment of `g`'s segment into its reverse map. */
export function attachRange(mm: Mm, g: GrantSlot, offset: number, length: number | undefined): AttachmentSlot {
  const { cb } = mm;
  const { layout } = cb;
  return cb.transact(mm.slot, (tx) => {
    const segBase = slotBase(layout.segments, g.seg);
    if (!grantLive(tx, cb, g) || tx.get(segBase + SEG_GEN) !== g.segGen || tx.get(segBase + SEG_STATE) !== SEG_LIVE) {
      throw xpmemError('ERR_XPMEM_REMOVED', `segment ${g.segId} was removed by its owner; get a new permit after it is made again`);
    }
    const bytes = tx.get(segBase + SEG_BYTES);
    const len = length ?? bytes - offset;
    if (offset > bytes || len < 1 || offset + len > bytes) {
      throw xpmemError('ERR_XPMEM_RANGE', `range [${offset}, ${offset + len}) is outside segment ${g.segId} of ${bytes} bytes`);
    }
    const slot = allocSlot(tx, cb.attachmentList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `attachment table full (${layout.attachments.capacity}); detach or raise capacity.attachments`);
    const base = slotBase(layout.attachments, slot);
    tx.set(base + AT_SPACE, mm.slot);
    tx.set(base + AT_SEG, g.seg);
    tx.set(base + AT_GRANT, g.slot);
    tx.set(base + AT_OFFSET, offset);
    tx.set(base + AT_LENGTH, len);
    tx.set(base + AT_NOTIFIERS, 0);
    linkFront(tx, layout, RMAP, g.seg, slot);
    return { slot, gen: tx.get(base + AT_GEN), seg: g.seg, segGen: g.segGen, segId: g.segId, offset, length: len, writable: g.writable };
  });
}

/** Unlinks and frees attachment `a` with its notifier slots, if still live. Caller holds the mutex. */
export function unlinkAttachment(tx: Tx, cb: ControlBlock, a: number): void {
  const { layout } = cb;
  const base = slotBase(layout.attachments, a);
  unlinkFrom(tx, layout, RMAP, a);
  if (tx.get(base + AT_NOTIFIERS) > 0) {
    for (let n = 0; n < layout.notifiers.capacity; n++) {
      const nb = slotBase(layout.notifiers, n);
      if (tx.get(nb + NT_STATE) !== 0 && tx.get(nb + NT_ATT) === a) freeSlot(tx, cb.notifierList, n);
    }
  }
  freeSlot(tx, cb.attachmentList, a);
}

function attachmentLive(tx: Tx, cb: ControlBlock, a: AttachmentSlot): boolean {
  const base = slotBase(cb.layout.attachments, a.slot);
  return tx.get(base + AT_STATE) !== 0 && tx.get(base + AT_GEN) === a.gen;
}

/** detach: drops attachment `a` (a no-op if its segment's removal already dropped it). */
export function detachAttachment(mm: Mm, a: AttachmentSlot): void {
  mm.cb.transact(mm.slot, (tx) => {
    if (attachmentLive(tx, mm.cb, a)) unlinkAttachment(tx, mm.cb, a.slot);
  });
}

/** release: drops grant `g` (its attachments must be detached first by the caller). */
export function releaseGrant(mm: Mm, g: GrantSlot): void {
  mm.cb.transact(mm.slot, (tx) => {
    if (grantLive(tx, mm.cb, g)) unlinkGrant(tx, mm.cb, g.slot);
  });
}

/** Unlinks live grant `g` from its segment's grant list and frees it. Caller holds the mutex. */
export function unlinkGrant(tx: Tx, cb: ControlBlock, g: number): void {
  unlinkFrom(tx, cb.layout, GRANTS, g);
  freeSlot(tx, cb.grantList, g);
}

/** Drops every grant and attachment on segment `seg` (its removal): O(its users). Caller holds the mutex. */
export function dropSegmentUsers(tx: Tx, cb: ControlBlock, seg: number): void {
  const segBase = slotBase(cb.layout.segments, seg);
  while (tx.get(segBase + SEG_RMAP) >= 0) unlinkAttachment(tx, cb, tx.get(segBase + SEG_RMAP));
  while (tx.get(segBase + SEG_GRANTS) >= 0) unlinkGrant(tx, cb, tx.get(segBase + SEG_GRANTS));
}
