/**
 * Invalidations as a program meets them: now and then (2 ms and 20 ms apart, so the attacher
 * has parked in its idle event loop), on an idle machine and with every core busy with another
 * process, each against a postMessage round trip to the same worker taken the same way in the
 * same run (interleaved with it). p50 and p90: a single slow wake-up is what users notice.
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

/** p50 and p90 rows of `own` against `rtt`. */
function percentiles(what: string, own: Timing, rtt: Timing, goal50: Goal, goal90?: Goal): Row[] {
  return [row('cold', `${what}, p50`, ns(own), `${RTT}, taken the same way, p50`, ns(rtt), goal50), row('cold', `${what}, p90`, p90(own), `${RTT}, taken the same way, p90`, p90(rtt), goal90)];
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
    const idle = await measure([spaced('inv 2', 2, flip), spaced('rtt 2', 2, ping)], { samples: SAMPLES });
    const far = await measure([spaced('inv 20', 20, flip), spaced('rtt 20', 20, ping)], { samples: SAMPLES / 4 });
    const stopLoad = await loadEveryCore();
    let loaded: Map<string, Timing>;
    try {
      loaded = await measure([spaced('inv loaded', 2, flip), spaced('rtt loaded', 2, ping)], { samples: SAMPLES });
    } finally {
      await stopLoad();
    }
    await crew.retire();
    await domain.close();
    const who = '1 callback attacher idle in its event loop: await seg.protect()';
    return {
      rows: [
        ...percentiles(`invalidation now and then (2 ms apart), ${who}`, idle.get('inv 2')!, idle.get('rtt 2')!, atMost(1)),
        ...percentiles(`invalidation now and then (20 ms apart), ${who}`, far.get('inv 20')!, far.get('rtt 20')!, atMost(1)),
        ...percentiles(`invalidation 2 ms apart, every core busy with another process, ${who}`, loaded.get('inv loaded')!, loaded.get('rtt loaded')!, atMost(1.5), atMost(2)),
      ],
      curves: [],
    };
  },
};
