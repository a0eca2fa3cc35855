/**
 * Invalidations as a program meets them: now and then (2 ms and 20 ms apart, so the attacher
 * has parked in its idle event loop), on an idle machine and with every core busy with another
 * process, each against a postMessage round trip to the same worker taken the same way in the
 * same run (interleaved with it). p50 and p90: a single slow wake-up is what users notice.
 * Beside them, the floor of any protocol that wakes a parked thread through shared memory: an
 * Atomics.waitAsync wake-up round trip to the same worker (it echoes from its event loop),
 * taken the same way and interleaved too.
 */
import { Domain } from '../../src/index.js';
import { Attachers } from '../lib/attachers.js';
import { measure, TIME_MS, type Timing } from '../lib/measure.js';
import { atMost, ns, p90, row, type Goal, type Row } from '../lib/rows.js';
import { loadEveryCore, spaced } from '../lib/spaced.js';
import type { Suite } from '../lib/suite.js';

const RTT = 'postMessage round trip to that worker';

/** Samples per figure 2 ms apart (a quarter of them 20 ms apart); BENCH_TIME_MS scales them. */
const SAMPLES = Math.max(40, Math.round(0.4 * TIME_MS));

const WHO = '1 callback attacher idle in its event loop: await seg.protect()';

/**
 * p50 and p90 of the invalidations at `pace` against the round trips, then of the wake-up
 * floor against them; `t` holds the three interleaved timings (invalidation, round trip, wake-up).
 */
function percentiles(pace: string, t: Map<string, Timing>, goal50: Goal, goal90?: Goal): Row[] {
  const [own, rtt, wake] = [...t.values()] as [Timing, Timing, Timing];
  const what = `invalidation ${pace}, ${WHO}`;
  const floor = `Atomics.waitAsync wake-up round trip to that worker ${pace} (the floor of a shared-memory wake-up)`;
  return [
    row('cold', `${what}, p50`, ns(own), `${RTT}, taken the same way, p50`, ns(rtt), goal50),
    row('cold', `${what}, p90`, p90(own), `${RTT}, taken the same way, p90`, p90(rtt), goal90),
    row('cold', `${floor}, p50`, ns(wake), `${RTT}, p50`, ns(rtt)),
    row('cold', `${floor}, p90`, p90(wake), `${RTT}, p90`, p90(rtt)),
  ];
}

export const cold: Suite = {
  name: 'cold',
  title: 'invalidations now and then (2 ms, 20 ms apart) with 1 idle callback attacher, idle and loaded machine',
  boundMs: 120_000,
  async run() {
    const domain = await Domain.create();
    const seg = domain.space.make(4096);
    const crew = new Attachers(domain);
    const [attacher] = await crew.spawn(1);
    await attacher!.call('attach', { segId: seg.id, notifier: true });
    let ro = false;
    const flip = (): Promise<void> => seg.protect((ro = !ro) ? 'ro' : 'rw');
    const ping = (): Promise<void> => attacher!.ping();
    const ring = (): Promise<void> => crew.ring();
    const three = (gapMs: number) => [spaced('inv', gapMs, flip), spaced('rtt', gapMs, ping), spaced('wake', gapMs, ring)];
    crew.go();
    await attacher!.call('echo');
    const idle = await measure(three(2), { samples: SAMPLES });
    const far = await measure(three(20), { samples: SAMPLES / 4 });
    const stopLoad = await loadEveryCore();
    let loaded: Map<string, Timing>;
    try {
      loaded = await measure(three(2), { samples: SAMPLES });
    } finally {
      await stopLoad();
    }
    crew.stop();
    await crew.retire();
    await domain.close();
    return {
      rows: [
        ...percentiles('now and then (2 ms apart)', idle, atMost(1)),
        ...percentiles('now and then (20 ms apart)', far, atMost(1)),
        ...percentiles('2 ms apart, every core busy with another process', loaded, atMost(1.5), atMost(2)),
      ],
      curves: [],
    };
  },
};
