/**
 * What domain.stats(), domain.maps() and domain.formatMaps() report: read from the control block
 * in one transaction each (a consistent snapshot), so they may sleep briefly on the domain mutex.
 */
import type { ControlBlock } from './control/control.js';
import {
  AT_GRANT,
  AT_LENGTH,
  AT_OFFSET,
  AT_SEG,
  AT_SPACE,
  AT_STATE,
  GR_MODE,
  GR_STATE,
  H_ARENA_UNITS,
  H_LIMIT_UNITS,
  SEG_BYTES,
  SEG_FLAGS,
  SEG_GEN,
  SEG_LIVE,
  SEG_OWNER,
  SEG_PROT,
  SEG_STATE,
  SEG_UNIT,
  SEGF_SWAPPED,
  SP_GEN,
  SP_STATE,
  SP_THREAD,
  SPACE_LIVE,
  UNIT,
  idOf,
  slotBase,
  type Table,
} from './layout.js';
import { PERMITS, type Permit } from './segment/segment.js';
import { unpackName } from './segment/verbs.js';
import { counter, ST_COMPACTED, ST_FAULTS, ST_INVALIDATIONS, ST_RECLAIMS, ST_SWAP_INS, ST_SWAP_OUTS, waitPercentiles } from './stats.js';
import type { Tx } from './sync/mutex.js';
import { inFlight } from './notifier/record.js';

/** One row of maps(): a segment as its owner sees it, or an attachment. */
export interface MapRow {
  /** Owning or attaching space id. */
  readonly space: number;
  /** The worker threadId of that space's thread (0 for the main thread). */
  readonly threadId: number;
  /** The segment's id. */
  readonly segId: number;
  /** The segment's make() name ('' when none). */
  readonly name: string;
  /** 'segment' rows give the arena byte offset (-1 while swapped out); 'attachment' rows the offset in the segment. */
  readonly kind: 'segment' | 'attachment';
  /** Arena byte offset (segment rows, -1 while swapped out) or offset in the segment (attachment rows). */
  readonly offset: number;
  /** Bytes: the segment's size, or the attached range's. */
  readonly length: number;
  /** Protection (segment) or granted mode (attachment). */
  readonly mode: Permit;
  /** The segment's state: resident, in its swap file, or being removed. */
  readonly state: 'live' | 'swapped' | 'removing';
}

/** Counters of domain.stats(). */
export interface DomainStats {
  /** Live spaces (joined threads not yet reaped). */
  readonly spaces: number;
  /** Segments made and not removed (resident or swapped out). */
  readonly segments: number;
  /** Permits held (get() not yet released), by every space. */
  readonly grants: number;
  /** Attachments not detached, by every space. */
  readonly attachments: number;
  /** Invalidation records in use: started, or ended with some target's end still to run. */
  readonly invalidationsInFlight: number;
  /** The arena's size now (it grows up to maxArenaBytes on demand). */
  readonly arenaBytes: number;
  /** Arena bytes no segment uses. */
  readonly freeBytes: number;
  /** Arena bytes in use by segments (what memoryLimit bounds). */
  readonly residentBytes: number;
  /** Bytes of segments swapped out, in swap files. */
  readonly swappedBytes: number;
  /** Segments swapped out now. */
  readonly swappedSegments: number;
  /** The domain's memoryLimit in bytes, 0 for none. */
  readonly memoryLimit: number;
  /** Swap-ins done by a section or map() (page faults). */
  readonly faults: number;
  /** Swap-outs since create (explicit and by the reclaim clock). */
  readonly swapOuts: number;
  /** Swap-ins since create (explicit and by faults). */
  readonly swapIns: number;
  /** Victims swapped out by the reclaim clock. */
  readonly reclaims: number;
  /** Invalidations run (applied or rolled back) since create. */
  readonly invalidations: number;
  /** Segments moved by compact(). */
  readonly compacted: number;
  /** Library waits that slept, and the p50 / p99 of how long (ms, upper bound of a power-of-two bucket). */
  readonly waits: number;
  /** Median duration of those waits (ms, upper bound of its power-of-two bucket). */
  readonly waitP50Ms: number;
  /** 99th percentile duration of those waits (ms, upper bound of its power-of-two bucket). */
  readonly waitP99Ms: number;
}

function countSlots(tx: Tx, table: Table, field: number, want?: number): number {
  let n = 0;
  for (let s = 0; s < table.capacity; s++) {
    const v = tx.get(slotBase(table, s) + field);
    if (want === undefined ? v !== 0 : v === want) n++;
  }
  return n;
}

/** domain.stats(), for space `self`. May sleep briefly on the mutex. */
export function statsOf(cb: ControlBlock, self: number): DomainStats {
  const { layout, allocator, words } = cb;
  return cb.transact(self, (tx) => {
    let swappedBytes = 0;
    let swappedSegments = 0;
    for (let s = 0; s < layout.segments.capacity; s++) {
      const base = slotBase(layout.segments, s);
      if (tx.get(base + SEG_STATE) !== SEG_LIVE || (tx.get(base + SEG_FLAGS) & SEGF_SWAPPED) === 0) continue;
      swappedBytes += tx.get(base + SEG_BYTES);
      swappedSegments++;
    }
    const arenaUnits = tx.get(H_ARENA_UNITS);
    const freeUnits = allocator.freeUnits(tx);
    const waits = waitPercentiles(words);
    return {
      spaces: countSlots(tx, layout.spaces, SP_STATE, SPACE_LIVE),
      segments: countSlots(tx, layout.segments, SEG_STATE),
      grants: countSlots(tx, layout.grants, GR_STATE),
      attachments: countSlots(tx, layout.attachments, AT_STATE),
      invalidationsInFlight: Array.from({ length: layout.invalidations.capacity }, (_, r) => inFlight(words, layout, r)).filter(Boolean).length,
      arenaBytes: arenaUnits * UNIT,
      freeBytes: freeUnits * UNIT,
      residentBytes: (arenaUnits - freeUnits) * UNIT,
      swappedBytes,
      swappedSegments,
      memoryLimit: tx.get(H_LIMIT_UNITS) * UNIT,
      faults: counter(words, ST_FAULTS),
      swapOuts: counter(words, ST_SWAP_OUTS),
      swapIns: counter(words, ST_SWAP_INS),
      reclaims: counter(words, ST_RECLAIMS),
      invalidations: counter(words, ST_INVALIDATIONS),
      compacted: counter(words, ST_COMPACTED),
      waits: waits.waits,
      waitP50Ms: waits.p50,
      waitP99Ms: waits.p99,
    };
  });
}

/** domain.maps(spaceId), for space `self`: every segment and attachment, or one space's. May sleep briefly. */
export function mapsOf(cb: ControlBlock, self: number, spaceId: number | undefined): MapRow[] {
  const { layout } = cb;
  return cb.transact(self, (tx) => {
    const rows: MapRow[] = [];
    const spaceOf = (slot: number): { space: number; threadId: number } => {
      const base = slotBase(layout.spaces, slot);
      return { space: idOf(layout.spaces, slot, tx.get(base + SP_GEN)), threadId: tx.get(base + SP_THREAD) };
    };
    const segment = (slot: number): { segId: number; name: string; state: MapRow['state'] } => {
      const base = slotBase(layout.segments, slot);
      const state = tx.get(base + SEG_STATE) !== SEG_LIVE ? 'removing' : (tx.get(base + SEG_FLAGS) & SEGF_SWAPPED) !== 0 ? 'swapped' : 'live';
      return { segId: idOf(layout.segments, slot, tx.get(base + SEG_GEN)), name: unpackName(tx.get.bind(tx), base), state };
    };
    for (let s = 0; s < layout.segments.capacity; s++) {
      const base = slotBase(layout.segments, s);
      if (tx.get(base + SEG_STATE) === 0) continue;
      const seg = segment(s);
      const offset = seg.state === 'live' ? tx.get(base + SEG_UNIT) * UNIT : -1;
      rows.push({ ...spaceOf(tx.get(base + SEG_OWNER)), ...seg, kind: 'segment', offset, length: tx.get(base + SEG_BYTES), mode: PERMITS[tx.get(base + SEG_PROT)]! });
    }
    for (let a = 0; a < layout.attachments.capacity; a++) {
      const base = slotBase(layout.attachments, a);
      if (tx.get(base + AT_STATE) === 0) continue;
      const mode = tx.get(slotBase(layout.grants, tx.get(base + AT_GRANT)) + GR_MODE);
      rows.push({
        ...spaceOf(tx.get(base + AT_SPACE)),
        ...segment(tx.get(base + AT_SEG)),
        kind: 'attachment',
        offset: tx.get(base + AT_OFFSET),
        length: tx.get(base + AT_LENGTH),
        mode: PERMITS[mode]!,
      });
    }
    return spaceId === undefined ? rows : rows.filter((r) => r.space === spaceId);
  });
}

const COLUMNS = ['space', 'threadId', 'segId', 'kind', 'offset', 'length', 'mode', 'state', 'name'] as const;
const NUMERIC: ReadonlySet<string> = new Set(['space', 'threadId', 'segId', 'offset', 'length']);

/** maps() rows as an aligned text table (numbers right-aligned), one row per line, like /proc/pid/maps. */
export function formatRows(rows: readonly MapRow[]): string {
  const cells = [COLUMNS.map(String), ...rows.map((r) => COLUMNS.map((c) => (c === 'offset' && r.offset < 0 ? '-' : String(r[c]))))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const pad = (cell: string, i: number): string => (NUMERIC.has(COLUMNS[i]!) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!));
  return cells.map((row) => row.map(pad).join('  ').trimEnd()).join('\n');
}
