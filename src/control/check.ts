/**
 * The invariant checker behind domain.check(): reads the whole control block under the domain
 * mutex and reports every inconsistency it finds, and checks each swapped-out segment's swap
 * file. May sleep briefly on the mutex.
 *
 * Table invariants hold at every instant the mutex is free. Invariants that span a space's
 * death and its reaping (what a dead space still owns or holds) hold once reaps have finished
 * (domain.settled()); the [atomic] words checked here (seqcounts, operation locks, drainers,
 * held words) are only those whose protocol keeps them consistent at every instant.
 */
import type { ControlBlock, FreeList } from './control.js';
import {
  AT_LENGTH,
  AT_NEXT,
  AT_OFFSET,
  AT_SEG,
  AT_SPACE,
  AT_STATE,
  AT_NOTIFIERS,
  GR_SEG,
  GR_SPACE,
  GR_STATE,
  H_ARENA_UNITS,
  H_LIMIT_UNITS,
  IV_END,
  SEG_FLAGS,
  SEGF_SWAPPABLE,
  SEGF_SWAPPED,
  IV_STATE,
  IV_INVALIDATOR,
  NT_ATT,
  NT_SPACE,
  NT_STATE,
  SEG_BLOCK,
  SEG_BYTES,
  SEG_LIVE,
  SEG_NOTIFIERS,
  SEG_OPLOCK,
  SEG_OWNER,
  SEG_RMAP,
  SEG_SEQ,
  SEG_STATE,
  SEG_UNIT,
  SP_HELD,
  SP_NOTIFIERS,
  SP_STATE,
  SPACE_LIVE,
  UNIT,
  slotBase,
  AT_GRANT,
  GR_SEGGEN,
  GR_SNEXT,
  SEG_GRANTS,
  HELD_GRANTED,
  HELD_SEG_MASK,
  HELD_WANT,
  IV_SEG,
  IV_START,
  ENDED,
  STARTED,
  unackedWord,
  SEG_DRAINER,
  SEG_GEN,
  idOf,
} from '../layout.js';
import type { Tx } from '../sync/mutex.js';
import { statSync } from 'node:fs';
import { swapPath } from './swapfile.js';

/** What check() found. */
export interface CheckReport {
  /** True when no invariant is broken. */
  readonly ok: boolean;
  /** One line per broken invariant. */
  readonly errors: string[];
}

/** Checks every invariant; `self` is the checking space (for the mutex). */
export function checkControlBlock(cb: ControlBlock, self: number): CheckReport {
  return cb.transact(self, (tx) => {
    const errors: string[] = [];
    for (const list of cb.lists()) checkFreeList(tx, list, errors);
    errors.push(...cb.allocator.check(tx).map((e) => `arena: ${e}`));
    checkSegments(tx, cb, errors);
    checkUsers(tx, cb, errors);
    checkLocks(tx, cb, errors);
    return { ok: errors.length === 0, errors };
  });
}

function live(tx: Tx, table: { base: number; stride: number }, slot: number, field: number): number {
  return tx.get(table.base + slot * table.stride + field);
}

function checkFreeList(tx: Tx, list: FreeList, errors: string[]): void {
  const { table } = list;
  const seen = new Set<number>();
  for (let s = tx.get(list.head); s >= 0; s = tx.get(slotBase(table, s) + list.next)) {
    if (s >= table.capacity || seen.has(s)) return void errors.push(`free list at header word ${list.head} is corrupt (slot ${s})`);
    if (tx.get(slotBase(table, s)) !== 0) errors.push(`slot ${s} is on the free list at header word ${list.head} but not free`);
    seen.add(s);
  }
  for (let s = 0; s < table.capacity; s++) {
    if (tx.get(slotBase(table, s)) === 0 && !seen.has(s)) errors.push(`free slot ${s} of the table at word ${table.base} is on no free list (leaked)`);
  }
}

function checkSegments(tx: Tx, cb: ControlBlock, errors: string[]): void {
  const { layout, allocator } = cb;
  const { segments, spaces } = layout;
  const ranges: [number, number, number][] = [];
  let used = 0;
  for (let s = 0; s < segments.capacity; s++) {
    const state = live(tx, segments, s, SEG_STATE);
    if (state === 0) continue;
    const owner = live(tx, segments, s, SEG_OWNER);
    if (live(tx, spaces, owner, SP_STATE) === 0) errors.push(`segment slot ${s} is owned by free space slot ${owner}`);
    const busy = Atomics.load(cb.words, slotBase(segments, s) + SEG_OPLOCK) !== 0;
    if (!busy && (Atomics.load(cb.words, slotBase(segments, s) + SEG_SEQ) & 1) !== 0) errors.push(`segment slot ${s} has an open window with no operation running`);
    if (state !== SEG_LIVE) continue;
    const block = live(tx, segments, s, SEG_BLOCK);
    const flags = live(tx, segments, s, SEG_FLAGS);
    if ((flags & SEGF_SWAPPED) !== 0) {
      if (block !== -1) errors.push(`segment slot ${s} is swapped out but still holds arena block ${block}`);
      if ((flags & SEGF_SWAPPABLE) === 0) errors.push(`segment slot ${s} is swapped out but was made swappable: false`);
      checkSwapFile(cb, s, live(tx, segments, s, SEG_GEN), live(tx, segments, s, SEG_BYTES), errors);
      continue;
    }
    if (block < 0) {
      errors.push(`segment slot ${s} is resident but has no arena block`);
      continue;
    }
    const unit = allocator.offset(tx, block);
    const units = allocator.length(tx, block);
    if (unit !== live(tx, segments, s, SEG_UNIT)) errors.push(`segment slot ${s}: SEG_UNIT ${live(tx, segments, s, SEG_UNIT)} != block offset ${unit}`);
    if (units * UNIT < live(tx, segments, s, SEG_BYTES)) errors.push(`segment slot ${s}: ${live(tx, segments, s, SEG_BYTES)} bytes in a block of ${units * UNIT}`);
    ranges.push([unit, units, s]);
    used += units;
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    const [pu, pl, ps] = ranges[i - 1]!;
    if (pu + pl > ranges[i]![0]) errors.push(`segments ${ps} and ${ranges[i]![2]} overlap in the arena`);
  }
  const total = tx.get(H_ARENA_UNITS);
  if (allocator.totalUnits(tx) !== total) errors.push(`arena: allocator knows ${allocator.totalUnits(tx)} units, header ${total}`);
  if (used + allocator.freeUnits(tx) !== total) errors.push(`arena: ${used} used + ${allocator.freeUnits(tx)} free != ${total} units`);
  const limit = tx.get(H_LIMIT_UNITS);
  if (limit > 0 && used > limit) errors.push(`arena: ${used} units resident, over memoryLimit (${limit} units)`);
}

/** A swapped-out segment's bytes are in its swap file, exactly. */
function checkSwapFile(cb: ControlBlock, slot: number, gen: number, bytes: number, errors: string[]): void {
  const path = swapPath(cb.swapDir, cb.id, idOf(cb.layout.segments, slot, gen));
  let size = -1;
  try {
    size = statSync(path).size;
  } catch {
    return void errors.push(`segment slot ${slot} is swapped out but its swap file ${path} is missing: its data is lost`);
  }
  if (size < bytes) errors.push(`segment slot ${slot} is swapped out with ${bytes} bytes but its swap file holds ${size}: its data is lost`);
}

function checkUsers(tx: Tx, cb: ControlBlock, errors: string[]): void {
  const { layout } = cb;
  const { segments, spaces, attachments, grants, notifiers, invalidations } = layout;
  const liveSpace = (s: number): boolean => s >= 0 && s < spaces.capacity && live(tx, spaces, s, SP_STATE) === SPACE_LIVE;
  const inRmap = new Set<number>();
  for (let s = 0; s < segments.capacity; s++) {
    if (live(tx, segments, s, SEG_STATE) === 0) continue;
    let notified = 0;
    for (let a = live(tx, segments, s, SEG_RMAP), n = 0; a >= 0; a = live(tx, attachments, a, AT_NEXT), n++) {
      if (n > attachments.capacity || inRmap.has(a)) {
        errors.push(`segment slot ${s}: reverse map is cyclic`);
        break;
      }
      inRmap.add(a);
      notified += live(tx, attachments, a, AT_NOTIFIERS);
      if (live(tx, attachments, a, AT_SEG) !== s) errors.push(`attachment ${a} is in the reverse map of segment slot ${s} but names ${live(tx, attachments, a, AT_SEG)}`);
    }
    if (notified !== live(tx, segments, s, SEG_NOTIFIERS)) errors.push(`segment slot ${s}: notifier count ${live(tx, segments, s, SEG_NOTIFIERS)} but its attachments have ${notified}`);
  }
  const inGrantList = new Set<number>();
  for (let s = 0; s < segments.capacity; s++) {
    if (live(tx, segments, s, SEG_STATE) === 0) continue;
    for (let g = live(tx, segments, s, SEG_GRANTS), n = 0; g >= 0; g = live(tx, grants, g, GR_SNEXT), n++) {
      if (n > grants.capacity || inGrantList.has(g)) {
        errors.push(`segment slot ${s}: grant list is cyclic`);
        break;
      }
      inGrantList.add(g);
      if (live(tx, grants, g, GR_SEG) !== s || live(tx, grants, g, GR_STATE) === 0) errors.push(`grant ${g} is in the grant list of segment slot ${s} but is not a live grant on it`);
    }
  }
  for (let g = 0; g < grants.capacity; g++) {
    if (live(tx, grants, g, GR_STATE) !== 0 && !inGrantList.has(g)) errors.push(`grant ${g} is live but in no segment's grant list`);
  }
  const attNotifiers = new Map<number, number>();
  const spaceNotifiers = new Map<number, number>();
  for (let n = 0; n < notifiers.capacity; n++) {
    if (live(tx, notifiers, n, NT_STATE) === 0) continue;
    const att = live(tx, notifiers, n, NT_ATT);
    const sp = live(tx, notifiers, n, NT_SPACE);
    if (!liveSpace(sp)) errors.push(`notifier ${n} belongs to space slot ${sp}, which is not live`);
    if (att >= 0) attNotifiers.set(att, (attNotifiers.get(att) ?? 0) + 1);
    else spaceNotifiers.set(sp, (spaceNotifiers.get(sp) ?? 0) + 1);
  }
  for (let a = 0; a < attachments.capacity; a++) {
    if (live(tx, attachments, a, AT_STATE) === 0) continue;
    if (!inRmap.has(a)) errors.push(`attachment ${a} is live but in no reverse map`);
    if (!liveSpace(live(tx, attachments, a, AT_SPACE))) errors.push(`attachment ${a} belongs to a space that is not live`);
    const seg = live(tx, attachments, a, AT_SEG);
    if (live(tx, attachments, a, AT_OFFSET) < 0 || live(tx, attachments, a, AT_LENGTH) < 1) errors.push(`attachment ${a} has an empty or negative range`);
    if (live(tx, segments, seg, SEG_STATE) !== SEG_LIVE) errors.push(`attachment ${a} points at segment slot ${seg}, which is not live`);
    if ((attNotifiers.get(a) ?? 0) !== live(tx, attachments, a, AT_NOTIFIERS))
      errors.push(`attachment ${a}: notifier count ${live(tx, attachments, a, AT_NOTIFIERS)} but ${attNotifiers.get(a) ?? 0} registered`);
  }
  for (let s = 0; s < spaces.capacity; s++) {
    const state = live(tx, spaces, s, SP_STATE);
    if (state === 0) continue;
    if (state === SPACE_LIVE && (spaceNotifiers.get(s) ?? 0) !== live(tx, spaces, s, SP_NOTIFIERS)) errors.push(`space slot ${s}: notifier count mismatch`);
    if (state !== SPACE_LIVE) {
      for (let d = 0; d < layout.caps.depth; d++) if (Atomics.load(cb.words, slotBase(spaces, s) + SP_HELD + d) !== 0) errors.push(`dead space slot ${s} still holds a section`);
    }
  }
  for (let g = 0; g < grants.capacity; g++) {
    if (live(tx, grants, g, GR_STATE) === 0) continue;
    if (!liveSpace(live(tx, grants, g, GR_SPACE))) errors.push(`grant ${g} belongs to a space that is not live`);
    const seg = live(tx, grants, g, GR_SEG);
    if (live(tx, segments, seg, SEG_STATE) !== SEG_LIVE || live(tx, segments, seg, SEG_GEN) !== live(tx, grants, g, GR_SEGGEN)) errors.push(`grant ${g} points at a segment that is not live`);
  }
  for (let a = 0; a < attachments.capacity; a++) {
    if (live(tx, attachments, a, AT_STATE) === 0) continue;
    const g = live(tx, attachments, a, AT_GRANT);
    if (live(tx, grants, g, GR_STATE) === 0 || live(tx, grants, g, GR_SPACE) !== live(tx, attachments, a, AT_SPACE) || live(tx, grants, g, GR_SEG) !== live(tx, attachments, a, AT_SEG)) {
      errors.push(`attachment ${a} was made through grant ${g}, which is gone or is another space's or segment's`);
    }
  }
  for (let n = 0; n < notifiers.capacity; n++) {
    const att = live(tx, notifiers, n, NT_ATT);
    if (live(tx, notifiers, n, NT_STATE) === 0 || att < 0) continue;
    if (live(tx, attachments, att, AT_STATE) === 0 || live(tx, attachments, att, AT_SPACE) !== live(tx, notifiers, n, NT_SPACE))
      errors.push(`notifier ${n} is registered on attachment ${att}, which is gone or another space's`);
  }
  for (let r = 0; r < invalidations.capacity; r++) {
    const state = live(tx, invalidations, r, IV_STATE);
    if (state === 0) continue;
    const inv = live(tx, invalidations, r, IV_INVALIDATOR);
    if (!liveSpace(inv) && state !== IV_END) errors.push(`invalidation record ${r} is starting for space slot ${inv}, which is not live`);
    for (const [which, phase] of state === IV_START ? ACKS : ACKS.slice(1)) {
      for (const t of unacked(cb, r, which)) if (!liveSpace(t)) errors.push(`invalidation record ${r} waits for the ${phase} ack of space slot ${t}, which is not live`);
    }
  }
}

/** The ack masks of a record and the phase each acks. */
const ACKS: readonly (readonly [number, string])[] = [
  [STARTED, 'start'],
  [ENDED, 'end'],
];

/** The targets of record `r` (its TARGETS mask) not in ack mask `which`. */
function unacked(cb: ControlBlock, r: number, which: number): number[] {
  const { words, layout } = cb;
  const missing: number[] = [];
  for (let w = 0; w < layout.maskWords; w++) {
    const bits = unackedWord(words, layout, r, which, w);
    for (let b = 0; b < 32; b++) if ((bits & (1 << b)) !== 0) missing.push(w * 32 + b);
  }
  return missing;
}

/**
 * The protocol words: an open window or a drainer only under a held operation lock, a lock held
 * by a space that still has its slot, held words that name a segment with known flags, and a
 * started invalidation whose live invalidator holds the segment's lock.
 */
function checkLocks(tx: Tx, cb: ControlBlock, errors: string[]): void {
  const { words, layout } = cb;
  const { segments, spaces, invalidations } = layout;
  for (let s = 0; s < segments.capacity; s++) {
    const base = slotBase(segments, s);
    const oplock = Atomics.load(words, base + SEG_OPLOCK);
    if (oplock === 0 && Atomics.load(words, base + SEG_DRAINER) !== 0) errors.push(`segment slot ${s} has a drainer but no operation running`);
    if (oplock !== 0 && (oplock > spaces.capacity || live(tx, spaces, oplock - 1, SP_STATE) === 0)) errors.push(`segment slot ${s} is locked by space slot ${oplock - 1}, which is free`);
  }
  for (let sp = 0; sp < spaces.capacity; sp++) {
    if (live(tx, spaces, sp, SP_STATE) !== SPACE_LIVE) continue;
    for (let d = 0; d < layout.caps.depth; d++) {
      const v = Atomics.load(words, slotBase(spaces, sp) + SP_HELD + d);
      if (v === 0) continue;
      const seg = (v & HELD_SEG_MASK) - 1;
      if ((v & ~(HELD_SEG_MASK | HELD_WANT | HELD_GRANTED)) !== 0 || seg < 0 || seg >= segments.capacity || ((v & HELD_GRANTED) !== 0 && (v & HELD_WANT) === 0)) {
        errors.push(`space slot ${sp} held word ${d} holds ${v}, which names no segment`);
      }
    }
  }
  for (let r = 0; r < invalidations.capacity; r++) {
    if (live(tx, invalidations, r, IV_STATE) !== IV_START) continue;
    const inv = live(tx, invalidations, r, IV_INVALIDATOR);
    const seg = live(tx, invalidations, r, IV_SEG);
    if (live(tx, spaces, inv, SP_STATE) === SPACE_LIVE && Atomics.load(words, slotBase(segments, seg) + SEG_OPLOCK) !== inv + 1) {
      errors.push(`invalidation record ${r} is starting on segment slot ${seg} without its invalidator holding the segment's operation lock`);
    }
  }
}
