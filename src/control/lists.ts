/**
 * Per-segment lists threaded through table entries: the reverse map (a segment's attachments)
 * and its grant list, and the unlinking of their entries (detach, release, a removal, the
 * reaper). Doubly linked so an entry leaves in O(1). Caller holds the domain mutex.
 */
import { AT_NEXT, AT_NOTIFIERS, AT_PREV, AT_SEG, GR_SEG, GR_SNEXT, GR_SPREV, NT_ATT, NT_STATE, SEG_GRANTS, SEG_NOTIFIERS, SEG_RMAP, slotBase, type Layout, type Table } from '../layout.js';
import type { Tx } from '../sync/mutex.js';
import { freeSlot, type ControlBlock } from './control.js';

/** Where one kind of list lives: its head in the segment, its links and segment in the entry. */
export interface SegmentList {
  readonly table: (layout: Layout) => Table;
  /** Segment field holding the first entry (-1 = empty). */
  readonly head: number;
  /** Entry fields: next and previous entry, and the entry's segment slot. */
  readonly next: number;
  readonly prev: number;
  readonly seg: number;
}

/** Links entry `e` at the front of segment `seg`'s list. */
export function linkFront(tx: Tx, layout: Layout, list: SegmentList, seg: number, e: number): void {
  const table = list.table(layout);
  const headAt = slotBase(layout.segments, seg) + list.head;
  const head = tx.get(headAt);
  const base = slotBase(table, e);
  tx.set(base + list.prev, -1);
  tx.set(base + list.next, head);
  if (head >= 0) tx.set(slotBase(table, head) + list.prev, e);
  tx.set(headAt, e);
}

/** Unlinks entry `e` from its segment's list. */
export function unlinkFrom(tx: Tx, layout: Layout, list: SegmentList, e: number): void {
  const table = list.table(layout);
  const base = slotBase(table, e);
  const prev = tx.get(base + list.prev);
  const next = tx.get(base + list.next);
  if (prev >= 0) tx.set(slotBase(table, prev) + list.next, next);
  else tx.set(slotBase(layout.segments, tx.get(base + list.seg)) + list.head, next);
  if (next >= 0) tx.set(slotBase(table, next) + list.prev, prev);
}

/** A segment's attachments (the reverse map an invalidation walks). */
export const RMAP: SegmentList = { table: (l) => l.attachments, head: SEG_RMAP, next: AT_NEXT, prev: AT_PREV, seg: AT_SEG };

/** A segment's grants (what its removal revokes). */
export const GRANTS: SegmentList = { table: (l) => l.grants, head: SEG_GRANTS, next: GR_SNEXT, prev: GR_SPREV, seg: GR_SEG };

/** Unlinks and frees attachment `a` with its notifier slots, if still live. Caller holds the mutex. */
export function unlinkAttachment(tx: Tx, cb: ControlBlock, a: number): void {
  const { layout } = cb;
  const base = slotBase(layout.attachments, a);
  unlinkFrom(tx, layout, RMAP, a);
  const notifiers = tx.get(base + AT_NOTIFIERS);
  if (notifiers > 0) {
    const segNotifiers = slotBase(layout.segments, tx.get(base + AT_SEG)) + SEG_NOTIFIERS;
    tx.set(segNotifiers, tx.get(segNotifiers) - notifiers);
    for (let n = 0; n < layout.notifiers.capacity; n++) {
      const nb = slotBase(layout.notifiers, n);
      if (tx.get(nb + NT_STATE) !== 0 && tx.get(nb + NT_ATT) === a) freeSlot(tx, cb.notifierList, n);
    }
  }
  freeSlot(tx, cb.attachmentList, a);
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
