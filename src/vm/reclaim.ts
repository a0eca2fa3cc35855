/**
 * Reclaim under memoryLimit: page aging with a clock, and eviction by swap-out.
 *
 * The clock's hand (H_CLOCK) walks the segment table over resident, swappable segments that no
 * VM operation holds and this thread has no section on. A segment whose referenced bit is set
 * (by sections, map(), touch(), or a `referenced` answer) has it cleared and is passed over: a
 * second chance. The spaces whose notifiers cover it are asked, asynchronously, whether they used
 * it (their `referenced` callbacks run at their next delivery point and set the bit again on
 * true, before the hand comes back). An unreferenced segment is a victim and is swapped out on
 * the non-blocking path (try the operation lock, wait only briefly for sections already inside,
 * skip what is busy). Three turns at most: a working set that was all referenced is reclaimed on
 * the second, and one referenced again as fast as the hand clears it on the third, which takes
 * referenced segments too; when all it found was busy, the caller pauses and reclaims again.
 *
 * Runs in the thread that needed the memory, inside its own operation (make, resize, a fault),
 * never holding the operation lock of the segment it allocates for. May sleep (its waits are
 * yielded: a synchronous caller blocks, an asynchronous one awaits).
 */
import {
  H_CLOCK, H_LIMIT_UNITS, SEG_BLOCK, SEG_FLAGS, SEG_GEN, SEG_LIVE, SEG_OPLOCK, SEG_REF, SEG_STATE, SEGF_SWAPPABLE, SEGF_SWAPPED,
  SP_AGE, UNIT, idOf, slotBase,
} from '../layout.js';
import { post } from '../sync/doorbell.js';
import { invalidate, targetsOf, transaction, type Bounds } from '../notifier/invalidate.js';
import type { Waits } from '../notifier/wait.js';
import { deadlineIn, remaining } from '../sync/futex.js';
import { xpmemError } from '../errors.js';
import { count, ST_RECLAIMS } from '../stats.js';
import { reclaimChannel, type ReclaimMessage } from '../diagnostics.js';
import { shortfallOf } from '../control/alloc.js';
import { swapOut, type SegmentRef } from './operations.js';
import type { Mm } from '../mm.js';

/** Turns of the clock per reclaim; the last one takes referenced segments too (the kernel's lowest priority). */
const TURNS = 3;

/**
 * After a turn that cleared referenced bits, how long the clock waits for the covering spaces'
 * `referenced` answers before the next turn (an idle space answers within microseconds).
 */
const AGE_MS = 1;

/** Pause before reclaiming again when every candidate was busy (another thread is mid-operation on it). */
const PAUSE_MS = 2;

/**
 * Runs `attempt`; when it fails over memoryLimit, reclaims what it lacked (never touching
 * segment slot `exclude`, the one it allocates for) and tries again, until `bounds.deadline`.
 * When nothing could be freed but some candidate was only busy, it pauses briefly (answering its
 * own events) and tries again; it throws the attempt's ERR_XPMEM_NO_MEMORY when nothing is
 * reclaimable at all, or at the deadline. Without a memoryLimit it is `attempt()` itself. May sleep.
 */
export function reclaiming<T>(mm: Mm, exclude: number, bounds: Bounds, attempt: () => Waits<T>): Waits<T> {
  return limited(mm) ? retried(mm, exclude, bounds, attempt) : attempt();
}

/** True when the domain has a memoryLimit (without one, nothing is ever reclaimed). Never sleeps. */
export function limited(mm: Mm): boolean {
  return Atomics.load(mm.words, H_LIMIT_UNITS) !== 0;
}

function* retried<T>(mm: Mm, exclude: number, bounds: Bounds, attempt: () => Waits<T>): Waits<T> {
  for (;;) {
    try {
      return yield* attempt();
    } catch (error) {
      const short = shortfallOf(error);
      if (short === 0) throw error;
      if (remaining(bounds.deadline) === 0) throw error;
      const { freed, busy } = yield* reclaim(mm, short, exclude, bounds);
      if (freed > 0) continue;
      if (!busy) throw error;
      yield* pause(PAUSE_MS, bounds.deadline);
    }
  }
}

/** A marker thrown by pause()'s wait when its time is up. */
const RESUME = xpmemError('ERR_XPMEM_TIMEOUT', 'pause over');

/** Sleeps `ms` (at most until `deadline`) on this space's doorbell, answering its events. */
function* pause(ms: number, deadline: number): Waits<void> {
  const until = Math.min(deadline, deadlineIn(ms));
  try {
    yield { seg: -1, deadline: until, until: () => false, timeout: () => RESUME };
  } catch (error) {
    if (error !== RESUME) throw error;
  }
}

/**
 * Swaps out unreferenced victims until `short` units are free. Returns the units freed, and
 * whether some candidate was skipped only for being busy (worth another try). May sleep.
 */
export function* reclaim(mm: Mm, short: number, exclude: number, caller: Bounds): Waits<{ freed: number; busy: boolean }> {
  const began = performance.now();
  const victims: number[] = [];
  let freed = 0;
  let aged = 0;
  let busy = false;
  for (let turn = 0; turn < TURNS && freed < short; turn++) {
    if (turn > 0 && aged > 0) yield* pause(AGE_MS, caller.deadline); // let the asked spaces answer
    const scan = yield* transaction(mm, caller, caller.deadline, () => sweep(mm, short - freed, exclude, turn === TURNS - 1));
    aged += scan.aged;
    busy ||= scan.busy;
    for (const v of scan.victims) {
      const bounds: Bounds = { deadline: deadlineIn(mm.cb.deadlineMs), sync: caller.sync, nonblocking: true };
      try {
        if (!(yield* invalidate(mm, swapOut(mm.cb, mm.slot, v.ref), bounds))) continue;
      } catch (error) {
        const code = (error as { code?: string }).code;
        busy ||= code === 'ERR_XPMEM_BUSY' || code === 'ERR_XPMEM_TIMEOUT';
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
  return { freed, busy };
}

/**
 * One stretch of the clock: from the hand, until victims worth `short` units are found or the
 * table was walked once. Clears the referenced bits it passes and asks the covering spaces to
 * age them; with `force`, referenced segments are victims too. Takes the domain mutex briefly.
 */
function sweep(mm: Mm, short: number, exclude: number, force: boolean): { victims: { ref: SegmentRef; units: number }[]; aged: number; busy: boolean } {
  const { cb } = mm;
  const { words, layout } = cb;
  const { segments } = layout;
  const asked = new Set<number>();
  const found = cb.transact(mm.slot, (tx) => {
    const victims: { ref: SegmentRef; units: number }[] = [];
    let units = 0;
    let aged = 0;
    let busy = false;
    let hand = tx.get(H_CLOCK) % segments.capacity;
    for (let n = 0; n < segments.capacity && units < short; n++, hand = (hand + 1) % segments.capacity) {
      const base = slotBase(segments, hand);
      if (hand === exclude || tx.get(base + SEG_STATE) !== SEG_LIVE) continue;
      if ((tx.get(base + SEG_FLAGS) & (SEGF_SWAPPABLE | SEGF_SWAPPED)) !== SEGF_SWAPPABLE) continue;
      const oplock = Atomics.load(words, base + SEG_OPLOCK);
      if (mm.holds(hand) || oplock === mm.slot + 1 || mm.unsettledFor(hand)) continue; // this thread's: it could only wait for itself
      if (oplock !== 0) {
        busy = true; // another thread swaps, moves or faults it right now
        continue;
      }
      if (Atomics.exchange(words, base + SEG_REF, 0) !== 0 && !force) {
        aged++;
        for (const t of targetsOf(cb, tx.get.bind(tx), hand, { offset: 0, length: 2 ** 32 })) asked.add(t);
        continue;
      }
      const gen = tx.get(base + SEG_GEN);
      const size = cb.allocator.length(tx, tx.get(base + SEG_BLOCK));
      victims.push({ ref: { slot: hand, gen, id: idOf(segments, hand, gen) }, units: size });
      units += size;
    }
    tx.set(H_CLOCK, hand);
    return { victims, aged, busy };
  });
  for (const t of asked) {
    Atomics.store(words, slotBase(layout.spaces, t) + SP_AGE, 1);
    post(words, layout, t);
  }
  return found;
}
