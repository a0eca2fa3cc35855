/**
 * The arena allocator: segregated fits over 64-byte units, metadata in control-block words.
 *
 * Every block (used or free) is a record in the `blocks` table, linked in address order
 * (BL_PREV / BL_NEXT) so a freed block coalesces with free neighbours in O(1). Free blocks also
 * sit in one of 32 class lists (class = floor(log2(length))), with a bitmap of non-empty classes:
 * alloc looks at a few blocks of the request's own class, then takes the first block of the
 * lowest non-empty class that guarantees a fit (one Math.clz32 away) and splits it.
 * Fit guarantee: alloc(n) succeeds whenever a free block of at least n units exists in the
 * request's own class among its first SCAN entries, or of at least 2^ceil(log2 n) units anywhere
 * (so always when a free block of >= 2n units exists).
 *
 * Stateless beyond the layout: every thread builds its own ArenaAllocator over the same words.
 * Every method is called with the domain mutex held (through a Tx) and never sleeps.
 */
import { H_ALLOC, slotBase, type Layout } from '../layout.js';

/** Word access the allocator writes through (a Tx, or a raw array in format and tests). */
export interface Words {
  get(index: number): number;
  set(index: number, value: number): void;
}

// block record fields
const BL_OFFSET = 0; // first unit
const BL_LENGTH = 1; // units
const BL_KIND = 2; // K_UNUSED (record on the record free list) / K_USED / K_FREE
const BL_PREV = 3; // address-ordered neighbours, -1 = none
const BL_NEXT = 4;
const BL_FNEXT = 5; // class list (free block) or record free list (unused record) link
const BL_FPREV = 6; // class list back link

const K_UNUSED = 0;
const K_USED = 1;
const K_FREE = 2;

// header fields, relative to H_ALLOC
const A_RECORDS = 0; // head of unused records
const A_FIRST = 1; // lowest-addressed block
const A_LAST = 2; // highest-addressed block
const A_TOTAL = 3; // units the allocator manages
const A_FREE = 4; // units in free blocks
const A_BITMAP = 5; // bit c set = class list c non-empty
const A_CLASS = 6; // 32 class list heads

const SCAN = 8;

function classOf(units: number): number {
  return 31 - Math.clz32(units);
}

export class ArenaAllocator {
  readonly #layout: Layout;

  constructor(layout: Layout) {
    this.#layout = layout;
  }

  #at(block: number, field: number): number {
    return slotBase(this.#layout.blocks, block) + field;
  }

  #get(w: Words, block: number, field: number): number {
    return w.get(this.#at(block, field));
  }

  #set(w: Words, block: number, field: number, value: number): void {
    w.set(this.#at(block, field), value);
  }

  /** Formats an empty allocator over [0, units). Caller owns the words exclusively. */
  init(w: Words, units: number): void {
    const cap = this.#layout.blocks.capacity;
    for (let b = 0; b < cap; b++) {
      this.#set(w, b, BL_KIND, K_UNUSED);
      this.#set(w, b, BL_FNEXT, b + 1 < cap ? b + 1 : -1);
    }
    w.set(H_ALLOC + A_RECORDS, cap > 0 ? 0 : -1);
    for (const f of [A_FIRST, A_LAST]) w.set(H_ALLOC + f, -1);
    for (const f of [A_TOTAL, A_FREE, A_BITMAP]) w.set(H_ALLOC + f, 0);
    for (let c = 0; c < 32; c++) w.set(H_ALLOC + A_CLASS + c, -1);
    if (units > 0) this.grow(w, units);
  }

  #record(w: Words): number {
    const b = w.get(H_ALLOC + A_RECORDS);
    if (b >= 0) w.set(H_ALLOC + A_RECORDS, this.#get(w, b, BL_FNEXT));
    return b;
  }

  #unrecord(w: Words, b: number): void {
    this.#set(w, b, BL_KIND, K_UNUSED);
    this.#set(w, b, BL_FNEXT, w.get(H_ALLOC + A_RECORDS));
    w.set(H_ALLOC + A_RECORDS, b);
  }

  #push(w: Words, b: number): void {
    const c = classOf(this.#get(w, b, BL_LENGTH));
    const head = w.get(H_ALLOC + A_CLASS + c);
    this.#set(w, b, BL_KIND, K_FREE);
    this.#set(w, b, BL_FPREV, -1);
    this.#set(w, b, BL_FNEXT, head);
    if (head >= 0) this.#set(w, head, BL_FPREV, b);
    w.set(H_ALLOC + A_CLASS + c, b);
    w.set(H_ALLOC + A_BITMAP, w.get(H_ALLOC + A_BITMAP) | (1 << c));
    w.set(H_ALLOC + A_FREE, w.get(H_ALLOC + A_FREE) + this.#get(w, b, BL_LENGTH));
  }

  #pull(w: Words, b: number): void {
    const c = classOf(this.#get(w, b, BL_LENGTH));
    const prev = this.#get(w, b, BL_FPREV);
    const next = this.#get(w, b, BL_FNEXT);
    if (prev >= 0) this.#set(w, prev, BL_FNEXT, next);
    else w.set(H_ALLOC + A_CLASS + c, next);
    if (next >= 0) this.#set(w, next, BL_FPREV, prev);
    if (w.get(H_ALLOC + A_CLASS + c) < 0) w.set(H_ALLOC + A_BITMAP, w.get(H_ALLOC + A_BITMAP) & ~(1 << c));
    this.#set(w, b, BL_KIND, K_USED);
    w.set(H_ALLOC + A_FREE, w.get(H_ALLOC + A_FREE) - this.#get(w, b, BL_LENGTH));
  }

  /** Links new record `b` right after `after` in address order (-1: at the end of an empty list). */
  #linkAfter(w: Words, after: number, b: number): void {
    const next = after < 0 ? -1 : this.#get(w, after, BL_NEXT);
    this.#set(w, b, BL_PREV, after);
    this.#set(w, b, BL_NEXT, next);
    if (after >= 0) this.#set(w, after, BL_NEXT, b);
    else w.set(H_ALLOC + A_FIRST, b);
    if (next >= 0) this.#set(w, next, BL_PREV, b);
    else w.set(H_ALLOC + A_LAST, b);
  }

  #unlink(w: Words, b: number): void {
    const prev = this.#get(w, b, BL_PREV);
    const next = this.#get(w, b, BL_NEXT);
    if (prev >= 0) this.#set(w, prev, BL_NEXT, next);
    else w.set(H_ALLOC + A_FIRST, next);
    if (next >= 0) this.#set(w, next, BL_PREV, prev);
    else w.set(H_ALLOC + A_LAST, prev);
    this.#unrecord(w, b);
  }

  /** Splits used block `b` after `units`; the tail becomes free (coalesced). False if no record is left. */
  #split(w: Words, b: number, units: number): boolean {
    const len = this.#get(w, b, BL_LENGTH);
    if (len === units) return true;
    const tail = this.#record(w);
    if (tail < 0) return false;
    this.#set(w, tail, BL_OFFSET, this.#get(w, b, BL_OFFSET) + units);
    this.#set(w, tail, BL_LENGTH, len - units);
    this.#set(w, tail, BL_KIND, K_USED);
    this.#set(w, b, BL_LENGTH, units);
    this.#linkAfter(w, b, tail);
    this.free(w, tail);
    return true;
  }

  /** Allocates `units` (>= 1); returns a block, or -1 when nothing fits or no record is left. */
  alloc(w: Words, units: number): number {
    const own = classOf(units);
    let b = w.get(H_ALLOC + A_CLASS + own);
    for (let i = 0; b >= 0 && i < SCAN && this.#get(w, b, BL_LENGTH) < units; i++) b = this.#get(w, b, BL_FNEXT);
    if (b < 0 || this.#get(w, b, BL_LENGTH) < units) {
      const fit = (units & (units - 1)) === 0 ? own : own + 1;
      const mask = fit >= 32 ? 0 : w.get(H_ALLOC + A_BITMAP) & (-1 << fit);
      if (mask === 0) return -1;
      b = w.get(H_ALLOC + A_CLASS + (31 - Math.clz32(mask & -mask)));
    }
    return this.#take(w, b, units);
  }

  /** Takes the first `units` of free block `b` (its tail stays free); -1 if no record is left to split it. */
  #take(w: Words, b: number, units: number): number {
    if (w.get(H_ALLOC + A_RECORDS) < 0 && this.#get(w, b, BL_LENGTH) > units) return -1;
    this.#pull(w, b);
    this.#split(w, b, units);
    return b;
  }

  /**
   * Compaction's placement: allocates `units` at the start of the lowest-addressed free block
   * that holds them and starts below unit `below`; -1 when there is none. O(blocks).
   */
  allocBelow(w: Words, units: number, below: number): number {
    const b = this.lowestFit(w, units, below);
    return b < 0 ? -1 : this.#take(w, b, units);
  }

  /** The lowest-addressed free block holding `units` that starts below unit `below`, or -1. O(blocks). */
  lowestFit(w: Words, units: number, below: number): number {
    for (let b = w.get(H_ALLOC + A_FIRST); b >= 0 && this.#get(w, b, BL_OFFSET) < below; b = this.#get(w, b, BL_NEXT)) {
      if (this.#get(w, b, BL_KIND) === K_FREE && this.#get(w, b, BL_LENGTH) >= units) return b;
    }
    return -1;
  }

  /** Frees block `b`, coalescing with free neighbours. */
  free(w: Words, b: number): void {
    const next = this.#get(w, b, BL_NEXT);
    if (next >= 0 && this.#get(w, next, BL_KIND) === K_FREE) {
      this.#pull(w, next);
      this.#set(w, b, BL_LENGTH, this.#get(w, b, BL_LENGTH) + this.#get(w, next, BL_LENGTH));
      this.#unlink(w, next);
    }
    const prev = this.#get(w, b, BL_PREV);
    if (prev >= 0 && this.#get(w, prev, BL_KIND) === K_FREE) {
      this.#pull(w, prev);
      this.#set(w, prev, BL_LENGTH, this.#get(w, prev, BL_LENGTH) + this.#get(w, b, BL_LENGTH));
      this.#unlink(w, b);
      b = prev;
    }
    this.#push(w, b);
  }

  /** The arena grew to `units`: extends the trailing free block or appends one. */
  grow(w: Words, units: number): void {
    const total = w.get(H_ALLOC + A_TOTAL);
    if (units <= total) return;
    const b = this.#record(w);
    if (b < 0) return; // no record: the new units stay unmanaged until one frees up
    this.#set(w, b, BL_OFFSET, total);
    this.#set(w, b, BL_LENGTH, units - total);
    this.#set(w, b, BL_KIND, K_USED);
    this.#linkAfter(w, w.get(H_ALLOC + A_LAST), b);
    w.set(H_ALLOC + A_TOTAL, units);
    this.free(w, b);
  }

  /** Keeps the first `units` of used block `b`; the tail is freed (if a record is left). */
  shrink(w: Words, b: number, units: number): void {
    this.#split(w, b, units);
  }

  /** Grows used block `b` in place to `units` when the next block is free and large enough. */
  /** Whether extend(b, units) would succeed: the next block is free and long enough. Changes nothing. */
  canExtend(w: Words, b: number, units: number): boolean {
    const need = units - this.#get(w, b, BL_LENGTH);
    if (need <= 0) return need === 0;
    const next = this.#get(w, b, BL_NEXT);
    return next >= 0 && this.#get(w, next, BL_KIND) === K_FREE && this.#get(w, next, BL_LENGTH) >= need;
  }

  extend(w: Words, b: number, units: number): boolean {
    const need = units - this.#get(w, b, BL_LENGTH);
    const next = this.#get(w, b, BL_NEXT);
    if (need <= 0) return need === 0;
    if (next < 0 || this.#get(w, next, BL_KIND) !== K_FREE || this.#get(w, next, BL_LENGTH) < need) return false;
    this.#pull(w, next);
    this.#set(w, b, BL_LENGTH, this.#get(w, b, BL_LENGTH) + this.#get(w, next, BL_LENGTH));
    this.#unlink(w, next);
    this.#split(w, b, units);
    return true;
  }

  offset(w: Words, b: number): number {
    return this.#get(w, b, BL_OFFSET);
  }

  length(w: Words, b: number): number {
    return this.#get(w, b, BL_LENGTH);
  }

  totalUnits(w: Words): number {
    return w.get(H_ALLOC + A_TOTAL);
  }

  freeUnits(w: Words): number {
    return w.get(H_ALLOC + A_FREE);
  }

  /** Units of the largest free block (the highest non-empty class holds it). */
  largestFree(w: Words): number {
    const bitmap = w.get(H_ALLOC + A_BITMAP);
    if (bitmap === 0) return 0;
    let largest = 0;
    for (let b = w.get(H_ALLOC + A_CLASS + 31 - Math.clz32(bitmap)); b >= 0; b = this.#get(w, b, BL_FNEXT)) {
      largest = Math.max(largest, this.#get(w, b, BL_LENGTH));
    }
    return largest;
  }

  /** Every broken invariant, as text; [] when consistent. */
  check(w: Words): string[] {
    const errors: string[] = [];
    const cap = this.#layout.blocks.capacity;
    let at = 0;
    let free = 0;
    let count = 0;
    let prev = -1;
    for (let b = w.get(H_ALLOC + A_FIRST); b >= 0; prev = b, b = this.#get(w, b, BL_NEXT)) {
      if (++count > cap) return [...errors, 'address list is cyclic'];
      if (this.#get(w, b, BL_PREV) !== prev) errors.push(`block ${b}: back link ${this.#get(w, b, BL_PREV)} != ${prev}`);
      if (this.#get(w, b, BL_OFFSET) !== at) errors.push(`block ${b} starts at ${this.#get(w, b, BL_OFFSET)}, expected ${at}`);
      const kind = this.#get(w, b, BL_KIND);
      if (kind === K_UNUSED) errors.push(`block ${b} is in the address list but unused`);
      if (kind === K_FREE) {
        free += this.#get(w, b, BL_LENGTH);
        if (prev >= 0 && this.#get(w, prev, BL_KIND) === K_FREE) errors.push(`blocks ${prev} and ${b} are both free (not coalesced)`);
      }
      at += this.#get(w, b, BL_LENGTH);
    }
    if (w.get(H_ALLOC + A_LAST) !== prev) errors.push('last-block pointer is stale');
    if (at !== w.get(H_ALLOC + A_TOTAL)) errors.push(`blocks cover ${at} units, total is ${w.get(H_ALLOC + A_TOTAL)}`);
    if (free !== w.get(H_ALLOC + A_FREE)) errors.push(`free blocks hold ${free} units, counter says ${w.get(H_ALLOC + A_FREE)}`);
    let listed = 0;
    for (let c = 0; c < 32; c++) {
      const head = w.get(H_ALLOC + A_CLASS + c);
      if (head >= 0 !== ((w.get(H_ALLOC + A_BITMAP) & (1 << c)) !== 0)) errors.push(`class ${c}: bitmap disagrees with its list`);
      for (let b = head, n = 0; b >= 0; b = this.#get(w, b, BL_FNEXT), n++) {
        if (n > cap) {
          errors.push(`class ${c} list is cyclic`);
          break;
        }
        if (this.#get(w, b, BL_KIND) !== K_FREE || classOf(this.#get(w, b, BL_LENGTH)) !== c) errors.push(`block ${b} is in class ${c} but is not a free block of that class`);
        listed += this.#get(w, b, BL_LENGTH);
      }
    }
    if (listed !== free) errors.push(`class lists hold ${listed} units, address list ${free}`);
    let unused = 0;
    for (let b = w.get(H_ALLOC + A_RECORDS); b >= 0; b = this.#get(w, b, BL_FNEXT)) if (++unused > cap) return [...errors, 'record free list is cyclic'];
    if (unused + count !== cap) errors.push(`${unused} unused + ${count} linked records != ${cap}`);
    return errors;
  }
}
