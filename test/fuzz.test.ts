/**
 * Model-based fuzzing: fast-check generates sequences of every public call (make, get, attach,
 * detach, release, sections of every kind, map/retry/refresh, touch, the owner's VM operations
 * sync and async, compact, space and attachment notifiers, getters, sections nested in sections,
 * interleaved async sections), with bad arguments among them, issued by the main thread and by
 * agents. A reference model says what should exist (segments with size, permit, protection and
 * swap state, grants, attachments, notifiers, mappings and the bytes every segment holds) and
 * predicts each call's value or typed error code; after every command the notifier callbacks
 * counted (start, end, event and range), domain.check(), maps(), stats() and the bytes of every
 * live segment (read from the arena, or from its swap file) must agree with it.
 *
 * Each run gets a fresh domain that the long-lived agents join (so ids replay the same when a
 * failure shrinks); the run ends by releasing and removing everything, which must leave the
 * domain empty. A second property runs under a memoryLimit, where allocations reclaim: the
 * model predicts each allocation's outcome exactly and learns the victims from maps().
 *
 * A failure shrinks to a minimal sequence; its error lists the calls as they ran (keys, ids,
 * outcomes). STRESS=long runs many more and longer sequences. FUZZ_RUNS=n sets the runs of
 * each property, FUZZ_SEED=s (and FUZZ_PATH=p) replays a reported failure, FUZZ_STATS=1 prints
 * the outcomes seen per call, FUZZ_TRACE=1 every run's calls.
 *
 * Process mode: the same properties with each agent in a host process of its own (helpers.ts
 * hosts()), every run's domain a shared one the hosts open, the tally a /dev/shm file they map.
 * A smoke of a few runs in CI; STRESS=long (or FUZZ_PROCESSES=1, which runs process mode alone)
 * runs thousands. FUZZ_HOST_JOINS=1 has each host process join every run's domain itself
 * (Domain.open) besides its agent (see fixtures/agent-host.ts).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { closeSync, openSync, readdirSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Domain, type MapRow } from '../src/index.js';
import { H_ID } from '../src/layout.js';
import { agents, cleanUpProcesses, Gates, hosts, sharedName, teardown, type Agent } from './helpers.js';
import { freshShmPath, mapShm } from './fixtures/shm-gates.js';
import {
  EVENT_CODES,
  FuzzSpace,
  TYPED_ARRAYS,
  TALLY_WORDS,
  T_BAD,
  T_ENDS,
  T_EVENT,
  T_LENGTH,
  T_OFFSET,
  T_OPEN,
  T_SEG,
  T_STARTS,
  writePattern,
  type FuzzCmd,
  type Outcome,
} from './fixtures/fuzz-exec.js';

const LONG = process.env.STRESS === 'long';
const RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 20_000 : 500));
/** Runs under memoryLimit (reclaim on every allocation that passes it). */
const LIMITED_RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 10_000 : 250));
const MAX_COMMANDS = LONG ? 80 : 40;
const LIMIT = 32 << 10;
const TIME_LIMIT_MS = LONG ? 3_600_000 : 120_000;
/** FUZZ_PROCESSES=1: only process mode, as many runs as STRESS=long. */
const PROCESSES_ONLY = process.env.FUZZ_PROCESSES !== undefined;
const PROCESS_RUNS = Number(process.env.FUZZ_RUNS ?? (LONG || PROCESSES_ONLY ? 2_000 : 60));
const PROCESS_LIMITED_RUNS = Number(process.env.FUZZ_RUNS ?? (LONG || PROCESSES_ONLY ? 1_000 : 20));
const AGENTS = 3;
const SPACE_NAMES = ['main', 'A1', 'A2', 'A3'];
const CAPS = { spaces: 8, segments: 10, grants: 6, attachments: 6, notifiers: 5, invalidations: 16, depth: 4 };
const MAX_ARENA = 4 << 20;
const UNIT = 64;
const MAX_UNITS = MAX_ARENA / UNIT;
/** The largest size make() and resize() accept. */
const MAX_BYTES = 2 ** 31 - 1;
/** Model bytes kept per segment: nothing past the arena's size can ever be written. */
const DATA_CAP = MAX_ARENA;
const NAME_BYTES = 24;
/** Every wait in a run: nothing in a sequential run should wait long, so a hang fails fast. */
const DEADLINE_MS = 2_000;
const MAX_NOTES = 1024;
const TYPES: Record<string, number> = {
  Int8Array: 1,
  Uint8Array: 1,
  Uint8ClampedArray: 1,
  Int16Array: 2,
  Uint16Array: 2,
  Int32Array: 4,
  Uint32Array: 4,
  Float32Array: 4,
  Float64Array: 8,
  BigInt64Array: 8,
  BigUint64Array: 8,
};
const TYPED_CODES = new Set([
  'ERR_XPMEM_PERMISSION',
  'ERR_XPMEM_NO_SEGMENT',
  'ERR_XPMEM_REMOVED',
  'ERR_XPMEM_DETACHED',
  'ERR_XPMEM_RANGE',
  'ERR_XPMEM_NO_MEMORY',
  'ERR_XPMEM_TIMEOUT',
  'ERR_XPMEM_WOULD_DEADLOCK',
  'ERR_XPMEM_SPACE_DEAD',
  'ERR_XPMEM_BUSY',
  'ERR_XPMEM_SWAP_IO',
  'ERR_XPMEM_CLOSED',
  'ERR_XPMEM_ABORTED',
  'ERR_INVALID_ARG_TYPE',
  'ERR_OUT_OF_RANGE',
  'ERR_INVALID_ARG_VALUE',
]);

type Permit = 'none' | 'ro' | 'rw';
const RANK: Record<Permit, number> = { none: 0, ro: 1, rw: 2 };

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

interface MSeg {
  key: number;
  id: number;
  owner: number;
  bytes: number;
  before: number;
  permit: Permit;
  prot: Permit;
  swappable: boolean;
  swapped: boolean;
  removed: boolean;
  name: string;
  stored: string;
  data: Uint8Array;
}
interface MAccess {
  key: number;
  space: number;
  seg: MSeg;
  mode: 'ro' | 'rw';
  released: boolean;
}
interface MAtt {
  key: number;
  space: number;
  access: MAccess;
  seg: MSeg;
  offset: number;
  length: number;
  detached: boolean;
}
interface MNote {
  key: number;
  space: number;
  att: MAtt | undefined;
  how: 'plain' | 'async';
  live: boolean;
  /** Start/end pairs it must have had, and how many more it may have had (windows that ended early). */
  pairs: number;
  maybe: number;
  /** The last window's [event, segId, offset, length], when it is certain. */
  last: number[] | undefined;
}
interface MMap {
  key: number;
  space: number;
  att: MAtt;
  fresh: boolean;
}

class Model {
  segs: MSeg[] = [];
  accesses: MAccess[] = [];
  atts: MAtt[] = [];
  notes: MNote[] = [];
  maps: MMap[] = [];
  /** Ids of removed segments: never valid again. */
  stale: number[] = [];
  spaceIds: number[] = [];
  trace: string[] = [];
  /** memoryLimit in units (0: none). */
  limit = 0;
  #key = 1;
  #noteKey = 0;

  key(): number {
    return this.#key++;
  }

  noteKey(): number {
    return this.#noteKey++;
  }

  liveSegs(): MSeg[] {
    return this.segs.filter((s) => !s.removed);
  }

  grants(): number {
    return this.accesses.filter((a) => !a.released && !a.seg.removed).length;
  }

  attached(): MAtt[] {
    return this.atts.filter((a) => !a.detached && !a.seg.removed);
  }

  notifiers(): number {
    return this.notes.filter((n) => n.live).length;
  }

  of<T extends { space: number }>(list: T[], space: number): T[] {
    return list.filter((x) => x.space === space);
  }

  /**
   * Notifiers an invalidation of `range` of `seg` reaches: the owner's space-wide ones, and
   * range ones overlapping it (a removal: every range one on the segment).
   */
  targeted(seg: MSeg, range: Range, event = ''): MNote[] {
    return this.notes.filter((n) => n.live && (n.att === undefined ? n.space === seg.owner : n.att.seg === seg && (event === 'remove' || overlaps(n.att, range))));
  }

  /**
   * An invalidation window opened on `seg`: notifiers get start and end, mappings go stale.
   * `failedFastIn`: the invalidating space, when it gave up at once on its own async callback
   * (WOULD_DEADLOCK): its window then closes before other spaces may have seen its start, and
   * a space that had not gets neither start nor end.
   */
  invalidate(seg: MSeg, range: Range, event: string, failedFastIn?: number): void {
    for (const n of this.targeted(seg, range, event)) {
      if (failedFastIn !== undefined && n.space !== failedFastIn) {
        n.maybe++;
        n.last = undefined;
        continue;
      }
      n.pairs++;
      n.last = [EVENT_CODES.indexOf(event as 'swap'), seg.id, range.offset, range.length];
    }
    for (const m of this.maps) if (m.att.seg === seg) m.fresh = false;
  }

  /** A synchronous wait of `space` on its own async callback: the operation fails fast. */
  ownAsync(space: number, seg: MSeg, range: Range, event = ''): boolean {
    return this.targeted(seg, range, event).some((n) => n.space === space && n.how === 'async');
  }

  /**
   * Resident units reclaim cannot free for an allocation for `own` by a thread holding sections
   * on `held`: segments made swappable: false, `own` itself, and the held ones.
   */
  pinned(own: MSeg | undefined, held: MSeg[]): number {
    return this.liveSegs()
      .filter((s) => !s.swapped && (!s.swappable || s === own || held.includes(s)))
      .reduce((n, s) => n + unitsFor(s.bytes), 0);
  }

  /** Whether allocating `need` more units under memoryLimit makes reclaim swap something out. */
  reclaims(need: number): boolean {
    const resident = this.liveSegs()
      .filter((s) => !s.swapped)
      .reduce((n, s) => n + unitsFor(s.bytes), 0);
    return this.limit > 0 && resident + need > this.limit;
  }

  /** Whether `need` more units fit under memoryLimit once reclaim swapped out all it can. */
  fits(need: number, own: MSeg | undefined, held: MSeg[]): boolean {
    return this.limit === 0 || this.pinned(own, held) + need <= this.limit;
  }

  remove(seg: MSeg): void {
    seg.removed = true;
    this.stale.push(seg.id);
    for (const n of this.notes) if (n.att?.seg === seg) n.live = false;
  }

  resize(seg: MSeg, bytes: number): void {
    seg.before = seg.bytes;
    const data = new Uint8Array(Math.min(bytes, DATA_CAP));
    data.set(seg.data.subarray(0, Math.min(data.length, seg.bytes)));
    seg.data = data;
    seg.bytes = bytes;
  }
}

interface Range {
  offset: number;
  length: number;
}

function overlaps(a: Range, b: Range): boolean {
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}

function unitsFor(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / UNIT));
}

function whole(seg: MSeg): Range {
  return { offset: 0, length: seg.bytes };
}

/** The code checkIndex gives `value` for [min, max], or undefined when valid. */
function indexCode(value: unknown, min: number, max: number): string | undefined {
  if (typeof value !== 'number') return 'ERR_INVALID_ARG_TYPE';
  if (!Number.isSafeInteger(value) || value < min || value > max) return 'ERR_OUT_OF_RANGE';
  return undefined;
}

function oneOfCode(value: unknown, allowed: readonly string[]): string | undefined {
  if (typeof value !== 'string') return 'ERR_INVALID_ARG_TYPE';
  return allowed.includes(value) ? undefined : 'ERR_INVALID_ARG_VALUE';
}

function optionsCode(value: unknown): string | undefined {
  return value !== undefined && (value === null || typeof value !== 'object') ? 'ERR_INVALID_ARG_TYPE' : undefined;
}

/** The code of encoded wait options (see fuzz-exec waitOpts), or undefined when valid. */
function waitCode(opts: unknown): string | undefined {
  const bad = optionsCode(opts);
  if (bad !== undefined || opts === undefined) return bad;
  const o = opts as { deadlineMs?: unknown; signal?: unknown };
  if (o.deadlineMs !== undefined) {
    const c = indexCode(o.deadlineMs, 0, 2 ** 31 - 1);
    if (c !== undefined) return c;
  }
  if (o.signal === 'bogus') return 'ERR_INVALID_ARG_TYPE';
  if (o.signal === 'aborted') return 'ERR_XPMEM_ABORTED';
  return undefined;
}

/** make()'s name as maps() shows it: cut to 24 bytes of UTF-8 at a character boundary, up to a NUL. */
function storedName(name: string): string {
  const bytes = new Uint8Array(NAME_BYTES);
  new TextEncoder().encodeInto(name, bytes);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/** What a call may do: fail with one of `codes`, or succeed when `success` (its value checked by `value`). */
interface Expect {
  codes: string[];
  success: boolean;
  /** Checks a success value; answers a mismatch or undefined. */
  value?: ((v: unknown) => string | undefined) | undefined;
}

const ok = (value?: (v: unknown) => string | undefined): Expect => ({ codes: [], success: true, value });
const fail = (...codes: string[]): Expect => ({ codes, success: false });

function sameBytes(want: Uint8Array, got: unknown): string | undefined {
  if (!(got instanceof Uint8Array)) return `expected bytes, got ${describeValue(got)}`;
  if (got.length !== want.length) return `expected ${want.length} bytes, got ${got.length}`;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `byte ${i} is ${got[i]}, the model says ${want[i]}`;
  return undefined;
}

function describeValue(v: unknown): string {
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  try {
    return JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? `Uint8Array(${x.length})` : typeof x === 'bigint' ? String(x) : x));
  } catch {
    return String(v);
  }
}

function describeOutcome(o: Outcome): string {
  return o.ok ? `ok ${describeValue(o.value)}` : `${o.code ?? `untyped ${o.name}`}: ${o.message}`;
}

/** Compares an outcome to what the model expects; throws with the failing run's trace. */
function verify(m: Model, what: string, got: Outcome, want: Expect): void {
  const problem = mismatch(got, want);
  if (problem !== undefined) failRun(m, `${what}: ${problem}`);
}

function mismatch(got: Outcome, want: Expect): string | undefined {
  if (!got.ok && (got.code === undefined || !TYPED_CODES.has(got.code))) return `untyped error ${got.name}: ${got.message}`;
  const expected = [...(want.success ? ['success'] : []), ...want.codes].join(' or ');
  if (got.ok) return want.success ? want.value?.(got.value) : `expected ${expected}, got ${describeOutcome(got)}`;
  return want.codes.includes(got.code!) ? undefined : `expected ${expected}, got ${describeOutcome(got)}`;
}

function failRun(m: Model, message: string): never {
  throw new Error(`${message}\n  run so far:\n    ${m.trace.join('\n    ')}`);
}

// ---------------------------------------------------------------------------------------------
// The system under test
// ---------------------------------------------------------------------------------------------

interface Real {
  d: Domain;
  main: FuzzSpace;
  agents: Agent[];
  tally: Int32Array;
  /** The tally's /dev/shm file (process mode). */
  tallyPath: string | undefined;
}

async function exec(r: Real, space: number, cmd: FuzzCmd): Promise<Outcome> {
  if (space === 0) return r.main.run(cmd);
  return r.agents[space - 1]!.call<Outcome>('fuzz', { cmd });
}

/**
 * Under memoryLimit: segments the call's reclaim swapped out (resident in the model, swapped in
 * maps()) each had one 'swap' window. Victims go before the call's own window, so a notifier's
 * last event is a victim's only when the call's own windows did not reach it, and uncertain
 * when several victims did (the clock's order).
 */
function reclaimed(m: Model, r: Real, pairsBefore: Map<MNote, number>): void {
  const swapped = new Set(
    r.d
      .maps()
      .filter((row) => row.kind === 'segment' && row.state === 'swapped')
      .map((row) => row.segId),
  );
  const victims = m.liveSegs().filter((s) => !s.swapped && s.swappable && swapped.has(s.id));
  if (victims.length === 0) return;
  m.trace[m.trace.length - 1] += ` [reclaimed ${victims.map((v) => v.id).join(', ')}]`;
  const own = new Map(m.notes.map((n) => [n, n.pairs !== (pairsBefore.get(n) ?? 0)]));
  const hits = new Map<MNote, number>();
  for (const v of victims) {
    for (const n of m.targeted(v, whole(v))) hits.set(n, (hits.get(n) ?? 0) + 1);
    const lasts = new Map(m.notes.map((n) => [n, n.last]));
    m.invalidate(v, whole(v), 'swap');
    for (const [n, last] of lasts) if (own.get(n)) n.last = last;
    v.swapped = true;
  }
  for (const [n, count] of hits) if (count > 1 && !own.get(n)) n.last = undefined;
}

/** After every command: callbacks balanced and as predicted, check() ok, maps() and stats() as the model. */
async function verifyState(m: Model, r: Real): Promise<void> {
  // Callbacks of a window that failed fast may still be settling: wait while anything moves.
  let diffs = tallyDiffs(m, r);
  let seen = r.tally.join();
  const open = (): boolean => m.notes.some((n) => Atomics.load(r.tally, n.key * TALLY_WORDS + T_OPEN) !== 0);
  for (let quiet = 0, until = Date.now() + DEADLINE_MS; diffs.length > 0 && (quiet < 20 || open()) && Date.now() < until; quiet++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    diffs = tallyDiffs(m, r);
    const now = r.tally.join();
    if (now !== seen) quiet = 0;
    seen = now;
  }
  if (diffs.length > 0) failRun(m, `notifier callbacks differ from the model:\n  ${diffs.join('\n  ')}`);
  const report = r.d.check();
  if (!report.ok) failRun(m, `domain.check() failed:\n  ${report.errors.join('\n  ')}`);
  const maps = r.d.maps();
  const want = expectedRows(m);
  const got = maps.map(rowKey).sort();
  if (JSON.stringify(got) !== JSON.stringify(want)) failRun(m, `maps() differs from the model:\n  got  ${got.join('\n       ')}\n  want ${want.join('\n       ')}`);
  verifyBytes(m, r, maps);
  const stats = r.d.stats();
  const live = m.liveSegs();
  const resident = live.filter((s) => !s.swapped);
  const swapped = live.filter((s) => s.swapped);
  const expected = {
    segments: live.length,
    attachments: m.attached().length,
    residentBytes: resident.reduce((n, s) => n + unitsFor(s.bytes) * UNIT, 0),
    swappedBytes: swapped.reduce((n, s) => n + s.bytes, 0),
    swappedSegments: swapped.length,
  };
  const actual = { segments: stats.segments, attachments: stats.attachments, residentBytes: stats.residentBytes, swappedBytes: stats.swappedBytes, swappedSegments: stats.swappedSegments };
  if (JSON.stringify(actual) !== JSON.stringify(expected)) failRun(m, `stats() ${JSON.stringify(actual)}, the model says ${JSON.stringify(expected)}`);
}

/**
 * Every live segment's bytes, read where they are (the arena at its maps() offset, or its swap
 * file, the first MiB of a huge one), against the model: a call that loses or exposes bytes
 * fails at once, whether or not a later section reads them.
 */
function verifyBytes(m: Model, r: Real, maps: MapRow[]): void {
  const { arena, control, swapDir } = r.d.handle();
  const bytes = new Uint8Array(arena);
  for (const s of m.liveSegs()) {
    let got: Uint8Array;
    const n = s.swapped ? Math.min(s.bytes, 1 << 20) : s.bytes;
    if (!s.swapped) {
      const offset = maps.find((row) => row.kind === 'segment' && row.segId === s.id)!.offset;
      got = bytes.subarray(offset, offset + n);
    } else {
      got = new Uint8Array(n);
      const fd = openSync(join(swapDir, `xpmem-${new Int32Array(control)[H_ID]}-${s.id}.swap`), 'r');
      try {
        readSync(fd, got, 0, n, 0);
      } finally {
        closeSync(fd);
      }
    }
    const problem = sameBytes(s.data.subarray(0, n), got);
    if (problem !== undefined) failRun(m, `segment ${s.id} (${s.swapped ? 'in its swap file' : 'resident'}) differs from the model: ${problem}`);
  }
}

function tallyDiffs(m: Model, r: Real): string[] {
  const diffs: string[] = [];
  for (const n of m.notes) {
    const at = n.key * TALLY_WORDS;
    const t = (i: number): number => Atomics.load(r.tally, at + i);
    const got = [t(T_STARTS), t(T_ENDS), t(T_OPEN), t(T_BAD)];
    // A window that may or may not have reached it counts as it did when it did.
    const starts = got[0]! >= n.pairs && got[0]! <= n.pairs + n.maybe ? got[0]! : n.pairs;
    const want = [starts, starts, 0, 0];
    if (n.last !== undefined) {
      got.push(t(T_EVENT), t(T_SEG), t(T_OFFSET), t(T_LENGTH));
      want.push(...n.last);
    }
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      diffs.push(
        `notifier n${n.key} of ${SPACE_NAMES[n.space]} [starts, ends, open, breaches, last event, segId, offset, length]: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}${n.maybe > 0 ? ` (+${n.maybe} maybe)` : ''}`,
      );
    }
  }
  return diffs;
}

function rowKey(r: MapRow): string {
  return r.kind === 'segment'
    ? `seg ${r.segId} space=${r.space} name=${JSON.stringify(r.name)} bytes=${r.length} prot=${r.mode} ${r.state} ${r.offset >= 0 ? 'resident' : 'nowhere'}`
    : `att ${r.segId} space=${r.space} [${r.offset}+${r.length}] ${r.mode} ${r.state}`;
}

function expectedRows(m: Model): string[] {
  const rows: string[] = [];
  for (const s of m.liveSegs()) {
    rows.push(`seg ${s.id} space=${m.spaceIds[s.owner]} name=${JSON.stringify(s.stored)} bytes=${s.bytes} prot=${s.prot} ${s.swapped ? 'swapped nowhere' : 'live resident'}`);
  }
  for (const a of m.attached()) rows.push(`att ${a.seg.id} space=${m.spaceIds[a.space]} [${a.offset}+${a.length}] ${a.access.mode} ${a.seg.swapped ? 'swapped' : 'live'}`);
  return rows.sort();
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/** Picks entry `p` (mod length) of `list`. */
function pick<T>(list: T[], p: number): T | undefined {
  return list.length === 0 ? undefined : list[p % list.length];
}

/** Like pick, but three picks in four go to entries still `usable` when there are some. */
function pickMostlyLive<T>(list: T[], p: number, usable: (x: T) => boolean): T | undefined {
  const live = list.filter(usable);
  return p % 4 !== 0 && live.length > 0 ? live[(p >> 2) % live.length] : pick(list, p);
}

const liveAtt = (a: MAtt): boolean => !a.detached && !a.seg.removed;
const liveAccess = (a: MAccess): boolean => !a.released && !a.seg.removed;

/** A fraction in thousandths of `n`. */
function frac(f: number, n: number): number {
  return Math.floor((f * n) / 1000);
}

type Gen = Record<string, unknown> & { space: number };

/** One generated step: `kind` and its generated data; run() resolves picks against the model. */
class Step implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly kind: string,
    readonly g: Gen,
  ) {}

  check(): boolean {
    return true;
  }

  /** The space to issue from: the generated one, or the next that has something to act on. */
  #resolve(m: Model): number | undefined {
    if (this.kind === 'compact') return 0;
    for (let i = 0; i <= AGENTS; i++) {
      const s = (this.g.space + i) % (AGENTS + 1);
      if (canIssue(m, this.kind, s)) return s;
    }
    return undefined;
  }

  /** Runs the step, or (when no space has what it acts on) the step that builds it. */
  async run(m: Model, r: Real): Promise<void> {
    const space = this.#resolve(m);
    const before = new Map(m.notes.map((n) => [n, n.pairs]));
    if (space !== undefined) await RUNNERS[this.kind]!(m, r, { ...this.g, space });
    else await bootstrap(m, r, this.kind, this.g);
    if (m.limit > 0) reclaimed(m, r, before);
    await verifyState(m, r);
  }

  toString(): string {
    const { space, ...rest } = this.g;
    return `${SPACE_NAMES[space]}.${this.kind}(${describeValue(rest)})`;
  }
}

/** Whether space `s` has what a step of `kind` acts on. */
function canIssue(m: Model, kind: string, s: number): boolean {
  switch (kind) {
    case 'get':
    case 'make':
    case 'notifierSpace':
    case 'compact':
      return true;
    case 'attach':
    case 'release':
      return m.of(m.accesses, s).length > 0;
    case 'vm':
    case 'inspectSeg':
      return m.segs.some((x) => x.owner === s);
    case 'unregister':
      return m.of(m.notes, s).length > 0;
    case 'mapCheck':
      return m.of(m.maps, s).length > 0;
    default:
      return m.of(m.atts, s).length > 0;
  }
}

/**
 * What a step does when no space can issue it: the missing link of make -> get -> attach (or a
 * notifier, or a mapping), from the generated space, sized by its first pick.
 */
async function bootstrap(m: Model, r: Real, kind: string, g: Gen): Promise<void> {
  const space = g.space;
  const seed = (g.pick as number | undefined) ?? 0;
  const make = (): Promise<void> => RUNNERS.make!(m, r, { space, bytes: 1 + ((seed * 37) % 4096), opts: 'none' });
  if (kind === 'vm' || kind === 'inspectSeg') return make();
  if (kind === 'unregister') return RUNNERS.notifierSpace!(m, r, { space, how: 'plain' });
  const gettable = m.liveSegs().filter((x) => x.owner === space || x.permit !== 'none');
  const accesses = m.of(m.accesses, space).filter((a) => !a.released && !a.seg.removed);
  if (accesses.length === 0) {
    if (gettable.length === 0) return make();
    const seg = pick(gettable, seed)!;
    return RUNNERS.get!(m, r, { space, which: 'raw', raw: seg.id, mode: seg.owner === space || seg.permit === 'rw' ? 'rw' : 'ro' });
  }
  if (kind === 'attach' || kind === 'release') throw new Error(`${kind} had accesses to act on`);
  if (kind === 'mapCheck' && m.of(m.atts, space).length > 0) return RUNNERS.map!(m, r, { space, pick: seed });
  // A pick that pickMostlyLive resolves to live access number `seed`.
  return RUNNERS.attach!(m, r, { space, pick: ((seed % accesses.length) << 2) | 1, shape: 'whole' });
}

/** Records a resolved command in the trace, runs it, compares, and returns the outcome. */
async function call(m: Model, r: Real, space: number, cmd: FuzzCmd, want: Expect): Promise<Outcome> {
  const line = `${SPACE_NAMES[space]} ${describeValue(cmd)}`;
  m.trace.push(line);
  const got = await exec(r, space, cmd);
  m.trace[m.trace.length - 1] = `${line} -> ${describeOutcome(got)}`;
  tally(cmd, got);
  verify(m, line, got, want);
  return got;
}

/** Outcomes seen per call kind (printed at the end): what the runs covered. */
const coverage = new Map<string, number>();

function tally(cmd: FuzzCmd, got: Outcome): void {
  const what = cmd.op === 'vm' ? `vm.${String(cmd.what)}${cmd.sync ? 'Sync' : ''}` : cmd.op === 'section' ? `section.${String(cmd.how)}.${cmd.write ? 'w' : 'r'}` : cmd.op;
  const key = `${what} ${got.ok ? 'ok' : (got.code ?? 'untyped')}`;
  coverage.set(key, (coverage.get(key) ?? 0) + 1);
}

// --- per-call predictions (the contract, as the model reads it) ---

/** A section's outcome, and its effects on the model. */
interface SectionPlan {
  want: Expect;
  /** The entry finds the segment swapped out and faults it in first. */
  fault: boolean;
  /** The fault's own failure (then the section fails with it), or undefined. */
  faultCode: string | undefined;
  /** The fault's effect: one 'swap' invalidation, and the segment resident unless it failed. */
  faultIn: () => void;
  /** The section's own effect when it succeeded (a write's bytes). */
  body: () => void;
}

interface SectionArgs {
  att: MAtt;
  write: boolean;
  how: string;
  type?: string | undefined;
  lo: number;
  hi: number;
  seed: number;
  argCode?: string | undefined;
}

/**
 * The outcome of a section by `space` on `a.att`, entered while this thread holds sections on
 * `held` (nested), synchronously unless how === 'async'.
 */
function planSection(m: Model, space: number, a: SectionArgs, held: MSeg[]): SectionPlan {
  const noop = (): void => {};
  const early = (code: string): SectionPlan => ({ want: fail(code), fault: false, faultCode: undefined, faultIn: noop, body: noop });
  if (a.argCode !== undefined) return early(a.argCode);
  const { att, write } = a;
  const seg = att.seg;
  if (att.detached) return early('ERR_XPMEM_DETACHED');
  if (held.some((h) => h.id >= seg.id)) return early('ERR_XPMEM_WOULD_DEADLOCK');
  if (seg.removed) return early('ERR_XPMEM_REMOVED');
  if (write && att.access.mode === 'ro') return early('ERR_XPMEM_PERMISSION');
  // Refused by protection or range: refused before any fault (a swapped segment stays out).
  if (RANK[seg.prot] < (write ? 2 : 1)) return early('ERR_XPMEM_PERMISSION');
  if (att.offset + att.length > seg.bytes) return early('ERR_XPMEM_RANGE');
  const fault = seg.swapped;
  const { code: faultCode, apply: faultIn } = planFault(m, space, seg, a.how !== 'async', held);
  const plan = (want: Expect, body = noop): SectionPlan => ({ want, fault, faultCode, faultIn, body });
  if (faultCode !== undefined) return plan(fail(faultCode));
  if (a.how === 'typed' && (att.offset % TYPES[a.type!]! !== 0 || att.length % TYPES[a.type!]! !== 0)) return plan(fail('ERR_XPMEM_RANGE'));
  if (!write) return plan(ok((v) => sameBytes(seg.data.subarray(att.offset, att.offset + att.length), v)));
  return plan(ok(), () => writeModel(seg, att, a));
}

/** The pattern write of `a` applied to the model's bytes. */
function writeModel(seg: MSeg, att: MAtt, a: SectionArgs): void {
  const region = seg.data.subarray(att.offset, att.offset + att.length);
  if (a.how === 'typed') {
    const size = TYPES[a.type!]!;
    const copy = region.slice();
    const view = new TYPED_ARRAYS[a.type!]!(copy.buffer, 0, copy.length / size) as never;
    writePattern(view, a.lo, a.hi, a.seed);
    region.set(copy);
  } else {
    writePattern(region as never, a.lo, a.hi, a.seed);
  }
}

/** Resolves a generated section (lo/hi fractions, bad-argument flavour) against the model. */
function sectionArgs(att: MAtt, g: Record<string, unknown>): { args: SectionArgs; cmd: FuzzCmd } {
  const write = g.write as boolean;
  const how = g.how as string;
  const type = how === 'typed' ? (g.type as string) : undefined;
  const n = type === undefined ? att.length : Math.floor(att.length / TYPES[type]!);
  let lo = frac(g.lo as number, n);
  let hi = frac(g.hi as number, n);
  if (lo > hi) [lo, hi] = [hi, lo];
  const cmd: FuzzCmd = { op: 'section', att: att.key, write, how, lo, hi, seed: g.seed as number };
  if (type !== undefined) cmd.type = type;
  let argCode: string | undefined;
  const bad = g.bad as string | undefined;
  if (bad === 'fn') {
    cmd.badFn = 3;
    argCode = how === 'section' ? undefined : 'ERR_INVALID_ARG_TYPE';
    if (how === 'section') delete cmd.badFn;
  } else if (bad === 'type' && how === 'typed') {
    cmd.type = g.badType as string;
    argCode = 'ERR_INVALID_ARG_TYPE';
  } else if (bad === 'mode' && how === 'section') {
    cmd.badMode = g.badMode;
    argCode = oneOfCode(g.badMode, ['ro', 'rw']);
  } else if (bad === 'opts' && (how === 'section' || how === 'async')) {
    cmd.opts = g.opts;
    argCode = waitCode(g.opts);
  } else if (how === 'async' || how === 'section') {
    if (g.opts !== undefined && waitCode(g.opts) === undefined) cmd.opts = g.opts;
  }
  return { args: { att, write, how, type: cmd.type as string | undefined, lo, hi, seed: g.seed as number, argCode }, cmd };
}

/**
 * A fault (swap-in) of `seg` by `space`, blocking when `sync`, holding sections on `held`: over
 * memoryLimit it fails before any window opens (prepare); the thread's own async callback makes
 * a sync one fail fast in the start phase; a segment past the arena fails in the apply.
 */
function planFault(m: Model, space: number, seg: MSeg, sync: boolean, held: MSeg[]): { code: string | undefined; apply: () => void } {
  if (!seg.swapped) return { code: undefined, apply: () => {} };
  const units = unitsFor(seg.bytes);
  let code: string | undefined;
  let window = true;
  let failFast = false;
  if (!m.fits(units, seg, held)) {
    code = 'ERR_XPMEM_NO_MEMORY';
    window = false;
  } else if (sync && m.ownAsync(space, seg, whole(seg))) {
    code = 'ERR_XPMEM_WOULD_DEADLOCK';
    failFast = true;
  } else if (units > MAX_UNITS) {
    code = 'ERR_XPMEM_NO_MEMORY';
  }
  return {
    code,
    apply: () => {
      if (window) m.invalidate(seg, whole(seg), 'swap', failFast ? space : undefined);
      if (code === undefined) seg.swapped = false;
    },
  };
}

/** map() or refresh() by `space` on `att`: sync, lock-free entry; faults a swapped segment in (once allowed). */
function planMap(m: Model, space: number, att: MAtt, argCode: string | undefined, held: MSeg[] = []): { want: Expect; apply: () => void } {
  const noop = (): void => {};
  if (argCode !== undefined) return { want: fail(argCode), apply: noop };
  const seg = att.seg;
  if (att.detached) return { want: fail('ERR_XPMEM_DETACHED'), apply: noop };
  if (seg.removed) return { want: fail('ERR_XPMEM_REMOVED'), apply: noop };
  if (seg.prot === 'none') return { want: fail('ERR_XPMEM_PERMISSION'), apply: noop }; // before any fault
  if (att.offset + att.length > seg.bytes) return { want: fail('ERR_XPMEM_RANGE'), apply: noop };
  const { code: faultCode, apply } = planFault(m, space, seg, true, held);
  if (faultCode !== undefined) return { want: fail(faultCode), apply };
  return { want: ok(), apply };
}

/** A VM operation by the owner: its outcome and effects. `held`: segments this thread holds sections on. */
function planVm(m: Model, space: number, seg: MSeg, what: string, arg: unknown, sync: boolean, held: MSeg[], argCode: string | undefined): { want: Expect; apply: (got?: Outcome) => void } {
  const noop = (): void => {};
  if (argCode !== undefined) return { want: fail(argCode), apply: noop };
  if (seg.removed) return { want: fail('ERR_XPMEM_REMOVED'), apply: noop };
  if (sync && held.includes(seg)) return { want: fail('ERR_XPMEM_WOULD_DEADLOCK'), apply: noop }; // its own section: refused before anything
  let range: Range | null = whole(seg);
  let event = what;
  let applyCode: string | undefined;
  /** Codes also possible: then the window runs only if the call succeeds. */
  let alsoCodes: string[] = [];
  let change = noop;
  const units = unitsFor(seg.bytes);
  const overLimit = fail('ERR_XPMEM_NO_MEMORY'); // refused in prepare: no window
  switch (what) {
    case 'migrate':
      event = 'migrate';
      if (seg.swapped) range = null;
      else if (!m.fits(units, seg, held)) return { want: overLimit, apply: noop };
      break;
    case 'resize': {
      const bytes = arg as number;
      event = 'resize';
      range = bytes < seg.bytes ? { offset: bytes, length: seg.bytes - bytes } : whole(seg);
      if (!seg.swapped && unitsFor(bytes) > units) {
        // Growing: in place it takes the extra units, moving it holds old and new blocks at
        // once; prepare asks for what it will take (which depends on the block after it), so
        // under memoryLimit it either runs one window or is refused before any.
        if (!m.fits(unitsFor(bytes) - units, seg, held)) return { want: overLimit, apply: noop };
        if (unitsFor(bytes) > MAX_UNITS) applyCode = 'ERR_XPMEM_NO_MEMORY';
        else if (!m.fits(unitsFor(bytes), seg, held)) alsoCodes = ['ERR_XPMEM_NO_MEMORY'];
      }
      change = () => m.resize(seg, bytes);
      break;
    }
    case 'protect':
      change = () => {
        seg.prot = arg as Permit;
      };
      break;
    case 'swapOut':
      event = 'swap';
      if (!seg.swappable) return { want: fail('ERR_XPMEM_PERMISSION'), apply: noop };
      if (seg.swapped) range = null;
      change = () => {
        seg.swapped = true;
      };
      break;
    case 'swapIn':
      event = 'swap';
      if (!seg.swapped) range = null;
      else if (!m.fits(units, seg, held)) return { want: overLimit, apply: noop };
      else if (units > MAX_UNITS) applyCode = 'ERR_XPMEM_NO_MEMORY';
      change = () => {
        seg.swapped = false;
      };
      break;
    case 'remove':
      change = () => m.remove(seg);
      break;
    default:
      throw new Error(`unknown vm op ${what}`);
  }
  if (range === null) return { want: ok(), apply: noop }; // nothing to do: no invalidation
  const window = range;
  let code: string | undefined;
  // Its own async callback pending: fails fast in the start phase.
  const failFast = sync && m.ownAsync(space, seg, window, event);
  if (failFast) code = 'ERR_XPMEM_WOULD_DEADLOCK';
  else code = applyCode;
  const want = code === undefined ? { ...ok(), codes: alsoCodes } : fail(code, ...alsoCodes);
  return {
    want,
    apply: (got?: Outcome) => {
      if (got !== undefined && !got.ok && alsoCodes.includes(got.code)) return; // refused in prepare
      m.invalidate(seg, window, event, failFast ? space : undefined);
      if (code === undefined && (got === undefined || got.ok)) change();
    },
  };
}

// --- runners, one per step kind ---

type Runner = (m: Model, r: Real, g: Gen) => Promise<void>;

const VM_ARG_CODES: Record<string, (arg: unknown) => string | undefined> = {
  resize: (arg) => indexCode(arg, 1, MAX_BYTES),
  protect: (arg) => oneOfCode(arg, ['none', 'ro', 'rw']),
};

/** Resolves a generated VM operation of the owner `space`. */
function vmCmd(m: Model, space: number, g: Record<string, unknown>): { seg: MSeg; cmd: FuzzCmd; what: string; arg: unknown; argCode: string | undefined } | undefined {
  const seg = pickMostlyLive(
    m.segs.filter((x) => x.owner === space),
    g.seg as number,
    (x) => !x.removed,
  );
  if (seg === undefined) return undefined;
  const what = g.what as string;
  const cmd: FuzzCmd = { op: 'vm', seg: seg.key, what, sync: g.sync as boolean };
  let arg: unknown;
  // A size relative to the current one, given, or the one before the last resize (shrink, then grow back).
  if (what === 'resize') arg = g.sizeMode === 'back' ? seg.before : g.sizeMode === 'given' ? g.bytes : Math.max(1, frac(g.bytesFrac as number, seg.bytes * 2));
  else if (what === 'protect') arg = g.prot;
  if (arg !== undefined) cmd.arg = arg;
  if (g.opts !== undefined) cmd.opts = g.opts;
  const argCode = waitCode(g.opts) ?? VM_ARG_CODES[what]?.(arg);
  return { seg, cmd, what, arg, argCode };
}

const RUNNERS: Record<string, Runner> = {
  async make(m, r, g) {
    const { space } = g;
    const key = m.key();
    const cmd: FuzzCmd = { op: 'make', key, bytes: g.bytes };
    if (g.opts !== 'none') cmd.opts = g.opts;
    const opts = cmd.opts as Record<string, unknown> | undefined;
    let code = indexCode(g.bytes, 1, MAX_BYTES) ?? optionsCode(opts);
    if (code === undefined && opts !== undefined) {
      code =
        oneOfCode(opts.permit ?? 'rw', ['none', 'ro', 'rw']) ??
        (opts.swappable !== undefined && typeof opts.swappable !== 'boolean' ? 'ERR_INVALID_ARG_TYPE' : undefined) ??
        (opts.name !== undefined && typeof opts.name !== 'string' ? 'ERR_INVALID_ARG_TYPE' : undefined);
    }
    if (code === undefined && (m.liveSegs().length >= CAPS.segments || unitsFor(g.bytes as number) > MAX_UNITS || !m.fits(unitsFor(g.bytes as number), undefined, []))) code = 'ERR_XPMEM_NO_MEMORY';
    const known = new Set([...m.stale, ...m.segs.map((s) => s.id)]);
    const got = await call(m, r, space, cmd, code === undefined ? ok((v) => (typeof v !== 'number' || known.has(v) ? `make() gave id ${String(v)}, not a new one` : undefined)) : fail(code));
    if (!got.ok) return;
    const bytes = g.bytes as number;
    const name = (opts?.name as string | undefined) ?? '';
    m.segs.push({
      key,
      id: got.value as number,
      owner: space,
      bytes,
      before: bytes,
      permit: (opts?.permit as Permit | undefined) ?? 'rw',
      prot: 'rw',
      swappable: opts?.swappable !== false,
      swapped: false,
      removed: false,
      name,
      stored: storedName(name),
      data: new Uint8Array(Math.min(bytes, DATA_CAP)),
    });
  },

  async get(m, r, g) {
    const { space } = g;
    const key = m.key();
    let segId: unknown;
    switch (g.which) {
      case 'live':
        segId = pick(m.liveSegs(), g.pick as number)?.id ?? g.raw;
        break;
      case 'stale':
        segId = pick(m.stale, g.pick as number) ?? g.raw;
        break;
      default:
        segId = g.raw;
    }
    const cmd: FuzzCmd = { op: 'get', key, segId };
    if (g.mode !== 'default') cmd.mode = g.mode;
    const mode = (g.mode === 'default' ? 'rw' : g.mode) as 'ro' | 'rw';
    const seg = m.liveSegs().find((s) => s.id === segId);
    let code: string | undefined;
    if (typeof segId !== 'number') code = 'ERR_INVALID_ARG_TYPE';
    else code = oneOfCode(mode, ['ro', 'rw']);
    if (code === undefined && seg === undefined) code = 'ERR_XPMEM_NO_SEGMENT';
    if (code === undefined && seg!.owner !== space && RANK[seg!.permit] < RANK[mode]) code = 'ERR_XPMEM_PERMISSION';
    if (code === undefined && m.grants() >= CAPS.grants) code = 'ERR_XPMEM_NO_MEMORY';
    const got = await call(m, r, space, cmd, code === undefined ? ok((v) => (v === segId ? undefined : `segId ${String(v)}`)) : fail(code));
    if (got.ok) m.accesses.push({ key, space, seg: seg!, mode, released: false });
  },

  async attach(m, r, g) {
    const { space } = g;
    const access = pickMostlyLive(m.of(m.accesses, space), g.pick as number, liveAccess)!;
    const key = m.key();
    const bytes = access.seg.bytes;
    let opts: unknown;
    switch (g.shape) {
      case 'whole':
        opts = undefined;
        break;
      case 'offset':
        opts = { offset: frac(g.a as number, bytes) };
        break;
      case 'length':
        opts = { length: Math.max(1, frac(g.b as number, bytes)) };
        break;
      case 'range': {
        const offset = frac(g.a as number, bytes);
        opts = { offset, length: Math.max(1, frac(g.b as number, bytes - offset)) };
        break;
      }
      case 'aligned': {
        const offset = frac(g.a as number, bytes) & ~7;
        opts = { offset, length: Math.max(8, frac(g.b as number, bytes - offset) & ~7) };
        break;
      }
      case 'past':
        opts = { offset: frac(g.a as number, bytes), length: bytes + 1 + (g.b as number) };
        break;
      // Boundaries: to the last byte less one, exactly, or one past; the last byte, or none.
      case 'edge': {
        const offset = frac(g.a as number, bytes);
        opts = { offset, length: bytes - offset + ((g.b as number) % 3) - 1 };
        break;
      }
      case 'tail':
        opts = { offset: bytes - 1 + ((g.b as number) % 2), length: 1 };
        break;
      case 'end':
        opts = { offset: bytes + ((g.b as number) % 3) };
        break;
      default:
        opts = g.bad;
    }
    const cmd: FuzzCmd = { op: 'attach', key, access: access.key };
    if (opts !== undefined) cmd.opts = opts;
    const o = (opts ?? {}) as { offset?: unknown; length?: unknown };
    let code = optionsCode(opts);
    if (code === undefined && o.offset !== undefined) code = indexCode(o.offset, 0, MAX_BYTES);
    if (code === undefined && o.length !== undefined) code = indexCode(o.length, 1, MAX_BYTES);
    const offset = (o.offset as number | undefined) ?? 0;
    const length = (o.length as number | undefined) ?? access.seg.bytes - offset;
    if (code === undefined && access.released) code = 'ERR_XPMEM_DETACHED';
    if (code === undefined && access.seg.removed) code = 'ERR_XPMEM_REMOVED';
    if (code === undefined && (offset > access.seg.bytes || length < 1 || offset + length > access.seg.bytes)) code = 'ERR_XPMEM_RANGE';
    if (code === undefined && m.attached().length >= CAPS.attachments) code = 'ERR_XPMEM_NO_MEMORY';
    const got = await call(m, r, space, cmd, code === undefined ? ok((v) => (JSON.stringify(v) === JSON.stringify([offset, length]) ? undefined : `range ${describeValue(v)}`)) : fail(code));
    if (got.ok) m.atts.push({ key, space, access, seg: access.seg, offset, length, detached: false });
  },

  async detach(m, r, g) {
    const { space } = g;
    const att = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    await call(m, r, space, { op: 'detach', att: att.key }, ok());
    detachModel(m, att);
  },

  async release(m, r, g) {
    const { space } = g;
    const access = pickMostlyLive(m.of(m.accesses, space), g.pick as number, liveAccess)!;
    await call(m, r, space, { op: 'release', access: access.key }, ok());
    for (const a of m.atts) if (a.access === access) detachModel(m, a);
    access.released = true;
  },

  async touch(m, r, g) {
    const { space } = g;
    const att = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    await call(m, r, space, { op: 'touch', att: att.key }, att.detached ? fail('ERR_XPMEM_DETACHED') : att.seg.removed ? fail('ERR_XPMEM_REMOVED') : ok());
  },

  async section(m, r, g) {
    const { space } = g;
    const att = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    const { args, cmd } = sectionArgs(att, g);
    const plan = planSection(m, space, args, []);
    const got = await call(m, r, space, cmd, plan.want);
    plan.faultIn();
    if (got.ok) plan.body();
  },

  async map(m, r, g) {
    const { space } = g;
    const att = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    const key = m.key();
    const cmd: FuzzCmd = { op: 'map', key, att: att.key };
    if (g.opts !== undefined) cmd.opts = g.opts;
    const plan = planMap(m, space, att, waitCode(g.opts));
    const seg = att.seg;
    const want = !plan.want.success
      ? plan.want
      : ok((v) => {
          const { valid, bytes } = v as { valid: boolean; bytes: Uint8Array };
          return valid ? sameBytes(seg.data.subarray(att.offset, att.offset + att.length), bytes) : 'a fresh mapping is not valid';
        });
    const got = await call(m, r, space, cmd, want);
    plan.apply();
    if (got.ok) m.maps.push({ key, space, att, fresh: true });
  },

  async mapCheck(m, r, g) {
    const { space } = g;
    const map = pick(m.of(m.maps, space), g.pick as number)!;
    const att = map.att;
    const seg = att.seg;
    const cmd: FuzzCmd = { op: 'mapCheck', map: map.key, refresh: g.refresh as boolean };
    if (g.refresh && g.opts !== undefined) cmd.opts = g.opts;
    const retry = !map.fresh;
    const region = (): Uint8Array => seg.data.subarray(att.offset, att.offset + att.length);
    if (!g.refresh) {
      await call(
        m,
        r,
        space,
        cmd,
        ok((v) => {
          const got = v as { retry: boolean; bytes?: Uint8Array };
          if (got.retry !== retry) return `retry() is ${got.retry}, the model says ${retry}`;
          return retry ? undefined : sameBytes(region(), got.bytes);
        }),
      );
      return;
    }
    const plan = planMap(m, space, att, waitCode(g.opts));
    // refresh() fails on a removed segment, a detached attachment or a refused fault, as map() does.
    const want = !plan.want.success
      ? plan.want
      : ok((v) => {
          const got = v as { retry: boolean; bytes: Uint8Array; after: boolean };
          if (got.retry !== retry) return `retry() is ${got.retry}, the model says ${retry}`;
          if (got.after) return 'retry() is true right after refresh()';
          return sameBytes(region(), got.bytes);
        });
    const got = await call(m, r, space, cmd, want);
    plan.apply();
    if (got.ok) map.fresh = true;
  },

  async vm(m, r, g) {
    const { space } = g;
    const v = vmCmd(m, space, g)!;
    const plan = planVm(m, space, v.seg, v.what, v.arg, v.cmd.sync as boolean, [], v.argCode);
    plan.apply(await call(m, r, space, v.cmd, plan.want));
  },

  async compact(m, r, g) {
    const cmd: FuzzCmd = { op: 'compact' };
    if (g.opts !== undefined) cmd.opts = g.opts;
    const code = waitCode(g.opts);
    const before = new Map(
      r.d
        .maps()
        .filter((row) => row.kind === 'segment' && row.offset >= 0)
        .map((row) => [row.segId, row.offset]),
    );
    const got = await call(m, r, 0, cmd, code === undefined ? ok() : fail(code));
    if (!got.ok) return;
    const after = new Map(
      r.d
        .maps()
        .filter((row) => row.kind === 'segment' && row.offset >= 0)
        .map((row) => [row.segId, row.offset]),
    );
    // Highest first: the order of their windows.
    const moved = m
      .liveSegs()
      .filter((s) => !s.swapped && after.get(s.id)! < before.get(s.id)!)
      .sort((x, y) => before.get(y.id)! - before.get(x.id)!);
    const grew = m.liveSegs().filter((s) => !s.swapped && after.get(s.id)! > before.get(s.id)!);
    if (grew.length > 0) failRun(m, `compact() moved segment ${grew[0]!.id} up`);
    const report = got.value as { moved: number; movedBytes: number; skipped: number };
    // Under memoryLimit a move with no headroom for its copy is skipped; without, nothing is busy.
    const want = { moved: moved.length, movedBytes: moved.reduce((n, s) => n + s.bytes, 0), skipped: m.limit > 0 ? report.skipped : 0 };
    if (JSON.stringify(report) !== JSON.stringify(want)) failRun(m, `compact() reported ${JSON.stringify(report)}, the arena shows ${JSON.stringify(want)}`);
    for (const s of moved) m.invalidate(s, whole(s), 'migrate');
  },

  async notifierSpace(m, r, g) {
    await registerNotifier(m, r, g, undefined);
  },

  async notifierAtt(m, r, g) {
    await registerNotifier(m, r, g, pickMostlyLive(m.of(m.atts, g.space), g.pick as number, liveAtt)!);
  },

  async unregister(m, r, g) {
    const { space } = g;
    const n = pick(m.of(m.notes, space), g.pick as number)!;
    await call(m, r, space, { op: 'unregister', notifier: n.key }, ok());
    n.live = false;
  },

  async inspectSeg(m, r, g) {
    const { space } = g;
    const seg = pick(
      m.segs.filter((s) => s.owner === space),
      g.pick as number,
    )!;
    await call(
      m,
      r,
      space,
      { op: 'inspect', seg: seg.key },
      ok((v) =>
        compareInspect(v as Record<string, Outcome>, {
          segId: seg.id,
          segBytes: seg.removed ? 'ERR_XPMEM_REMOVED' : seg.bytes,
          protection: seg.removed ? 'ERR_XPMEM_REMOVED' : seg.prot,
          swapped: seg.removed ? 'ERR_XPMEM_REMOVED' : seg.swapped,
          name: seg.name,
        }),
      ),
    );
  },

  async inspect(m, r, g) {
    const { space } = g;
    const att = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    const access = pick(m.of(m.accesses, space), g.pick2 as number)!;
    const note = pick(m.of(m.notes, space), g.pick3 as number);
    const cmd: FuzzCmd = { op: 'inspect', att: att.key, access: access.key };
    const want: Record<string, unknown> = {
      range: [att.seg.id, att.offset, att.length],
      detached: att.detached,
      accessBytes: access.seg.removed ? 'ERR_XPMEM_REMOVED' : access.seg.bytes,
      mode: access.mode,
      accessSeg: access.seg.id,
    };
    if (note !== undefined) {
      cmd.notifier = note.key;
      want.registered = note.live;
    }
    await call(
      m,
      r,
      space,
      cmd,
      ok((v) => compareInspect(v as Record<string, Outcome>, want)),
    );
  },

  async nested(m, r, g) {
    const { space } = g;
    const outerAtt = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    const outer = sectionArgs(outerAtt, { ...(g.outer as object), bad: undefined });
    const outerPlan = planSection(m, space, outer.args, []);
    const inner = g.inner as Record<string, unknown>;
    let innerCmd: FuzzCmd;
    const detach = (att: MAtt): FuzzCmd => ({ op: 'detach', att: att.key });
    switch (inner.kind) {
      case 'section':
        innerCmd = sectionArgs(pickMostlyLive(m.of(m.atts, space), inner.pick as number, liveAtt)!, inner).cmd;
        break;
      case 'vm':
        // Not after a fault that reclaims: its victims are learned only after the command (maps()),
        // and the inner operation's outcome may depend on which they were.
        if (outerAtt.seg.swapped && m.reclaims(unitsFor(outerAtt.seg.bytes))) innerCmd = { op: 'map', key: m.key(), att: outerAtt.key };
        else innerCmd = vmCmd(m, space, { ...inner, sync: true })?.cmd ?? detach(pick(m.of(m.atts, space), inner.seg as number)!);
        break;
      case 'map':
        innerCmd = { op: 'map', key: m.key(), att: pickMostlyLive(m.of(m.atts, space), inner.pick as number, liveAtt)!.key };
        break;
      default:
        innerCmd = detach(pickMostlyLive(m.of(m.atts, space), inner.pick as number, liveAtt)!);
    }
    const cmd: FuzzCmd = { op: 'nested', outer: outer.cmd, inner: innerCmd };
    const line = `${SPACE_NAMES[space]} ${describeValue(cmd)}`;
    m.trace.push(line);
    const got = await exec(r, space, cmd);
    m.trace[m.trace.length - 1] = `${line} -> ${describeOutcome(got)}${got.ok ? ` inner ${describeOutcome(got.value as Outcome)}` : ''}`;
    tally({ op: 'nested(outer)' }, got);
    if (got.ok) tally({ ...innerCmd, op: `nested(inner ${innerCmd.op === 'vm' ? `vm.${String(innerCmd.what)}` : innerCmd.op})` }, got.value as Outcome);
    // The outer section's body only runs the inner call: it writes nothing itself.
    verify(m, `${line} (outer)`, got.ok ? { ok: true } : got, outerPlan.want.success ? ok() : outerPlan.want);
    outerPlan.faultIn();
    if (!got.ok) return;
    // Planned now: the outer entry (and its fault) happened before the inner call.
    const innerPlan = planInner(m, space, innerCmd, outerAtt);
    verify(m, `${line} (inner)`, got.value as Outcome, innerPlan.want);
    innerPlan.apply(got.value as Outcome);
  },

  async interleave(m, r, g) {
    const { space } = g;
    const attA = pickMostlyLive(m.of(m.atts, space), g.pick as number, liveAtt)!;
    const attB = pickMostlyLive(m.of(m.atts, space), g.pick2 as number, liveAtt)!;
    const a = sectionArgs(attA, { ...(g.a as object), how: 'async' });
    const b = sectionArgs(attB, { ...(g.b as object), how: 'async', write: false });
    const cmd: FuzzCmd = { op: 'interleave', a: a.cmd, b: b.cmd };
    const line = `${SPACE_NAMES[space]} ${describeValue(cmd)}`;
    m.trace.push(line);
    // a's entry claims its held word before b's starts: b is refused unless above a in id order.
    // An a that finds its segment swapped out gives its claim back and runs its fault, whose
    // window opens before b starts: b on that segment parks on the window (holding its claim)
    // and enters after it; b elsewhere goes on.
    const pa = planSection(m, space, a.args, []);
    const holdsA = pa.want.success && !pa.fault;
    const claims = (x: SectionArgs): boolean => x.argCode === undefined && !x.att.detached;
    const parks = pa.fault && attB.seg === attA.seg && claims(b.args);
    if (parks) pa.faultIn();
    const pb = holdsA && claims(b.args) && attB.seg.id <= attA.seg.id ? planSection(m, space, { ...b.args, argCode: 'ERR_XPMEM_WOULD_DEADLOCK' }, []) : planSection(m, space, b.args, []);
    const before = attB.seg.data.slice(attB.offset, attB.offset + attB.length);
    const got = await exec(r, space, cmd);
    if (!got.ok) failRun(m, `${line}: ${describeOutcome(got)}`);
    const [oa, ob] = got.value as [Outcome, Outcome];
    m.trace[m.trace.length - 1] = `${line} -> [${describeOutcome(oa)}, ${describeOutcome(ob)}]`;
    tally({ op: `interleave(a ${a.args.write ? 'w' : 'r'})` }, oa);
    tally({ op: 'interleave(b r)' }, ob);
    // An entry that faulted enters again after its fault: the other section may hold then (a
    // parked b from its claim on), which refuses it when its segment id is not above the
    // other's. The order check comes first at that entry, so it can replace any later outcome.
    const widen = (plan: SectionPlan, self: MSeg, other: MSeg, otherHeld: boolean): Expect =>
      plan.fault && plan.faultCode === undefined && otherHeld && self.id <= other.id ? { ...plan.want, codes: [...plan.want.codes, 'ERR_XPMEM_WOULD_DEADLOCK'] } : plan.want;
    verify(m, `${line} (a)`, oa, widen(pa, attA.seg, attB.seg, ob.ok || parks));
    if (attA.seg === attB.seg && a.args.write && oa.ok && ob.ok) {
      // Both ran on one segment (only after faults, one after the other): b read before or after a's write.
      const saved = attA.seg.data.slice();
      writeModel(attA.seg, attA, a.args);
      const after = attB.seg.data.slice(attB.offset, attB.offset + attB.length);
      attA.seg.data.set(saved);
      if (sameBytes(before, ob.value) !== undefined && sameBytes(after, ob.value) !== undefined) failRun(m, `${line} (b): read neither the bytes before a's write nor after it`);
    } else {
      verify(m, `${line} (b)`, ob, widen(pb, attB.seg, attA.seg, oa.ok));
    }
    // Faults: one swap-in per segment when it succeeds (the second finds it resident); a failing
    // swap-in fails for each entry that tried it.
    if (pa.fault && !parks) pa.faultIn();
    if (pb.fault && (parks || attB.seg !== attA.seg || !pa.fault || pb.faultCode !== undefined)) pb.faultIn();
    if (oa.ok) pa.body();
  },
};

/** The plan of a nested call made inside a section on `outer`: its expectation and effects. */
function planInner(m: Model, space: number, cmd: FuzzCmd, outer: MAtt): { want: Expect; apply: (got: Outcome) => void } {
  const held = [outer.seg];
  const att = m.atts.find((a) => a.key === cmd.att);
  switch (cmd.op) {
    case 'section': {
      const args: SectionArgs = {
        att: att!,
        write: cmd.write as boolean,
        how: cmd.how as string,
        type: cmd.type as string | undefined,
        lo: cmd.lo as number,
        hi: cmd.hi as number,
        seed: cmd.seed as number,
      };
      const plan = planSection(m, space, args, held);
      return {
        want: plan.want,
        apply: (got) => {
          plan.faultIn();
          if (got.ok) plan.body();
        },
      };
    }
    case 'map': {
      const plan = planMap(m, space, att!, undefined, held);
      const want = plan.want.success
        ? ok((v) => {
            const { valid, bytes } = v as { valid: boolean; bytes: Uint8Array };
            return valid ? sameBytes(att!.seg.data.subarray(att!.offset, att!.offset + att!.length), bytes) : 'a fresh mapping is not valid';
          })
        : plan.want;
      return {
        want,
        apply: (got) => {
          plan.apply();
          if (got.ok) m.maps.push({ key: cmd.key as number, space, att: att!, fresh: true });
        },
      };
    }
    case 'detach':
      // detach() inside a section of the same attachment is refused; any other is local.
      return {
        want: att === outer && !att.detached ? fail('ERR_XPMEM_BUSY') : ok(),
        apply: (got) => {
          if (got.ok) detachModel(m, att!);
        },
      };
    default: {
      const seg = m.segs.find((s) => s.key === cmd.seg)!;
      const argCode = waitCode(cmd.opts) ?? VM_ARG_CODES[cmd.what as string]?.(cmd.arg);
      const plan = planVm(m, space, seg, cmd.what as string, cmd.arg, true, held, argCode);
      return { want: plan.want, apply: (got) => plan.apply(got) };
    }
  }
}

function detachModel(m: Model, att: MAtt): void {
  att.detached = true;
  for (const n of m.notes) if (n.att === att) n.live = false;
}

function compareInspect(got: Record<string, Outcome>, want: Record<string, unknown>): string | undefined {
  for (const [k, w] of Object.entries(want)) {
    const o = got[k];
    if (o === undefined) return `no ${k}`;
    if (typeof w === 'string' && w.startsWith('ERR_')) {
      if (o.ok || o.code !== w) return `${k}: expected ${w}, got ${describeOutcome(o)}`;
    } else if (!o.ok || JSON.stringify(o.value) !== JSON.stringify(w)) {
      return `${k}: expected ${JSON.stringify(w)}, got ${describeOutcome(o)}`;
    }
  }
  return undefined;
}

async function registerNotifier(m: Model, r: Real, g: Gen, att: MAtt | undefined): Promise<void> {
  const { space } = g;
  const key = m.noteKey();
  const cmd: FuzzCmd = { op: 'notifier', key, how: g.how };
  if (att !== undefined) cmd.att = att.key;
  if (g.bad !== undefined) cmd.bad = g.bad;
  let code: string | undefined = g.bad === undefined ? undefined : 'ERR_INVALID_ARG_TYPE';
  if (code === undefined && att?.detached) code = 'ERR_XPMEM_DETACHED';
  if (code === undefined && att?.seg.removed) code = 'ERR_XPMEM_REMOVED';
  if (code === undefined && m.notifiers() >= CAPS.notifiers) code = 'ERR_XPMEM_NO_MEMORY';
  const got = await call(m, r, space, cmd, code === undefined ? ok((v) => (v === true ? undefined : 'not registered')) : fail(code));
  if (got.ok) m.notes.push({ key, space, att, how: g.how as 'plain' | 'async', live: true, pairs: 0, maybe: 0, last: undefined });
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

const spaceArb = fc.integer({ min: 0, max: AGENTS });
const pickArb = fc.noBias(fc.nat({ max: 999 }));
const fracArb = fc.noBias(fc.integer({ min: 0, max: 1000 }));
const seedArb = fc.noBias(fc.nat({ max: 255 }));
const sizeArb = fc.oneof(
  { weight: 4, arbitrary: fc.noBias(fc.integer({ min: 1, max: 300 })) },
  { weight: 3, arbitrary: fc.noBias(fc.integer({ min: 300, max: 16_384 })) },
  { weight: 2, arbitrary: fc.constantFrom(8, 64, 128, 4096, 16_384) },
  { weight: 1, arbitrary: fc.constantFrom(8 << 20, 2 ** 31 - 1, 2 ** 31, 2 ** 32) },
);
/** Sizes past the arena: resident they cannot be, swapped out they can. */
const hugeArb = fc.constantFrom(8 << 20, 2 ** 31 - 1, 2 ** 31, 2 ** 32);
const badSizeArb = fc.constantFrom<unknown>('64', 0, -1, 1.5, Number.NaN, 2 ** 32 + 1, null, undefined, Number.POSITIVE_INFINITY);
const nameArb = fc.string({ unit: fc.constantFrom('a', 'Z', '-', ' ', 'é', '✓', '𝄞'), maxLength: 30 });
const badWaitArb = fc.constantFrom<unknown>(3, null, { deadlineMs: -1 }, { deadlineMs: '5' }, { deadlineMs: 1.5 }, { signal: 'bogus' }, { signal: 'aborted' });
const goodWaitArb = fc.constantFrom<unknown>(undefined, { deadlineMs: 10_000 }, { signal: 'live' });
const waitArb = fc.oneof({ weight: 6, arbitrary: goodWaitArb }, { weight: 1, arbitrary: badWaitArb });
const typeArb = fc.constantFrom(...Object.keys(TYPES));
const permitArb = fc.constantFrom<Permit>('none', 'ro', 'rw');

const makeOpts = fc.oneof(
  { weight: 2, arbitrary: fc.constant('none') },
  { weight: 8, arbitrary: fc.record({ permit: permitArb, swappable: fc.boolean(), name: nameArb }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(5, null, { permit: 'x' }, { permit: 3 }, { swappable: 'no' }, { name: 5 }) },
);

const badCallbacks = fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('null', 'five', 'fn') });

const sectionGen = {
  write: fc.boolean(),
  how: fc.constantFrom('fn', 'typed', 'async', 'section'),
  type: typeArb,
  lo: fracArb,
  hi: fracArb,
  seed: seedArb,
  opts: goodWaitArb,
};
const sectionBad = fc.oneof(
  { weight: 10, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant('fn') },
  { weight: 1, arbitrary: fc.constant('type') },
  { weight: 1, arbitrary: fc.constant('mode') },
  { weight: 1, arbitrary: fc.constant('opts') },
);

const vmGen = {
  seg: pickArb,
  what: fc.constantFrom('migrate', 'resize', 'resize', 'protect', 'protect', 'swapOut', 'swapOut', 'swapIn', 'remove'),
  sync: fc.boolean(),
  bytes: fc.oneof({ weight: 6, arbitrary: sizeArb }, { weight: 2, arbitrary: hugeArb }, { weight: 1, arbitrary: badSizeArb }),
  sizeMode: fc.constantFrom('relative', 'relative', 'given', 'back'),
  bytesFrac: fracArb,
  prot: fc.oneof({ weight: 8, arbitrary: permitArb }, { weight: 1, arbitrary: fc.constantFrom<unknown>('x', 2, null) }),
  opts: waitArb,
};

function step(kind: string, gen: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Step> {
  return fc.record({ space: spaceArb, ...gen }).map((g) => new Step(kind, g as Gen));
}

/** `arb` listed `n` times: fc.commands picks uniformly among its arbitraries. */
function times<T>(n: number, arb: T): T[] {
  return Array.from({ length: n }, () => arb);
}

/** The steps of a run; under memoryLimit without interleaved faults and with plain callbacks only (see reclaimed()). */
const commandsFor = (limited: boolean): fc.Arbitrary<Step>[] =>
  [
    ...times(3, step('make', { bytes: fc.oneof({ weight: 12, arbitrary: sizeArb }, { weight: 1, arbitrary: badSizeArb }), opts: makeOpts })),
    ...times(
      3,
      step('get', {
        which: fc.constantFrom('live', 'live', 'live', 'stale', 'raw'),
        pick: pickArb,
        raw: fc.constantFrom<unknown>(-1, 1.5, Number.NaN, 2 ** 53, 999_999, '1', null, undefined),
        mode: fc.constantFrom<unknown>('ro', 'rw', 'rw', 'default', 'x', 5),
      }),
    ),
    ...times(
      3,
      step('attach', {
        pick: pickArb,
        shape: fc.constantFrom('whole', 'whole', 'offset', 'length', 'range', 'range', 'aligned', 'aligned', 'edge', 'edge', 'tail', 'past', 'end', 'bad'),
        a: fracArb,
        b: fracArb,
        bad: fc.constantFrom<unknown>(5, null, { offset: -1 }, { offset: '0' }, { length: 0 }, { length: 1.5 }, { offset: 2 ** 32 + 1 }),
      }),
    ),
    step('detach', { pick: pickArb }),
    step('release', { pick: pickArb }),
    step('touch', { pick: pickArb }),
    step('section', { pick: pickArb, ...sectionGen, bad: sectionBad, badType: fc.constantFrom('Object', 'DataView', 'Array'), badMode: fc.constantFrom<unknown>('wx', 1, null) }),
    ...times(3, step('section', { pick: pickArb, ...sectionGen })),
    step('map', { pick: pickArb, opts: waitArb }),
    step('mapCheck', { pick: pickArb, refresh: fc.boolean(), opts: waitArb }),
    ...times(6, step('vm', vmGen)),
    step('compact', { opts: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: badWaitArb }) }).map((s) => new Step('compact', { ...s.g, space: 0 })),
    step('notifierSpace', { how: fc.constantFrom('plain', 'async'), bad: badCallbacks }),
    ...times(2, step('notifierAtt', { pick: pickArb, how: fc.constantFrom('plain', 'plain', 'async'), bad: badCallbacks })),
    step('unregister', { pick: pickArb }),
    step('inspectSeg', { pick: pickArb }),
    step('inspect', { pick: pickArb, pick2: pickArb, pick3: pickArb }),
    step('nested', {
      pick: pickArb,
      outer: fc.record({ write: fc.boolean(), how: fc.constantFrom('fn', 'typed', 'section'), type: typeArb, lo: fracArb, hi: fracArb, seed: seedArb }),
      inner: fc.oneof(
        fc.record({ kind: fc.constant('section'), pick: pickArb, write: fc.boolean(), how: fc.constantFrom('fn', 'typed', 'section'), type: typeArb, lo: fracArb, hi: fracArb, seed: seedArb }),
        fc.record({ kind: fc.constant('vm'), ...vmGen, opts: fc.constant(undefined) }),
        fc.record({ kind: fc.constant('map'), pick: pickArb }),
        fc.record({ kind: fc.constant('detach'), pick: pickArb }),
      ),
    }),
    ...(limited
      ? []
      : [
          step('interleave', {
            pick: pickArb,
            pick2: pickArb,
            a: fc.record({ write: fc.boolean(), lo: fracArb, hi: fracArb, seed: seedArb }),
            b: fc.record({ lo: fracArb, hi: fracArb, seed: seedArb }),
          }),
        ]),
  ].map((arb) => (limited ? arb.map((st) => (st.g.how === 'async' && st.kind.startsWith('notifier') ? new Step(st.kind, { ...st.g, how: 'plain' }) : st)) : arb));

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

/**
 * A fresh domain for one run, joined by the long-lived agents; with `processes`, a shared domain
 * their hosts open, and a tally in a /dev/shm file.
 */
async function setup(list: Agent[], memoryLimit: number, processes: boolean): Promise<{ model: Model; real: Real }> {
  const name = processes ? sharedName() : undefined;
  const d = await Domain.create({
    arenaBytes: 64 << 10,
    maxArenaBytes: MAX_ARENA,
    deadlineMs: DEADLINE_MS,
    capacity: CAPS,
    ...(memoryLimit > 0 ? { memoryLimit } : {}),
    ...(name === undefined ? {} : { shared: name }),
  });
  const tallyBytes = MAX_NOTES * TALLY_WORDS * 4;
  const tallyPath = processes ? freshShmPath('tally') : undefined;
  const tallyBuffer = tallyPath === undefined ? new SharedArrayBuffer(tallyBytes) : mapShm(tallyPath, tallyBytes);
  const main = new FuzzSpace(d.space, tallyBuffer, (opts) => d.compact(opts));
  const model = new Model();
  model.limit = memoryLimit / UNIT;
  model.spaceIds = [d.space.id];
  const joining = name === undefined ? { handle: d.handle(), tally: tallyBuffer } : { shared: name, tally: tallyPath };
  for (const a of list) model.spaceIds.push(await a.call<number>('fuzzJoin', joining));
  return { model, real: { d, main, agents: list, tally: new Int32Array(tallyBuffer), tallyPath } };
}

/** Ends a run: every space releases and removes what it has; the domain must then be empty. */
async function finish(m: Model, r: Real): Promise<void> {
  try {
    for (let s = 0; s <= AGENTS; s++) {
      const got = await exec(r, s, { op: 'reset' });
      if (!got.ok) failRun(m, `${SPACE_NAMES[s]} reset: ${describeOutcome(got)}`);
    }
    const report = r.d.check();
    if (!report.ok) failRun(m, `domain.check() after the reset failed:\n  ${report.errors.join('\n  ')}`);
    const stats = r.d.stats();
    if (stats.segments !== 0 || stats.attachments !== 0 || stats.residentBytes !== 0) failRun(m, `the reset left ${JSON.stringify(stats)}`);
    const files = readdirSync(r.d.handle().swapDir);
    if (files.length !== 0) failRun(m, `the reset left swap files ${files.join(', ')}`);
  } finally {
    for (const a of r.agents) await a.call('fuzzLeave');
    await r.d.close();
    if (r.tallyPath !== undefined) rmSync(r.tallyPath);
  }
}

/** Runs `runs` random sequences on fresh domains (memoryLimit `limit` bytes, 0 for none) joined by `list` (host processes: `processes`). */
async function fuzz(list: Agent[], limit: number, runs: number, processes = false): Promise<void> {
  let done = 0;
  let steps = 0;
  let firstFailure: string | undefined;
  coverage.clear();
  try {
    await fc.assert(
      fc.asyncProperty(fc.commands(commandsFor(limit > 0), { maxCommands: MAX_COMMANDS, size: 'max' }), async (cmds) => {
        const { model, real } = await setup(list, limit, processes);
        done++;
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          steps += model.trace.length;
          if (process.env.FUZZ_TRACE) console.log(`RUN ${model.trace.length}\n${model.trace.join('\n')}`);
          await finish(model, real);
        } catch (error) {
          if (firstFailure === undefined) {
            firstFailure = (error as Error).message;
            console.log(`first failure (before shrinking):\n${firstFailure}`);
          }
          await finish(model, real).catch(() => {});
          throw error;
        }
      }),
      {
        numRuns: runs,
        // Shrinking a failure must end (and print its counterexample) before the test times out.
        interruptAfterTimeLimit: TIME_LIMIT_MS - 20_000,
        ...(process.env.FUZZ_SEED === undefined ? {} : { seed: Number(process.env.FUZZ_SEED), path: process.env.FUZZ_PATH }),
      },
    );
  } finally {
    console.log(`fuzz${processes ? ', agents in processes' : ''}${limit > 0 ? ` (memoryLimit ${limit} bytes)` : ''}: ${done} runs, ${steps} commands`);
    if (process.env.FUZZ_STATS !== undefined)
      console.log(
        [...coverage]
          .sort()
          .map(([k, n]) => `${String(n).padStart(6)}  ${k}`)
          .join('\n'),
      );
  }
}

describe.skipIf(PROCESSES_ONLY)('model-based fuzzing of the public API', () => {
  let home: Domain;
  let list: Agent[] = [];
  beforeAll(async () => {
    home = await Domain.create({ arenaBytes: 64 << 10 });
    list = await agents(home, new Gates(), AGENTS);
  });
  afterAll(() => teardown(home, list));

  it(`${RUNS} random sequences of up to ${MAX_COMMANDS} calls from the main thread and ${AGENTS} agents agree with the model`, () => fuzz(list, 0, RUNS), TIME_LIMIT_MS);

  it(`${LIMITED_RUNS} more under a memoryLimit of ${LIMIT >> 10} KiB, where allocations reclaim`, () => fuzz(list, LIMIT, LIMITED_RUNS), TIME_LIMIT_MS);
});

describe('model-based fuzzing of the public API, agents in processes', () => {
  let home: Domain;
  let gates: Gates;
  let list: Agent[] = [];
  beforeAll(async () => {
    const name = sharedName();
    home = await Domain.create({ shared: name, arenaBytes: 64 << 10, maxArenaBytes: 1 << 20 });
    gates = new Gates(true);
    list = await hosts(name, gates, AGENTS);
  });
  afterAll(async () => {
    try {
      await teardown(home, list);
    } finally {
      gates.remove();
      await cleanUpProcesses();
    }
  });

  it(
    `${PROCESS_RUNS} random sequences of up to ${MAX_COMMANDS} calls from the main thread and ${AGENTS} agents in processes agree with the model`,
    () => fuzz(list, 0, PROCESS_RUNS, true),
    TIME_LIMIT_MS,
  );

  it(`${PROCESS_LIMITED_RUNS} more under a memoryLimit of ${LIMIT >> 10} KiB, agents in processes`, () => fuzz(list, LIMIT, PROCESS_LIMITED_RUNS, true), TIME_LIMIT_MS);
});
