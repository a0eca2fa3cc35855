/**
 * Reclaim under memoryLimit: page aging with a clock, and eviction by swap-out.
 *
 * The clock's hand (H_CLOCK) walks the segment table over resident, swappable segments that no
 * VM operation holds and this thread does not pin (its own sections, operations and unsettled
 * callbacks). A segment whose referenced bit is set (by sections, map(), touch(), or a
 * `referenced` answer) has it cleared and is passed over: a second chance. The spaces whose
 * notifiers cover it are asked whether they used it; their `referenced` callbacks run at their
 * next delivery point and set the bit again on true, and the clock waits for their answers (up
 * to ANSWER_MS) before its next turn. An unreferenced segment is a victim and is swapped out on
 * the non-blocking path, bounded by the caller's deadline and signal and by VICTIM_MS: the
 * operation lock is only tried, sections already inside and the victim's notifiers get at most
 * VICTIM_MS, and a victim that is busy or does not answer is skipped. Three turns at most: a
 * working set that was all referenced is reclaimed on the second, and one referenced again as
 * fast as the hand clears it on the third, which takes referenced segments too.
 *
 * When a reclaim frees nothing but what it lacks is held only for now (a section, another
 * operation, a victim that did not answer yet), the caller waits for that segment's lock to be
 * released (a short pause when a section held it) and reclaims again, until its deadline:
 * ERR_XPMEM_TIMEOUT then names the space that held the last busy victim; when no victim was
 * busy, the ERR_XPMEM_NO_MEMORY carries the fs error of a swap-out that failed as `cause`. It
 * fails with the attempt's ERR_XPMEM_NO_MEMORY at once only when even every segment it does not
 * pin itself would not cover the shortfall. Two threads reclaiming at once take different
 * victims: the hand moves for both, and a victim one of them holds is busy for the other.
 *
 * Runs in the thread that needed the memory, inside its own operation (make, resize, a fault),
 * never holding the operation lock of the segment it allocates for. May sleep (its waits are
 * yielded: a synchronous caller blocks, an asynchronous one awaits).
 */
import {
  H_CLOCK,
  H_LIMIT_UNITS,
  SEG_BLOCK,
  SEG_FLAGS,
  SEG_GEN,
  SEG_LIVE,
  SEG_OPLOCK,
  SEG_REF,
  SEG_STATE,
  SEGF_SWAPPABLE,
  SEGF_SWAPPED,
  SP_AGE,
  SP_AGED,
  SP_AGER,
  SP_STATE,
  SPACE_LIVE,
  UNIT,
  idOf,
  slotBase,
  slotOf,
  blame,
} from '../layout.js';
import { post } from '../sync/doorbell.js';
import { busyWith, invalidate, targetsOf, transaction, type Bounds } from '../notifier/invalidate.js';
import type { WaitFor, Waits } from '../notifier/wait.js';
import { deadlineIn, remaining } from '../sync/futex.js';
import { blamed, xpmemError, type XpmemError } from '../errors.js';
import { count, ST_RECLAIMS } from '../stats.js';
import { reclaimChannel, type ReclaimMessage } from '../diagnostics.js';
import { shortfallOf } from '../control/alloc.js';
import { swapOut, type SegmentRef } from './operations.js';
import type { Mm } from '../mm.js';

/** Turns of the clock per reclaim; the last one takes referenced segments too (the kernel's lowest priority). */
const TURNS = 3;

/** How long the clock waits, before its next turn, for the spaces it asked to answer `referenced`. */
export const ANSWER_MS = 100;

/** How long one victim may take: its notifiers' starts and the sections already inside it. */
export const VICTIM_MS = 100;

/** The first pause after a reclaim that found every victim busy; it doubles up to PAUSE_MAX_MS. */
const PAUSE_MS = 1;
const PAUSE_MAX_MS = 16;

/**
 * Runs `attempt`; when it fails over memoryLimit, reclaims what it lacked (never touching
 * segment slot `exclude`, the one it allocates for) and tries again, until `bounds.deadline`
 * (see the file comment for when it waits and when it fails). Without a memoryLimit it is
 * `attempt()` itself. May sleep.
 */
export function reclaiming<T>(mm: Mm, exclude: number, bounds: Bounds, attempt: () => Waits<T>): Waits<T> {
  return limited(mm) ? retried(mm, exclude, bounds, attempt) : attempt();
}

/** True when the domain has a memoryLimit (without one, nothing is ever reclaimed). Never sleeps. */
export function limited(mm: Mm): boolean {
  return Atomics.load(mm.words, H_LIMIT_UNITS) !== 0;
}

function* retried<T>(mm: Mm, exclude: number, bounds: Bounds, attempt: () => Waits<T>): Waits<T> {
  let blocker: Blocker | undefined;
  let failed: XpmemError | undefined;
  for (let round = 0; ; round++) {
    try {
      return yield* attempt();
    } catch (error) {
      const lack = shortfallOf(error);
      if (lack === undefined) throw error;
      if (bounds.signal?.aborted) throw xpmemError('ERR_XPMEM_ABORTED', `reclaim aborted: ${String(bounds.signal.reason)}`);
      if (remaining(bounds.deadline) === 0) throw stuck(mm, error as XpmemError, blocker, failed);
      const found = yield* reclaim(mm, lack.short, exclude, bounds);
      failed = found.failed ?? failed;
      if (found.freed > 0 || found.blocker?.kind === 'raced') {
        round = -1; // memory moved: try again at once
        continue;
      }
      if (yield* transaction(mm, bounds, bounds.deadline, () => outOfReach(mm, lack.units))) throw error; // nothing to wait for
      blocker = found.blocker ?? blocker;
      yield* backoff(mm, blocker, round, bounds);
    }
  }
}

/** What kept a victim from being swapped out, and the space (slot) holding it when known (-1 if not). */
interface Blocker {
  readonly kind: 'operation' | 'section' | 'answer' | 'raced';
  readonly seg: number;
  readonly space: number;
}

const WHY: Record<Blocker['kind'], string> = {
  operation: 'ran a VM operation on the segment it would swap out',
  section: 'held a section on the segment it would swap out',
  answer: 'kept the segment it would swap out from being invalidated in time',
  raced: 'swapped out the segment it chose first',
};

/**
 * The error at the deadline: ERR_XPMEM_TIMEOUT naming the space that held the last busy victim,
 * else the shortfall; when a swap-out failed for I/O (`failed`, an ERR_XPMEM_SWAP_IO), the
 * shortfall says so and carries its fs error as `cause`.
 */
function stuck(mm: Mm, shortfall: XpmemError, blocker: Blocker | undefined, failed: XpmemError | undefined): XpmemError {
  if (blocker === undefined && failed !== undefined) return Object.assign(xpmemError('ERR_XPMEM_NO_MEMORY', `${shortfall.message}; swapping out failed: ${failed.message}`), { cause: failed.cause });
  if (blocker === undefined) return shortfall;
  const about = blocker.space < 0 ? undefined : blame(mm.words, mm.layout, blocker.space);
  const who = about === undefined ? 'another thread' : blamed(about);
  return xpmemError('ERR_XPMEM_TIMEOUT', `${shortfall.message}, within the deadline: ${who} ${WHY[blocker.kind]}`, about);
}

/**
 * Waits before reclaiming again: until the blocking victim's operation lock is released, or
 * a pause that doubles each round (sections ring no one when they leave), or the deadline.
 * Answers this space's own events meanwhile; ERR_XPMEM_ABORTED when the signal fires.
 */
function* backoff(mm: Mm, blocker: Blocker | undefined, round: number, bounds: Bounds): Waits<void> {
  const pauseMs = Math.min(PAUSE_MAX_MS, PAUSE_MS * 2 ** round);
  const oplock = blocker?.kind === 'operation' ? slotBase(mm.layout.segments, blocker.seg) + SEG_OPLOCK : -1;
  yield* within(Math.min(bounds.deadline, deadlineIn(pauseMs)), {
    seg: blocker?.seg ?? -1, // woken when that segment's lock is released or its window ends
    deadline: bounds.deadline,
    signal: bounds.signal,
    until: () => oplock >= 0 && Atomics.load(mm.words, oplock) === 0,
  });
}

/** The marker a bounded pause's wait throws when its time is up. */
const RESUME = xpmemError('ERR_XPMEM_TIMEOUT', 'pause over');

/** Waits for `w` until `until` (before the caller's deadline): time up is not an error. */
function* within(until: number, w: Omit<WaitFor, 'timeout'>): Waits<void> {
  try {
    yield { ...w, deadline: until, timeout: () => RESUME };
  } catch (error) {
    if (error !== RESUME) throw error;
  }
}

/** What one reclaim did: units freed, the last victim that was only busy, and the last swap-out that failed for I/O. */
interface Reclaimed {
  readonly freed: number;
  readonly blocker: Blocker | undefined;
  readonly failed: XpmemError | undefined;
}

/** Swaps out unreferenced victims until `short` units are free. May sleep. */
export function* reclaim(mm: Mm, short: number, exclude: number, caller: Bounds): Waits<Reclaimed> {
  const began = performance.now();
  const victims: number[] = [];
  let freed = 0;
  let aged = 0;
  let blocker: Blocker | undefined;
  let failed: XpmemError | undefined;
  let asked: Asked[] = [];
  for (let turn = 0; turn < TURNS && freed < short; turn++) {
    if (asked.length > 0) yield* answers(mm, asked, caller); // let the asked spaces answer
    const scan = yield* transaction(mm, caller, caller.deadline, () => sweep(mm, short - freed, exclude, turn === TURNS - 1));
    aged += scan.aged;
    asked = scan.asked;
    blocker = scan.blocker ?? blocker;
    for (const v of scan.victims) {
      const bounds: Bounds = { deadline: Math.min(caller.deadline, deadlineIn(VICTIM_MS)), signal: caller.signal, sync: caller.sync, nonblocking: true };
      try {
        if (!(yield* invalidate(mm, { ...swapOut(mm.cb, mm.slot, v.ref), name: 'reclaim' }, bounds))) {
          blocker = { kind: 'raced', seg: v.ref.slot, space: -1 }; // swapped out meanwhile: memory moved
          continue;
        }
      } catch (error) {
        if (caller.signal?.aborted) throw error;
        const e = error as XpmemError;
        if (e.code === 'ERR_XPMEM_BUSY' || e.code === 'ERR_XPMEM_TIMEOUT') blocker = busyVictim(mm, v.ref.slot, e);
        if (e.code === 'ERR_XPMEM_SWAP_IO') failed = e;
        continue; // removed meanwhile, or a swap I/O error: not reclaimable now
      }
      freed += v.units;
      victims.push(v.ref.id);
      count(mm.words, ST_RECLAIMS);
    }
  }
  if (reclaimChannel.hasSubscribers) {
    reclaimChannel.publish({ neededBytes: short * UNIT, freedBytes: freed * UNIT, victims, aged, durationMs: performance.now() - began } satisfies ReclaimMessage);
  }
  return { freed, blocker, failed };
}

/** The blocker behind a victim's ERR_XPMEM_BUSY or ERR_XPMEM_TIMEOUT (which name the space by id). */
function busyVictim(mm: Mm, seg: number, e: XpmemError): Blocker {
  const space = e.space === undefined ? -1 : slotOf(mm.layout.spaces, e.space);
  return { kind: busyWith(e) ?? 'answer', seg, space };
}

/**
 * True when `units` more could never be resident: what stays resident whatever other threads
 * do (unswappable segments, and swappable ones this thread pins: its sections, operations and
 * unsettled callbacks) leaves less than that under the limit. Memory held by other threads'
 * sections and operations is not counted: they end. O(segments); only after a reclaim that
 * freed nothing. Takes the domain mutex.
 */
function outOfReach(mm: Mm, units: number): boolean {
  const { cb } = mm;
  const { segments } = cb.layout;
  return cb.transact(mm.slot, (tx) => {
    let pinned = 0;
    for (let s = 0; s < segments.capacity; s++) {
      const base = slotBase(segments, s);
      if (tx.get(base + SEG_STATE) !== SEG_LIVE || (tx.get(base + SEG_FLAGS) & SEGF_SWAPPED) !== 0) continue;
      const swappable = (tx.get(base + SEG_FLAGS) & SEGF_SWAPPABLE) !== 0;
      if (swappable && !mm.holds(s) && Atomics.load(cb.words, base + SEG_OPLOCK) !== mm.slot + 1 && !mm.unsettledFor(s)) continue;
      pinned += cb.allocator.length(tx, tx.get(base + SEG_BLOCK));
    }
    return pinned + units > tx.get(H_LIMIT_UNITS);
  });
}

/** A space the clock asked about referenced bits, and the question number it must answer. */
interface Asked {
  readonly space: number;
  readonly ask: number;
}

/**
 * Waits until every asked space answered its question (or is no longer live), up to
 * ANSWER_MS and the caller's deadline. Answering spaces ring us (SP_AGER). May sleep.
 */
function* answers(mm: Mm, asked: Asked[], caller: Bounds): Waits<void> {
  const { words, layout } = mm;
  const answered = (a: Asked): boolean => {
    const base = slotBase(layout.spaces, a.space);
    return Atomics.load(words, base + SP_STATE) !== SPACE_LIVE || ((Atomics.load(words, base + SP_AGED) - a.ask) | 0) >= 0;
  };
  yield* within(Math.min(caller.deadline, deadlineIn(ANSWER_MS)), { seg: -1, signal: caller.signal, until: () => asked.every(answered), deadline: caller.deadline });
}

/** One stretch of the clock: the victims it chose, the bits it cleared, and what it saw. */
interface Sweep {
  readonly victims: { ref: SegmentRef; units: number }[];
  readonly aged: number;
  readonly asked: Asked[];
  /** A candidate another thread's VM operation held. */
  readonly blocker: Blocker | undefined;
}

/**
 * From the hand, until victims worth `short` units are found or the table was walked once.
 * Clears the referenced bits it passes and asks the covering spaces to age them; with `force`,
 * referenced segments are victims too. Takes the domain mutex briefly.
 */
function sweep(mm: Mm, short: number, exclude: number, force: boolean): Sweep {
  const { cb } = mm;
  const { words, layout } = cb;
  const { segments } = layout;
  const asking = new Set<number>();
  const found = cb.transact(mm.slot, (tx) => {
    const victims: { ref: SegmentRef; units: number }[] = [];
    let units = 0;
    let aged = 0;
    let blocker: Blocker | undefined;
    let hand = tx.get(H_CLOCK) % segments.capacity;
    for (let n = 0; n < segments.capacity && units < short; n++, hand = (hand + 1) % segments.capacity) {
      const base = slotBase(segments, hand);
      if (hand === exclude || tx.get(base + SEG_STATE) !== SEG_LIVE) continue;
      if ((tx.get(base + SEG_FLAGS) & (SEGF_SWAPPABLE | SEGF_SWAPPED)) !== SEGF_SWAPPABLE) continue;
      const oplock = Atomics.load(words, base + SEG_OPLOCK);
      if (mm.holds(hand) || oplock === mm.slot + 1 || mm.unsettledFor(hand)) continue; // this thread's: it could only wait for itself
      if (oplock !== 0) {
        blocker = { kind: 'operation', seg: hand, space: oplock - 1 }; // another thread swaps, moves or faults it right now
        continue;
      }
      if (Atomics.exchange(words, base + SEG_REF, 0) !== 0 && !force) {
        aged++;
        for (const t of targetsOf(cb, tx.get.bind(tx), hand, { offset: 0, length: 2 ** 32 })) asking.add(t);
        continue;
      }
      const gen = tx.get(base + SEG_GEN);
      const size = cb.allocator.length(tx, tx.get(base + SEG_BLOCK));
      victims.push({ ref: { slot: hand, gen, id: idOf(segments, hand, gen) }, units: size });
      units += size;
    }
    tx.set(H_CLOCK, hand);
    return { victims, aged, blocker };
  });
  const asked: Asked[] = [];
  for (const t of asking) {
    const base = slotBase(layout.spaces, t);
    const ask = (Atomics.add(words, base + SP_AGE, 1) + 1) | 0;
    Atomics.store(words, base + SP_AGER, mm.slot + 1);
    post(words, layout, t);
    asked.push({ space: t, ask });
  }
  return { ...found, asked };
}
