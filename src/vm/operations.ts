/**
 * Floor 6 of src/ (docs/LAYERS.md), vm/: the owner's VM operations (this file), page faults,
 * reclaim under memoryLimit and compaction, each run as invalidations by a space (mm.ts).
 * Uses floors 1 to 5; hands out no user objects.
 *
 * The owner's VM operations as invalidation Operations (see notifier/invalidate.ts):
 * what each invalidates, what it does in step 4 (drained and held off), and what it frees after.
 * `apply` either completes or throws having changed nothing.
 */
import { aboutSegment, xpmemError } from '../errors.js';
import { truncateSync } from 'node:fs';
import {
  H_MUTEX,
  SEG_BLOCK,
  SEG_BYTES,
  SEG_FLAGS,
  SEG_GRANTS,
  SEG_OWNER,
  SEG_PROT,
  SEG_REF,
  SEG_REMOVED,
  SEG_SEQ,
  SEG_STATE,
  SEG_UNIT,
  SEG_VIEWGEN,
  SEGF_SWAPFILE,
  SEGF_SWAPPABLE,
  SEGF_SWAPPED,
  SP_NOTIFIERS,
  UNIT,
  segmentLive,
  slotBase,
} from '../layout.js';
import { freeSlot, type ControlBlock } from '../control/control.js';
import { writeBegin, writeEnd } from '../sync/seqcount.js';
import type { Tx } from '../sync/mutex.js';
import { tryOperationLock, unlockOperation, type Operation } from '../notifier/invalidate.js';
import { allocUnits, checkHeadroom, unitsFor, zeroTaken } from '../control/alloc.js';
import { dropSegmentUsers } from '../control/lists.js';
import { discardSwap, readSwap, swapIo, swapPath, writeSwap } from '../control/swapfile.js';
import { count, ST_SWAP_INS, ST_SWAP_OUTS } from '../stats.js';

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
  if (!segmentLive(cb.words, cb.layout, s.slot, s.gen)) {
    throw xpmemError('ERR_XPMEM_REMOVED', `segment ${s.id} was removed; make a new one`, { segId: s.id });
  }
}

function whole(cb: ControlBlock, s: SegmentRef): { offset: number; length: number } {
  checkSegment(cb, s);
  return { offset: 0, length: field(cb, s, SEG_BYTES) };
}

/**
 * prepare() of an operation that allocates the segment's whole size (migrate, swap-in, a
 * compaction move): the whole range, or null when `idle` says there is nothing to do; throws the
 * memoryLimit shortfall before anything starts, so the caller can reclaim first.
 */
function allocating(cb: ControlBlock, s: SegmentRef, idle: () => boolean): { offset: number; length: number } | null {
  const range = whole(cb, s);
  if (idle()) return null;
  checkHeadroom(cb, unitsFor(range.length));
  return range;
}

/** True when the segment's bytes are in its swap file, not in the arena. */
export function swappedOut(cb: ControlBlock, s: SegmentRef): boolean {
  return (field(cb, s, SEG_FLAGS) & SEGF_SWAPPED) !== 0;
}

/** The segment's swap file. */
function swapFileOf(cb: ControlBlock, s: SegmentRef): string {
  return swapPath(cb.swapDir, cb.id, s.id);
}

/** Moves the segment's bytes to a fresh block of `units` (copying `keep` bytes). Caller holds the mutex. */
function relocate(tx: Tx, cb: ControlBlock, s: SegmentRef, units: number, keep: number): void {
  moveTo(tx, cb, s, allocUnits(tx, cb, units), keep);
}

/** Moves the segment's first `keep` bytes into `block` (the rest zeroed) and frees its old block. Caller holds the mutex. */
function moveTo(tx: Tx, cb: ControlBlock, s: SegmentRef, block: number, keep: number): void {
  const base = slotBase(cb.layout.segments, s.slot);
  const from = tx.get(base + SEG_UNIT);
  const to = cb.allocator.offset(tx, block);
  const end = (to + cb.allocator.length(tx, block)) * UNIT;
  zeroTaken(cb, to * UNIT + keep, end, end);
  new Uint8Array(cb.arena).copyWithin(to * UNIT, from * UNIT, from * UNIT + keep);
  cb.allocator.free(tx, tx.get(base + SEG_BLOCK));
  tx.set(base + SEG_BLOCK, block);
  tx.set(base + SEG_UNIT, to);
}

/**
 * compaction's move: the segment goes to the lowest free range below it that holds it (within
 * memoryLimit); null when there is none, so nothing is invalidated. Decided again in step 4:
 * when the hole was taken meanwhile the bytes stay where they are, and moved() says false.
 */
export function compaction(cb: ControlBlock, self: number, s: SegmentRef): Operation & { readonly moved: () => boolean } {
  const base = slotBase(cb.layout.segments, s.slot);
  const lowerHole = (tx: Tx): boolean => cb.allocator.lowestFit(tx, unitsFor(tx.get(base + SEG_BYTES)), tx.get(base + SEG_UNIT)) >= 0;
  let moved = false;
  return {
    seg: s.slot,
    id: s.id,
    event: 'migrate',
    name: 'compact',
    prepare: () => allocating(cb, s, () => swappedOut(cb, s) || !cb.transact(self, lowerHole)),
    apply: () => {
      moved = cb.transact(self, (tx) => {
        const bytes = tx.get(base + SEG_BYTES);
        checkHeadroom(cb, unitsFor(bytes), tx);
        const block = cb.allocator.allocBelow(tx, unitsFor(bytes), tx.get(base + SEG_UNIT));
        if (block < 0) return false;
        moveTo(tx, cb, s, block, bytes);
        bumpViews(tx, cb, s);
        return true;
      });
    },
    /** True once step 4 moved the bytes (false when the hole was taken meanwhile). */
    moved: () => moved,
  };
}

function bumpViews(tx: Tx, cb: ControlBlock, s: SegmentRef): void {
  const at = slotBase(cb.layout.segments, s.slot) + SEG_VIEWGEN;
  tx.set(at, tx.get(at) + 1);
}

/**
 * remove (or the reaper's release): revokes every attachment and grant and frees the arena
 * range in step 4, so the memory is reusable at once; the slot itself is freed after step 5.
 * A segment nobody can observe is removed by prepare() alone (see unobservedRemoval).
 */
export function removal(cb: ControlBlock, self: number, s: SegmentRef, event: 'remove' | 'release'): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event,
    name: event,
    prepare: () => (unobservedRemoval(cb, self, s) ? null : whole(cb, s)),
    apply: () => {
      const swapFile = cb.transact(self, (tx) => {
        dropSegmentUsers(tx, cb, s.slot);
        const file = release(tx, cb, s);
        tx.set(slotBase(cb.layout.segments, s.slot) + SEG_STATE, SEG_REMOVED);
        return file;
      });
      if (swapFile) discardSwap(swapFileOf(cb, s));
    },
    finish: () => cb.transact(self, (tx) => freeSlot(tx, cb.segmentList, s.slot)),
  };
}

/**
 * remove's fast path: removes segment `s` at once when nobody but its owner could observe it
 * (see unobservedRemoval) and no other VM operation holds it; returns false, having done
 * nothing, otherwise (the caller then runs the whole removal, which waits for what it must).
 * Takes the operation lock only if it is free and the mutex for one transaction, waiting for
 * it at most `patienceMs`; with 0, only a mutex free now (a mutex taken meanwhile makes it
 * return false, nothing done). Throws ERR_XPMEM_REMOVED for a segment already gone.
 */
export function quickRemoval(cb: ControlBlock, self: number, s: SegmentRef, patienceMs: number): boolean {
  if (Atomics.load(cb.words, slotBase(cb.layout.segments, s.slot) + SEG_GRANTS) >= 0) return false; // observed (or a reused slot's)
  if (patienceMs === 0 && Atomics.load(cb.words, H_MUTEX) !== 0) return false;
  if (!tryOperationLock(cb, self, s.slot)) return false;
  try {
    return cb.patiently(patienceMs, () => unobservedRemoval(cb, self, s));
  } catch (error) {
    if (patienceMs === 0 && (error as { code?: string }).code === 'ERR_XPMEM_TIMEOUT') return false; // the mutex was taken meanwhile: nothing done
    throw aboutSegment(error, s.id); // as every error of an operation, it names the segment
  } finally {
    unlockOperation(cb, s.slot);
  }
}

/**
 * Removes segment `s` in one transaction, with no callbacks and nothing to drain, when nobody
 * but its owner could observe it: no grant (so no attachment, section or range notifier; get()
 * and attach() take the mutex, so none can appear meanwhile) and no space-wide notifier of its
 * owner. The seqcount still moves around it: a mapping left by a detached attachment reads
 * retry() true. Returns false (nothing done) otherwise. Throws ERR_XPMEM_REMOVED for a segment
 * already gone. Caller holds the segment's operation lock; takes the mutex.
 */
function unobservedRemoval(cb: ControlBlock, self: number, s: SegmentRef): boolean {
  const { segments, spaces } = cb.layout;
  const base = slotBase(segments, s.slot);
  // Ours for as long as we hold its operation lock: a stale handle must not touch a reused slot.
  checkSegment(cb, s);
  if (Atomics.load(cb.words, base + SEG_GRANTS) >= 0) return false; // observed: the whole protocol
  let swapFile: boolean | undefined;
  writeBegin(cb.words, base + SEG_SEQ);
  try {
    swapFile = cb.transact(self, (tx) => {
      if (tx.get(base + SEG_GRANTS) >= 0 || tx.get(slotBase(spaces, tx.get(base + SEG_OWNER)) + SP_NOTIFIERS) > 0) return undefined;
      const file = release(tx, cb, s);
      freeSlot(tx, cb.segmentList, s.slot);
      return file;
    });
  } finally {
    writeEnd(cb.words, base + SEG_SEQ);
  }
  if (swapFile === undefined) return false;
  if (swapFile) discardSwap(swapFileOf(cb, s));
  return true;
}

/** Frees the segment's arena range (none while swapped out); true if it has a swap file to delete. Caller holds the mutex. */
function release(tx: Tx, cb: ControlBlock, s: SegmentRef): boolean {
  const base = slotBase(cb.layout.segments, s.slot);
  const block = tx.get(base + SEG_BLOCK);
  if (block >= 0) cb.allocator.free(tx, block);
  tx.set(base + SEG_BLOCK, -1);
  bumpViews(tx, cb, s);
  return (tx.get(base + SEG_FLAGS) & SEGF_SWAPFILE) !== 0;
}

/** migrate: the bytes move to another arena range; attachers re-read the new place. */
export function migration(cb: ControlBlock, self: number, s: SegmentRef): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event: 'migrate',
    name: 'migrate',
    prepare: () => allocating(cb, s, () => swappedOut(cb, s)), // swapped out: nothing in the arena to move
    apply: () =>
      cb.transact(self, (tx) => {
        const bytes = tx.get(slotBase(cb.layout.segments, s.slot) + SEG_BYTES);
        relocate(tx, cb, s, unitsFor(bytes), bytes);
        bumpViews(tx, cb, s);
      }),
  };
}

/**
 * resize: shrinking invalidates [bytes, old) and frees the tail in place; growing extends in
 * place when the next block is free, else moves (so it invalidates the whole segment). New bytes
 * read as zero. A swapped-out segment is resized in its swap file (truncated or zero-extended).
 */
export function resizing(cb: ControlBlock, self: number, s: SegmentRef, bytes: number): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event: 'resize',
    name: 'resize',
    prepare: () => {
      const { length } = whole(cb, s);
      if (bytes > length && !swappedOut(cb, s)) checkHeadroom(cb, growth(cb, self, s, unitsFor(bytes)));
      return bytes < length ? { offset: bytes, length: length - bytes } : { offset: 0, length };
    },
    apply: () =>
      swappedOut(cb, s)
        ? resizeSwapped(cb, self, s, bytes)
        : cb.transact(self, (tx) => {
            const base = slotBase(cb.layout.segments, s.slot);
            const old = tx.get(base + SEG_BYTES);
            const block = tx.get(base + SEG_BLOCK);
            const units = unitsFor(bytes);
            const have = cb.allocator.length(tx, block);
            if (units < have) cb.allocator.shrink(tx, block, units);
            else if (units > have) {
              // Growing in place allocates too: within memoryLimit, checked here (prepare's check was
              // only a hint, and memory may have been taken since); moving checks in allocUnits.
              checkHeadroom(cb, units - have, tx);
              if (!cb.allocator.extend(tx, block, units)) relocate(tx, cb, s, units, Math.min(old, bytes));
            }
            if (bytes > old) {
              const unit = tx.get(base + SEG_UNIT);
              zeroTaken(cb, unit * UNIT + old, (unit + units) * UNIT, (unit + units) * UNIT);
            }
            tx.set(base + SEG_BYTES, bytes);
            bumpViews(tx, cb, s);
          }),
  };
}

/**
 * The units growing segment `s` to `units` allocates: the extra ones when its block can grow in
 * place, else all of them (the move holds the old and the new block at once). Asked for in
 * prepare, so reclaim runs before the window instead of after one rolled back for lack of room.
 */
function growth(cb: ControlBlock, self: number, s: SegmentRef, units: number): number {
  return cb.transact(self, (tx) => {
    const block = tx.get(slotBase(cb.layout.segments, s.slot) + SEG_BLOCK);
    const have = cb.allocator.length(tx, block);
    return units <= have ? 0 : cb.allocator.canExtend(tx, block, units) ? units - have : units;
  });
}

/** protect: changes what sections may do ('none' | 'ro' | 'rw'), for every attacher and the owner. */
export function protection(cb: ControlBlock, self: number, s: SegmentRef, prot: number): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event: 'protect',
    name: 'protect',
    prepare: () => whole(cb, s),
    apply: () =>
      cb.transact(self, (tx) => {
        tx.set(slotBase(cb.layout.segments, s.slot) + SEG_PROT, prot);
        bumpViews(tx, cb, s);
      }),
  };
}

/** resize of a swapped-out segment: its swap file takes the new size (zero-extended). */
function resizeSwapped(cb: ControlBlock, self: number, s: SegmentRef, bytes: number): void {
  const path = swapFileOf(cb, s);
  const now = field(cb, s, SEG_BYTES);
  const grow = bytes > now;
  // A swap file may be longer than its segment (only the prefix is read back): grow the file
  // before the transaction and shrink it after, so a failure between them loses nothing. A
  // grow first cuts what an earlier shrink could not, so the new bytes read as zeros.
  if (grow) {
    resizeFile(path, now);
    resizeFile(path, bytes);
  }
  cb.transact(self, (tx) => {
    tx.set(slotBase(cb.layout.segments, s.slot) + SEG_BYTES, bytes);
    bumpViews(tx, cb, s);
  });
  if (!grow) {
    try {
      resizeFile(path, bytes);
    } catch {
      // a longer file is only disk space
    }
  }
}

/** Truncates or zero-extends the swap file at `path`; ERR_XPMEM_SWAP_IO when it cannot. */
function resizeFile(path: string, bytes: number): void {
  try {
    truncateSync(path, bytes);
  } catch (error) {
    throw swapIo('resizing', path, error);
  }
}

/**
 * swap out: step 4 writes the bytes to the segment's swap file, then frees the arena range at
 * once (SEGF_SWAPPED, no block). A write error is ERR_XPMEM_SWAP_IO and leaves the data
 * resident. Null (nothing to do) when already swapped out.
 */
export function swapOut(cb: ControlBlock, self: number, s: SegmentRef): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event: 'swap',
    name: 'swapOut',
    prepare: () => {
      const range = whole(cb, s);
      if ((field(cb, s, SEG_FLAGS) & SEGF_SWAPPABLE) === 0) {
        throw xpmemError('ERR_XPMEM_PERMISSION', `segment ${s.id} was made with swappable: false`, { segId: s.id });
      }
      return swappedOut(cb, s) ? null : range;
    },
    apply: () => {
      const path = swapFileOf(cb, s);
      writeSwap(path, new Uint8Array(cb.arena, field(cb, s, SEG_UNIT) * UNIT, field(cb, s, SEG_BYTES)));
      try {
        cb.transact(self, (tx) => {
          const base = slotBase(cb.layout.segments, s.slot);
          cb.allocator.free(tx, tx.get(base + SEG_BLOCK));
          tx.set(base + SEG_BLOCK, -1);
          tx.set(base + SEG_FLAGS, tx.get(base + SEG_FLAGS) | SEGF_SWAPPED | SEGF_SWAPFILE);
          bumpViews(tx, cb, s);
        });
      } catch (error) {
        discardSwap(path);
        throw error;
      }
      count(cb.words, ST_SWAP_OUTS);
    },
  };
}

/**
 * swap in: step 4 allocates a range (within memoryLimit: checkHeadroom first, so the caller can
 * reclaim) and reads the swap file into it inside one transaction, so the segment is published
 * only with its bytes. The file stays as the segment's swap slot (the next swap-out rewrites it;
 * removal deletes it), so a swap-in costs no unlink. A read error is ERR_XPMEM_SWAP_IO and leaves it swapped out; a missing or
 * resized file means its data is lost, and every fault reports that. Null when already resident.
 */
export function swapIn(cb: ControlBlock, self: number, s: SegmentRef): Operation {
  return {
    seg: s.slot,
    id: s.id,
    event: 'swap',
    name: 'swapIn',
    prepare: () => allocating(cb, s, () => !swappedOut(cb, s)),
    apply: () => {
      const path = swapFileOf(cb, s);
      cb.transact(self, (tx) => {
        const base = slotBase(cb.layout.segments, s.slot);
        const bytes = tx.get(base + SEG_BYTES);
        const units = unitsFor(bytes);
        const block = allocUnits(tx, cb, units);
        const unit = cb.allocator.offset(tx, block);
        zeroTaken(cb, unit * UNIT + bytes, (unit + units) * UNIT, (unit + units) * UNIT);
        readSwap(path, new Uint8Array(cb.arena, unit * UNIT, bytes));
        tx.set(base + SEG_BLOCK, block);
        tx.set(base + SEG_UNIT, unit);
        tx.set(base + SEG_FLAGS, tx.get(base + SEG_FLAGS) & ~SEGF_SWAPPED);
        bumpViews(tx, cb, s);
      });
      Atomics.store(cb.words, slotBase(cb.layout.segments, s.slot) + SEG_REF, 1); // just used: a fault is an access
      count(cb.words, ST_SWAP_INS);
    },
  };
}
