/**
 * The XPMEM verbs' control-block side: make, get, attach, detach, release. Each is one
 * transaction (see sync/mutex.ts): it validates inside the transaction and throws before
 * writing anything, so a failed verb leaves the domain as it was. All may sleep briefly on
 * the domain mutex; none waits for another space.
 */
import { xpmemError } from '../errors.js';
import {
  AT_GRANT,
  AT_LENGTH,
  AT_NOTIFIERS,
  AT_OFFSET,
  AT_SEG,
  AT_SPACE,
  GR_GEN,
  GR_MODE,
  GR_SEG,
  GR_SEGGEN,
  GR_SPACE,
  GR_LIVE,
  GR_STATE,
  NAME_WORDS,
  SEG_NAME,
  SEG_REF,
  PERMIT_RW,
  SEG_BLOCK,
  SEG_BYTES,
  SEG_FLAGS,
  SEG_GEN,
  SEG_LIVE,
  SEG_OWNER,
  SEG_PERMIT,
  SEG_PROT,
  SEG_RMAP,
  SEG_STATE,
  SEG_UNIT,
  SEG_VIEWGEN,
  AT_GEN,
  AT_LIVE,
  AT_STATE,
  SEG_GRANTS,
  SEG_NOTIFIERS,
  UNIT,
  idOf,
  slotBase,
} from '../layout.js';
import { takeSlot, type ControlBlock } from '../control/control.js';
import { allocUnits, unitsFor, zeroTaken } from '../control/alloc.js';
import type { Tx } from '../sync/mutex.js';
import { GRANTS, linkFront, RMAP, unlinkAttachment, unlinkGrant } from '../control/lists.js';
import type { Mm } from '../mm.js';

/** What an Attachment knows about itself; built by attachRange. */
export interface AttachmentSlot {
  readonly slot: number;
  readonly gen: number;
  readonly seg: number;
  readonly segGen: number;
  readonly segId: number;
  readonly offset: number;
  readonly length: number;
  readonly writable: boolean;
}

/** Where a grant lives and what it allows. */
export interface GrantSlot {
  readonly slot: number;
  readonly gen: number;
  readonly seg: number;
  readonly segGen: number;
  readonly segId: number;
  readonly writable: boolean;
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
    const slot = takeSlot(tx, cb.segmentList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `segment table full (${layout.segments.capacity}); remove segments or raise capacity.segments`);
    const block = allocUnits(tx, cb, units);
    const base = slotBase(layout.segments, slot);
    const unit = cb.allocator.offset(tx, block);
    tx.set(base + SEG_OWNER, mm.slot);
    tx.set(base + SEG_BLOCK, block);
    tx.set(base + SEG_UNIT, unit);
    tx.set(base + SEG_BYTES, bytes);
    tx.set(base + SEG_PERMIT, permit);
    tx.set(base + SEG_PROT, PERMIT_RW);
    tx.set(base + SEG_FLAGS, flags);
    tx.set(base + SEG_RMAP, -1);
    tx.set(base + SEG_GRANTS, -1);
    tx.set(base + SEG_NOTIFIERS, 0);
    tx.set(base + SEG_VIEWGEN, tx.get(base + SEG_VIEWGEN) + 1);
    const packed = packName(name);
    for (let w = 0; w < NAME_WORDS; w++) tx.set(base + SEG_NAME + w, packed[w]!);
    tx.set(base + SEG_STATE, SEG_LIVE); // last: published whole (takeSlot)
    // Before the commit publishes it (reclaim and compaction scan live segments): zeroed and young.
    zeroTaken(cb, unit * UNIT, (unit + units) * UNIT, (unit + units) * UNIT);
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
    throw xpmemError('ERR_XPMEM_NO_SEGMENT', `no segment ${segId} in this domain (never made, or removed); ask its owner for a current id`, { segId: segId });
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
      throw xpmemError('ERR_XPMEM_PERMISSION', `segment ${segId} is exported with permit '${['none', 'ro', 'rw'][permit]}'; '${writable ? 'rw' : 'ro'}' access is not allowed`, { segId: segId });
    }
    const slot = takeSlot(tx, cb.grantList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `grant table full (${layout.grants.capacity}); release accesses or raise capacity.grants`);
    const base = slotBase(layout.grants, slot);
    tx.set(base + GR_SPACE, mm.slot);
    tx.set(base + GR_SEG, seg.slot);
    tx.set(base + GR_SEGGEN, seg.gen);
    tx.set(base + GR_MODE, writable ? PERMIT_RW : 1);
    linkFront(tx, layout, GRANTS, seg.slot, slot);
    tx.set(base + GR_STATE, GR_LIVE); // last: published whole (takeSlot)
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
      throw xpmemError('ERR_XPMEM_REMOVED', `segment ${g.segId} was removed by its owner; get a new permit after it is made again`, { segId: g.segId });
    }
    const bytes = tx.get(segBase + SEG_BYTES);
    const len = length ?? bytes - offset;
    if (offset > bytes || len < 1 || offset + len > bytes) {
      throw xpmemError('ERR_XPMEM_RANGE', `range [${offset}, ${offset + len}) is outside segment ${g.segId} of ${bytes} bytes`, { segId: g.segId });
    }
    const slot = takeSlot(tx, cb.attachmentList);
    if (slot < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `attachment table full (${layout.attachments.capacity}); detach or raise capacity.attachments`);
    const base = slotBase(layout.attachments, slot);
    tx.set(base + AT_SPACE, mm.slot);
    tx.set(base + AT_SEG, g.seg);
    tx.set(base + AT_GRANT, g.slot);
    tx.set(base + AT_OFFSET, offset);
    tx.set(base + AT_LENGTH, len);
    tx.set(base + AT_NOTIFIERS, 0);
    linkFront(tx, layout, RMAP, g.seg, slot);
    tx.set(base + AT_STATE, AT_LIVE); // last: published whole (takeSlot)
    return { slot, gen: tx.get(base + AT_GEN), seg: g.seg, segGen: g.segGen, segId: g.segId, offset, length: len, writable: g.writable };
  });
}

function attachmentLive(tx: Tx, cb: ControlBlock, a: AttachmentSlot): boolean {
  const base = slotBase(cb.layout.attachments, a.slot);
  return tx.get(base + AT_STATE) !== 0 && tx.get(base + AT_GEN) === a.gen;
}

/**
 * detach: drops attachment `a` (a no-op if its segment's removal already dropped it, or once
 * this membership is over: the domain's close or this space's reap drops it, and a space that
 * left a shared domain must not take the mutex as itself while another process reaps it).
 */
export function detachAttachment(mm: Mm, a: AttachmentSlot): void {
  if (mm.state() !== 'live') return;
  mm.cb.transact(mm.slot, (tx) => {
    if (attachmentLive(tx, mm.cb, a)) unlinkAttachment(tx, mm.cb, a.slot);
  });
}

/** release: drops grant `g` (its attachments must be detached first by the caller); a no-op once this membership is over, as detach. */
export function releaseGrant(mm: Mm, g: GrantSlot): void {
  if (mm.state() !== 'live') return;
  mm.cb.transact(mm.slot, (tx) => {
    if (grantLive(tx, mm.cb, g)) unlinkGrant(tx, mm.cb, g.slot);
  });
}
