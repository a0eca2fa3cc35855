/**
 * Invalidations that callback attachers must answer: workers with a range notifier on the
 * segment, idle in their event loops (delivery from the dispatcher) or busy in a loop of
 * sections (delivery inline at section boundaries), against a postMessage round trip to such a
 * worker and against the bare wake-up round trip a delivery phase needs; and how the cost grows
 * with the number of attachers (a curve, 1 to 64 workers).
 */
import { Domain, type Segment } from '../../src/index.js';
import { type Attacher, Attachers } from '../lib/attachers.js';
import { RING } from '../fixtures/protocol.js';
import { series, type Point } from '../lib/curve.js';
import { flips, flipsSync } from '../lib/flip.js';
import { measure, repeat, repeatAsync, type Task, type Timing } from '../lib/measure.js';
import { atMost, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

/** Attacher counts of the curve. 64 idle workers fit a 2-core machine: they only wake per event. */
const POINTS = [1, 2, 4, 8, 16, 32, 64];
const EIGHT = 8;
const RTT = 'postMessage round trip to that worker';
const ROUND_TRIPS = 64;
/** How long a spinning waker spins before it sleeps: longer than a wake-up takes. */
const SPIN_MS = 0.2;

/** Invalidations per sample with `n` attachers: fewer as each costs more. */
const batchFor = (n: number): number => Math.max(4, Math.round(64 / n));

/** Times awaited and blocking invalidations of `seg` with the current attachers. */
async function invalidations(seg: Segment, n: number): Promise<{ async: Timing; sync: Timing }> {
  const t = await measure([flips('async', seg, batchFor(n)), flipsSync('sync', seg, batchFor(n))]);
  return { async: t.get('async')!, sync: t.get('sync')! };
}

/** ROUND_TRIPS awaited calls of `trip` per sample. */
function trips(name: string, trip: () => Promise<void>): Task {
  return repeatAsync(name, ROUND_TRIPS, trip);
}

/** Round trips to an idle attacher: postMessage, and a doorbell ring answered from its event loop. */
async function roundTrips(crew: Attachers, first: Attacher): Promise<Map<string, Timing>> {
  crew.go();
  await first.call('echo');
  const t = await measure([
    trips('ping', () => first.ping()),
    trips('ring', () => crew.ring()),
    repeat('ringSync', ROUND_TRIPS, () => crew.ringSync()),
    repeat('ringSpin', ROUND_TRIPS, () => crew.ringSync(SPIN_MS)),
  ]);
  crew.stop();
  return t;
}

/**
 * The wake-up round trip of EIGHT idle workers at once (each echoes the ring from its event
 * loop, as a delivery phase answers; this thread waits with Atomics.waitAsync, as an awaited
 * invalidation with more targets than cores does): the floor of one phase with 8 targets.
 */
async function ringAll(crew: Attachers): Promise<Timing> {
  crew.go();
  await Promise.all(crew.list.slice(0, EIGHT).map((a) => a.call('echo')));
  const t = await measure([trips('ring8', () => crew.ring(EIGHT))]);
  crew.stop();
  return t.get('ring8')!;
}

/** Awaited invalidations while the attacher `first` runs sections in a loop. */
async function busyInvalidations(crew: Attachers, first: Attacher, seg: Segment): Promise<Timing> {
  crew.go();
  const sections = first.call('busy');
  const t = await measure([flips('busy', seg, batchFor(1))]);
  crew.stop();
  await sections;
  return t.get('busy')!;
}

/** The hand-rolled alternative with a busy worker: a flag it checks each iteration of a plain loop, acked with Atomics. */
async function busyFlagRounds(crew: Attachers, first: Attacher): Promise<Timing> {
  crew.go();
  const loop = first.call('busyFlag', { ring: Atomics.load(crew.words, RING) });
  const t = await measure([trips('flag', () => crew.ring())]);
  crew.stop();
  await loop;
  return t.get('flag')!;
}

export const attachers: Suite = {
  name: 'attachers',
  title: 'invalidation answered by callback attachers (idle, busy, 1 to 64 of them)',
  boundMs: 240_000,
  async run() {
    const domain = await Domain.create({ capacity: { spaces: Math.max(...POINTS) + 8 } });
    const seg = domain.space.make(4096);
    const crew = new Attachers(domain);
    const grow = async (n: number): Promise<void> => {
      await Promise.all((await crew.spawn(n)).map((a) => a.call('attach', { segId: seg.id, notifier: true })));
    };
    await grow(1);
    const first = crew.list[0]!;
    const trip = await roundTrips(crew, first);
    const idle = await invalidations(seg, 1);
    const busy = await busyInvalidations(crew, first, seg);
    const flag = await busyFlagRounds(crew, first);
    const async: Point[] = [{ x: 1, y: idle.async.ns, rme: idle.async.rme }];
    const sync: Point[] = [{ x: 1, y: idle.sync.ns, rme: idle.sync.rme }];
    let eightRings: Timing | undefined;
    for (const n of POINTS.slice(1)) {
      await grow(n);
      const t = await invalidations(seg, n);
      async.push({ x: n, y: t.async.ns, rme: t.async.rme });
      sync.push({ x: n, y: t.sync.ns, rme: t.sync.rme });
      if (n === EIGHT) eightRings = await ringAll(crew);
    }
    await crew.retire();
    await domain.close();

    const eight = async.find((p) => p.x === EIGHT)!;
    const floor8 = ns(eightRings!);
    const one = ns(idle.async);
    const rtt = ns(trip.get('ping')!);
    const wake = ns(trip.get('ring')!);
    return {
      rows: [
        row('attachers', 'invalidation back to back, 1 callback attacher idle in its event loop: await seg.protect()', one, `${RTT}, back to back`, rtt, atMost(0.2)),
        row('attachers', 'invalidation, 1 idle callback attacher: seg.protectSync()', ns(idle.sync), RTT, rtt),
        row('attachers', 'Atomics.waitAsync wake-up round trip (what a delivery phase waits for)', wake, RTT, rtt),
        row('attachers', 'Atomics.wait wake-up round trip (this thread blocking)', ns(trip.get('ringSync')!), RTT, rtt),
        row('attachers', 'wake-up round trip, this thread spinning (the floor of a delivery phase)', ns(trip.get('ringSpin')!), RTT, rtt),
        row('attachers', 'invalidation, 1 idle callback attacher, in wake-up round trips', one, 'Atomics.waitAsync wake-up round trip', wake),
        row('attachers', 'invalidation, 1 callback attacher busy in a loop of sections', ns(busy), `${RTT} (an idle worker: a busy one answers only when its loop ends)`, rtt, atMost(0.1)),
        row(
          'attachers',
          'invalidation, 1 callback attacher busy in a loop of sections (hand-rolled baseline)',
          ns(busy),
          'hand-rolled revoke: a flag a worker busy in a plain loop checks each iteration, acked with Atomics',
          ns(flag),
        ),
        row('attachers', 'invalidation, 8 callback attachers vs 1', { value: eight.y, unit: 'ns/op', rme: eight.rme }, 'the 1-attacher figure', one),
        row('attachers', 'Atomics.waitAsync wake-up round trip of 8 idle workers at once (one phase)', floor8, 'the 1-attacher figure', one),
        row(
          'attachers',
          'invalidation, 8 callback attachers, in 8-worker wake-up round trips (the owner waits for one phase, the starts: floor 1x)',
          { value: eight.y, unit: 'ns/op', rme: eight.rme },
          '8-worker wake-up round trip',
          floor8,
          atMost(2.2),
        ),
      ],
      curves: [
        {
          name: 'invalidation cost vs callback attachers',
          x: 'callback attachers',
          series: [series('await seg.protect()', 'ns/op', async), series('seg.protectSync()', 'ns/op', sync)],
          note: `${POINTS.join(', ')} workers, each idle in its event loop with one range notifier on the segment; all 64 fit a 2-core machine because idle attachers cost nothing until an event wakes them, but then their wake-ups share two cores`,
        },
      ],
    };
  },
};
