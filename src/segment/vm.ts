/**
 * The owner's VM operations as invalidation Operations (see notifier/invalidate.ts):
 * what each invalidates, what it does in step 4 (drained and held off), and what it frees after.
 * `apply` either completes or throws having changed nothing.
 */
import { xpmemError } from '../errors.js';
import {
  SEG_BLOCK, SEG_BYTES, SEG_GEN, SEG_LIVE, SEG_PROT, SEG_REMOVED, SEG_STATE, SEG_UNIT, SEG_VIEWGEN, UNIT, slotBase,
} from './layout.js';
import { freeSlot, type ControlBlock } from './control.js';
import type { Tx } from '../sync/mutex.js';
import type { Operation } from '../notifier/invalidate.js';
import type { InvalidateEvent } from '../notifier/range.js';
import { allocUnits, dropSegmentUsers, unitsFor } from './verbs.js';

/** The segment an operation targets: slot, generation and public id. */
export interface SegmentRef {
  readonly slot: number;
  readonly gen: number;
  readonly id: number;
}

function field(cb: ControlBlock, s: SegmentRef, f: number): number {
  return Atomics.load(cb.words, slotBase(cb.layout.segments, s.slot) + f);
}

/** Throws ERR_XPMEM_REMOVED unless `s` is still the live segment it names. */
export function checkSegment(cb: ControlBlock, s: SegmentRef): void {
  if (field(cb, s, SEG_GEN) !== s.gen || field(cb, s, SEG_STATE) !== SEG_LIVE) {
    throw xpmemError('ERR_XPMEM_REMOVED', `segment ${s.id} was removed; make a new one`);
  }
}

function whole(cb: ControlBlock, s: SegmentRef): { offset: number; length: number } {
  checkSegment(cb, s);
  return { offset: 0, length: field(cb, s, SEG_BYTES) };
}

/** Moves the segment's bytes to a fresh block of `units` (copying `keep` bytes). Caller holds the mutex. */
function relocate(tx: Tx, cb: ControlBlock, s: SegmentRef, units: number, keep: number): void {
  const base = slotBase(cb.layout.segments, s.slot);
  const from = tx.get(base + SEG_UNIT);
  const block = allocUnits(tx, cb, units);
  const to = cb.allocator.offset(tx, block);
  const arena = new Uint8Array(cb.arena);
  arena.copyWithin(to * UNIT, from * UNIT, from * UNIT + keep);
  arena.fill(0, to * UNIT + keep, (to + units) * UNIT);
  cb.allocator.free(tx, tx.get(base + SEG_BLOCK));
  tx.set(base + SEG_BLOCK, block);
  tx.set(base + SEG_UNIT, to);
}

function bumpViews(tx: Tx, cb: ControlBlock, s: SegmentRef): void {
  const at = slotBase(cb.layout.segments, s.slot) + SEG_VIEWGEN;
  tx.set(at, tx.get(at) + 1);
}

/**
 * remove (or the reaper's release): revokes every attachment and grant and frees the arena
 * range in step 4, so the memory is reusable at once; the slot itself is freed after step 5.
 */
export function removal(cb: ControlBlock, self: number, s: SegmentRef, event: InvalidateEvent): Operation {
  return {
    seg: s.slot,
    event,
    prepare: () => whole(cb, s),
    apply: () => cb.transact(self, (tx) => {
      const base = slotBase(cb.layout.segments, s.slot);
      dropSegmentUsers(tx, cb, s.slot);
      cb.allocator.free(tx, tx.get(base + SEG_BLOCK));
      tx.set(base + SEG_BLOCK, -1);
      tx.set(base + SEG_STATE, SEG_REMOVED);
      bumpViews(tx, cb, s);
    }),
    finish: () => cb.transact(self, (tx) => freeSlot(tx, cb.segmentList, s.slot)),
  };
}

/** migrate: the bytes move to another arena range; attachers re-read the new place. */
export function migration(cb: ControlBlock, self: number, s: SegmentRef): Operation {
  return {
    seg: s.slot,
    event: 'migrate',
    prepare: () => whole(cb, s),
    apply: () => cb.transact(self, (tx) => {
      const bytes = tx.get(slotBase(cb.layout.segments, s.slot) + SEG_BYTES);
      relocate(tx, cb, s, unitsFor(bytes), bytes);
      bumpViews(tx, cb, s);
    }),
  };
}

/**
 * resize: shrinking invalidates [bytes, old) and frees the tail in place; growing extends in
 * place when the next block is free, else moves (so it invalidates the whole segment). New bytes
 * read as zero.
 */
export function resizing(cb: ControlBlock, self: number, s: SegmentRef, bytes: number): Operation {
  return {
    seg: s.slot,
    event: 'resize',
    prepare: () => {
      const { length } = whole(cb, s);
      return bytes < length ? { offset: bytes, length: length - bytes } : { offset: 0, length };
    },
    apply: () => cb.transact(self, (tx) => {
      const base = slotBase(cb.layout.segments, s.slot);
      const old = tx.get(base + SEG_BYTES);
      const block = tx.get(base + SEG_BLOCK);
      const units = unitsFor(bytes);
      const have = cb.allocator.length(tx, block);
      if (units < have) cb.allocator.shrink(tx, block, units);
      else if (units > have && !cb.allocator.extend(tx, block, units)) relocate(tx, cb, s, units, Math.min(old, bytes));
      if (bytes > old) {
        const unit = tx.get(base + SEG_UNIT);
        new Uint8Array(cb.arena).fill(0, unit * UNIT + old, (unit + units) * UNIT);
      }
      tx.set(base + SEG_BYTES, bytes);
      bumpViews(tx, cb, s);
    }),
  };
}

/** protect: changes what sections may do ('none' | 'ro' | 'rw'), for every attacher and the owner. */
export function protection(cb: ControlBlock, self: number, s: SegmentRef, prot: number): Operation {
  return {
    seg: s.slot,
    event: 'protect',
    prepare: () => whole(cb, s),
    apply: () => cb.transact(self, (tx) => {
      tx.set(slotBase(cb.layout.segments, s.slot) + SEG_PROT, prot);
      bumpViews(tx, cb, s);
    }),
  };
}

