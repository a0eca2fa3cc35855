/**
 * The control block: one Int32Array over a SharedArrayBuffer, laid out here and nowhere else.
 *
 * Word classes (a word is in exactly one):
 *  - [tx]     written only under the domain mutex, through a Tx (journaled, so a thread that
 *             dies mid-update never leaves a table half-written: the reaper replays or drops it);
 *  - [atomic] written with Atomics outside the mutex by the protocol's fast paths (seq, doorbells,
 *             held-section slots, ack masks); never written through a Tx.
 *
 * Every table is fixed-capacity; slot i of table T starts at `T.base + i * T.stride`.
 * Public ids encode (generation, slot) as `gen * capacity + slot`, so a stale id never names a
 * reused slot.
 */

export const MAGIC = 0x58504d45; // 'XPME'
/** 7: a space's doorbell sleepers (SP_SLEEPERS: a ring wakes only when one may sleep), the trace's collecting process and stop deadline. 6: shared domains (the space words of its process and reaper), the trace and slowMs header words, and the space words of the callback a space runs and the trace it recorded in. */
export const VERSION = 9;

/** Bytes per arena unit: a cache line. One 32-bit word of units addresses 128 GiB. */
export const UNIT = 64;

/** The largest segment, in bytes. */
export const MAX_SEGMENT_BYTES = 2 ** 31 - 1;

// ---- header ---------------------------------------------------------------------------
export const H_MAGIC = 0; // MAGIC
export const H_VERSION = 1; // VERSION
export const H_MAX_SPACES = 2; // capacities, fixed at create
export const H_MAX_SEGMENTS = 3;
export const H_MAX_GRANTS = 4;
export const H_MAX_ATTACHMENTS = 5;
export const H_MAX_NOTIFIERS = 6;
export const H_MAX_INVALIDATIONS = 7;
export const H_MAX_DEPTH = 8; // held-section slots per space (max section nesting)
export const H_MAX_BLOCKS = 9; // allocator block records
export const H_JOURNAL_CAP = 10; // journal capacity in (index, value) pairs
export const H_MUTEX = 11; // [atomic] domain mutex: holder space slot + 1, 0 = free
export const H_MUTEX_WAITERS = 12; // [atomic] how many threads sleep on the mutex word (mutex.ts sleeping())
export const H_JOURNAL_LEN = 13; // [atomic] committed journal pairs not yet fully applied
export const H_REGSEQ = 14; // [tx] notifier registration sequence
export const H_CLOSED = 15; // [atomic] 1 once domain.close() began
export const H_ARENA_UNITS = 16; // [tx] arena size in units
export const H_MAX_ARENA_UNITS = 17; // arena limit in units
export const H_SEG_FREE = 18; // [tx] free-list heads (slot, -1 = empty)
export const H_GRANT_FREE = 19;
export const H_ATT_FREE = 20;
export const H_NOTIFIER_FREE = 21;
export const H_INV_FREE = 22;
export const H_SPACE_FREE = 23;
export const H_ID = 24; // random domain id: join() is idempotent per (thread, domain)
export const H_ALLOC = 25; // allocator header (see arena.ts), ALLOC_HEADER_WORDS long
export const ALLOC_HEADER_WORDS = 40;
export const H_LIMIT_UNITS = H_ALLOC + ALLOC_HEADER_WORDS; // memoryLimit in units (0 = none), fixed at create
export const H_CLOCK = H_LIMIT_UNITS + 1; // [tx] the reclaim clock's hand: next segment slot to scan
export const H_SPACE_TOP = H_CLOCK + 1; // [tx] 1 + the highest space slot ever joined: scans of the space table stop there
export const H_RECORD_WAITERS = H_SPACE_TOP + 1; // [atomic] operations waiting for a free invalidation record (record.ts)
export const H_STATS = H_RECORD_WAITERS + 1; // [atomic] counters, STAT_* words (stats.ts)
export const STAT_WORDS = 40;
export const H_TRACE = H_STATS + STAT_WORDS; // [atomic] the session of the trace recording now (trace/session.ts), 0 = none, -1 = one starting
export const H_TRACE_EVENTS = H_TRACE + 1; // [atomic] the events each thread buffers for that trace, set with it
export const H_SLOW_MS = H_TRACE_EVENTS + 1; // slowMs: how long an operation waits before xpmem:slow reports it, fixed at create
export const H_FRESH_UNITS = H_SLOW_MS + 1; // [atomic] arena units from here on were never handed out: still zero (raised, under the mutex, before a block past it is written)
export const H_TRACE_COLLECTOR = H_FRESH_UNITS + 1; // [atomic] the pid of the process whose trace() made the last trace: its processes hand none over (trace/session.ts)
export const H_TRACE_STOP_MS = H_TRACE_COLLECTOR + 1; // [atomic] the deadline its stop() gave, in ms: how long the other processes gather theirs
export const H_JOINER_START = H_TRACE_STOP_MS + 1; // [atomic] the start time of the process of the joining thread that holds the mutex (mutex.ts lock), 0 = none published
export const H_JOINER_THREAD = H_JOINER_START + 1; // [atomic] that thread's kernel thread in one word (robust.ts joiningThread), 0 = a main thread
export const H_JOINER_OWNER = H_JOINER_THREAD + 1; // [atomic] the mutex identity whose the two above are, stored after them; 0 = none (cleared first)
export const HEADER_WORDS = H_JOINER_OWNER + 1;

// ---- space table: one per joined thread (an mm_struct) ---------------------------------
export const SP_STATE = 0; // [tx] FREE / LIVE / DEAD
export const SP_GEN = 1; // [tx] bumped at each reuse of the slot
export const SP_THREAD = 2; // [tx] worker threadId (0 = main thread)
export const SP_NEXT = 3; // [tx] free-list link
export const SP_NOTIFIERS = 4; // [tx] space-wide notifiers registered by this space
export const SP_DOORBELL = 5; // [atomic] the one word this space sleeps on; += 1 per ring
export const SP_EVENTS = 6; // [atomic] 1 when invalidation events may be pending for it
export const SP_WAIT_ANY = 7; // [atomic] waits of this space on a segment other than section entries
export const SP_AGE = 8; // [atomic] questions of the reclaim clock to its `referenced` callbacks: += 1 per ask (with SP_EVENTS)
export const SP_AGED = 9; // [atomic] the SP_AGE value this space last answered
export const SP_AGER = 10; // [atomic] space slot + 1 of the clock that asked last: rung when answered
export const SP_PARKED = 11; // [atomic] blocking waits asleep now, | an async wait armed and no sign of life since, | spinning for its acks (spin.ts)
export const SP_RECORD_WAIT = 12; // [atomic] operations of this space waiting for a free invalidation record (record.ts)
export const SP_PID = 13; // [tx] the process of its thread (-pid once that process left the domain: close())
export const SP_PSTART = 14; // [tx] that process's start time (clock ticks since boot, mod 2^31): a reused pid is not it
export const SP_REAPER = 15; // [atomic] space slot + 1 of the space reaping it (the one reap of a dead space), 0 = none
export const SP_CALLBACK = 16; // [atomic] the callback this space runs: (segment slot + 1) * 8 + CALLBACK_*, 0 = none (notifier/busy.ts)
export const SP_CALLBACK_SINCE = 17; // [atomic] when it began: Date.now() in ms, low 32 bits
export const SP_TRACED = 18; // [atomic] the trace session this space last recorded an event in, negated once its exiting thread sent them (trace/session.ts)
export const SP_SLEEPERS = 19; // [atomic] waits of this space on its doorbell, counted before each looks at the word to sleep (doorbell.ts); never reset: a wait of a slot's earlier thread may still count itself out
export const SP_TID = 20; // [tx] a worker thread's kernel id (gettid), 0 for a main thread or a threads-only domain: its liveness (the process's main thread lives as long as the process)
export const SP_TSTART = 21; // [tx] that thread's start time (clock ticks since boot, mod 2^31): a reused tid is not it
export const SP_HELD = 22; // [atomic] MAX_DEPTH words: segment slot + 1 per held section, | HELD_*
export const SP_FIXED = 22;

/**
 * SP_HELD word flags. A section entry that must wait out a window parks in its own held word
 * as (segment slot + 1) | HELD_WANT; the window's end may turn it HELD_GRANTED, which counts as
 * a held section (sync/rwlock.ts, sync/doorbell.ts).
 */
export const HELD_SEG_MASK = (1 << 29) - 1;
export const HELD_WANT = 1 << 29;
export const HELD_GRANTED = 1 << 30;

export const SPACE_FREE = 0;
export const SPACE_LIVE = 1;
export const SPACE_DEAD = 2;

// ---- segment table (vma + page flags) ---------------------------------------------------
export const SEG_STATE = 0; // [tx] FREE / LIVE / REMOVED (a swapped-out segment is LIVE with SEGF_SWAPPED)
export const SEG_GEN = 1; // [tx]
export const SEG_OWNER = 2; // [tx] owner space slot
export const SEG_NEXT = 3; // [tx] free-list link
export const SEG_BLOCK = 4; // [tx] allocator block, -1 when not resident
export const SEG_UNIT = 5; // [tx] arena offset in units (copy of the block's, for the fast path)
export const SEG_BYTES = 6; // [tx] length in bytes
export const SEG_PERMIT = 7; // [tx] what get() may grant others: PERMIT_*
export const SEG_PROT = 8; // [tx] current protection (protect()): PERMIT_*
export const SEG_FLAGS = 9; // [tx] SEGF_*
export const SEG_RMAP = 10; // [tx] first attachment slot on this segment (-1 = none)
export const SEG_VIEWGEN = 11; // [tx] bumped whenever offset, length or protection change
export const SEG_SEQ = 12; // [atomic] seqcount: odd inside an invalidation window; never reset
export const SEG_DRAINER = 13; // [atomic] space slot + 1 draining this segment
export const SEG_WAITERS = 14; // [atomic] 1 while some space waits for the window to end
export const SEG_OPLOCK = 15; // [atomic] space slot + 1 running a VM operation on it
export const SEG_REF = 16; // [atomic] referenced bit: set by sections, map(), touch(); cleared by the clock
export const SEG_GRANTS = 17; // [tx] first grant slot on this segment (-1 = none): its grant list
export const SEG_NOTIFIERS = 18; // [tx] range notifiers on its attachments (the sum of their AT_NOTIFIERS)
export const SEG_NAME = 19; // [tx] NAME_WORDS words: the make() name, UTF-8, zero-padded (maps())
export const NAME_WORDS = 6;
export const SEG_FIELDS = SEG_NAME + NAME_WORDS;

export const SEG_FREE = 0;
export const SEG_LIVE = 1;
export const SEG_REMOVED = 2; // revoked; slot freed once its last invalidation ended

export const SEGF_SWAPPABLE = 1;
export const SEGF_SWAPPED = 2; // not resident: its bytes are in its swap file, SEG_BLOCK = -1
export const SEGF_SWAPFILE = 4; // its swap file exists (kept after a swap-in as its swap slot; deleted with the segment)

export const PERMIT_NONE = 0;
export const PERMIT_RO = 1;
export const PERMIT_RW = 2;

// ---- grant table (apid) ----------------------------------------------------------------
export const GR_STATE = 0; // [tx] 0 free, GR_LIVE
export const GR_LIVE = 1;
export const GR_GEN = 1; // [tx]
export const GR_SPACE = 2; // [tx] holder space slot
export const GR_SEG = 3; // [tx] segment slot
export const GR_SEGGEN = 4; // [tx] segment generation at get()
export const GR_MODE = 5; // [tx] PERMIT_RO / PERMIT_RW
export const GR_NEXT = 6; // [tx] free-list link
export const GR_SNEXT = 7; // [tx] the segment's grant list: next grant on the same segment (-1 = last)
export const GR_SPREV = 8; // [tx] previous grant on the same segment (-1 = first)
export const GR_FIELDS = 9;

// ---- attachment table (the reverse map's entries) ----------------------------------------
export const AT_STATE = 0; // [tx] 0 free, AT_LIVE
export const AT_LIVE = 1;
export const AT_GEN = 1; // [tx]
export const AT_SPACE = 2; // [tx]
export const AT_SEG = 3; // [tx] segment slot
export const AT_GRANT = 4; // [tx] grant slot
export const AT_OFFSET = 5; // [tx] bytes into the segment
export const AT_LENGTH = 6; // [tx] bytes
export const AT_NOTIFIERS = 7; // [tx] range notifiers registered on it
export const AT_NEXT = 8; // [tx] rmap link (live) or free-list link (free)
export const AT_PREV = 9; // [tx] rmap back link
export const AT_FIELDS = 10;

// ---- notifier table ----------------------------------------------------------------------
export const NT_STATE = 0; // [tx] 0 free, NT_LIVE
export const NT_LIVE = 1;
export const NT_GEN = 1; // [tx]
export const NT_SPACE = 2; // [tx] registering space slot
export const NT_ATT = 3; // [tx] attachment slot, -1 = space-wide
export const NT_REGSEQ = 4; // [tx] registration sequence (orders it against invalidations)
export const NT_NEXT = 5; // [tx] free-list link
export const NT_FIELDS = 6;

// ---- invalidation table: one record per VM operation in flight ------------------------------
export const IV_STATE = 0; // [tx] IV_FREE / IV_START, then [atomic] START -> END (record.ts), then [tx] FREE
export const IV_GEN = 1; // [tx]
export const IV_SEG = 2; // [tx] segment slot
export const IV_OFFSET = 3; // [tx] invalidated range, bytes
export const IV_LENGTH = 4; // [tx]
export const IV_EVENT = 5; // [tx] EVENT_* index
export const IV_SNAP = 6; // [tx] H_REGSEQ when targets were chosen
export const IV_INVALIDATOR = 7; // [tx] space slot waiting for acks
export const IV_NEXT = 8; // [tx] free-list link
export const IV_MASKS = 9; // then TARGETS [tx], STARTED [atomic], ENDED [atomic]: maskWords each

export const IV_FREE = 0;
export const IV_START = 1;
export const IV_END = 2;

/** The masks of a record, in IV_MASKS order: the spaces it targets, and those that acked each phase. */
export const TARGETS = 0;
export const STARTED = 1;
export const ENDED = 2;

/** Word `w` of the targets of record `r` not yet in ack mask `which` (a bit per space slot). Any thread. */
export function unackedWord(words: Int32Array, layout: Layout, r: number, which: number, w: number): number {
  return Atomics.load(words, maskAt(layout, r, TARGETS, w)) & ~Atomics.load(words, maskAt(layout, r, which, w));
}

/** True while segment slot `seg` still holds generation `segGen`, live. Any thread. */
export function segmentLive(words: Int32Array, layout: Layout, seg: number, segGen: number): boolean {
  return slotIs(words, slotBase(layout.segments, seg), segGen, SEG_LIVE);
}

/** Word index of mask `which` (TARGETS / STARTED / ENDED) of record `r`, word `w`. */
export function maskAt(layout: Layout, r: number, which: number, w: number): number {
  return slotBase(layout.invalidations, r) + IV_MASKS + which * layout.maskWords + w;
}

/** Why a range is being invalidated; IV_EVENT holds its index in EVENTS. */
export type InvalidateEvent = 'remove' | 'migrate' | 'resize' | 'protect' | 'swap' | 'release';

export const EVENTS: readonly InvalidateEvent[] = ['remove', 'migrate', 'resize', 'protect', 'swap', 'release'];

// ---- allocator block records (arena.ts) ------------------------------------------------------
export const BLOCK_FIELDS = 7;

/** Capacities chosen at Domain.create; everything else derives from them. */
export interface Capacities {
  /** Joined threads at once (default 64). */
  spaces: number;
  /** Segments at once (default 4096). */
  segments: number;
  /** Permits held at once, by all spaces (default 8192). */
  grants: number;
  /** Attachments at once, by all spaces (default 8192). */
  attachments: number;
  /** Registered notifiers at once (default 4096). */
  notifiers: number;
  /** Invalidation records in use at once (default 64): one per watched VM operation until every target ran its end. */
  invalidations: number;
  /** Nested sections per thread (default 8). */
  depth: number;
  /** Control-block words one transaction may write, in (index, value) pairs (default 8192). */
  journal: number;
}

/** A table's place in the control block. */
export interface Table {
  readonly base: number;
  readonly stride: number;
  readonly capacity: number;
}

/** Word offsets of every table, derived from the capacities in the header. */
export interface Layout {
  readonly caps: Capacities;
  readonly maskWords: number;
  readonly spaces: Table;
  readonly segments: Table;
  readonly grants: Table;
  readonly attachments: Table;
  readonly notifiers: Table;
  readonly invalidations: Table;
  readonly blocks: Table;
  readonly journal: number;
  readonly words: number;
}

/** Computes the layout for `caps`; the same caps always give the same layout. */
export function layoutFor(caps: Capacities): Layout {
  const maskWords = Math.ceil(caps.spaces / 32);
  let at = HEADER_WORDS;
  const table = (capacity: number, stride: number): Table => {
    const t = { base: at, stride, capacity };
    at += capacity * stride;
    return t;
  };
  const spaces = table(caps.spaces, SP_FIXED + caps.depth);
  const segments = table(caps.segments, SEG_FIELDS);
  const grants = table(caps.grants, GR_FIELDS);
  const attachments = table(caps.attachments, AT_FIELDS);
  const notifiers = table(caps.notifiers, NT_FIELDS);
  const invalidations = table(caps.invalidations, IV_MASKS + 3 * maskWords);
  const blocks = table(2 * caps.segments + 2, BLOCK_FIELDS);
  const journal = at;
  at += 2 * caps.journal;
  return { caps, maskWords, spaces, segments, grants, attachments, notifiers, invalidations, blocks, journal, words: at };
}

/** Reads the capacities back from a control block's header (joiners use this). */
export function capacitiesOf(cb: Int32Array): Capacities {
  return {
    spaces: cb[H_MAX_SPACES]!,
    segments: cb[H_MAX_SEGMENTS]!,
    grants: cb[H_MAX_GRANTS]!,
    attachments: cb[H_MAX_ATTACHMENTS]!,
    notifiers: cb[H_MAX_NOTIFIERS]!,
    invalidations: cb[H_MAX_INVALIDATIONS]!,
    depth: cb[H_MAX_DEPTH]!,
    journal: cb[H_JOURNAL_CAP]!,
  };
}

/** First word of slot `slot` in `table`. */
export function slotBase(table: Table, slot: number): number {
  return table.base + slot * table.stride;
}

/** How a slot's word is read without the mutex: Atomics.load (a replay of a commit in tests). */
export type Load = (words: Int32Array, index: number) => number;

/**
 * Whether the slot at `base` holds generation `gen` in state `state`, read without the mutex
 * (every table keeps its state at field 0 and its generation at field 1). The state is read
 * first: a commit that reuses a slot writes its new generation before its state (takeSlot), so a
 * reader that sees the new state then sees the new generation, and a stale handle never reads as
 * live. Read the other way, the old generation and the new state could pair up. Any thread.
 */
export function slotIs(words: Int32Array, base: number, gen: number, state: number, load: Load = Atomics.load): boolean {
  return load(words, base) === state && load(words, base + 1) === gen;
}

/** How many space slots scans must cover (1 + the highest slot ever joined). Any thread. */
export function spaceTop(words: Int32Array): number {
  return Atomics.load(words, H_SPACE_TOP);
}

/** Public id of (slot, generation). */
export function idOf(table: Table, slot: number, gen: number): number {
  return gen * table.capacity + slot;
}

/** Public id of the space in slot `slot`, as its Space.id reads. Any thread. */
export function spaceIdAt(words: Int32Array, layout: Layout, slot: number): number {
  return idOf(layout.spaces, slot, Atomics.load(words, slotBase(layout.spaces, slot) + SP_GEN));
}

/** Whom an error blames: a space by its public id, its thread and its process. */
export interface Blame {
  /** The space's public id, as its Space.id reads. */
  readonly space: number;
  /** The worker threadId of the space's thread (0 for the main thread). */
  readonly threadId: number;
  /** The pid of the space's process. */
  readonly pid: number;
}

/** The space in slot `slot` as an error blames it: its public id, its thread and process, as they read now. Any thread. */
export function blame(words: Int32Array, layout: Layout, slot: number): Blame {
  const base = slotBase(layout.spaces, slot);
  return { space: spaceIdAt(words, layout, slot), threadId: Atomics.load(words, base + SP_THREAD), pid: Math.abs(Atomics.load(words, base + SP_PID)) };
}

/** Slot named by a public id (its generation must still be checked). */
export function slotOf(table: Table, id: number): number {
  return id % table.capacity;
}

/** Generation named by a public id. */
export function genOf(table: Table, id: number): number {
  return Math.floor(id / table.capacity);
}
