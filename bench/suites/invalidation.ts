/**
 * Invalidations with no callback notifier and no section inside, so the figure is the
 * protocol's own cost (operation lock, seqcount window, drain check, the change): on a segment
 * nobody attached (unwatched), on one with an attachment (watched, as segments in use are),
 * and on one with 1,000 attachments of its own, none with a notifier; and against those
 * steps' atomics alone, with nothing around them. And what tracing costs: the watched
 * invalidation in a domain whose trace ran and stopped (off), and in one recording (on).
 */
import { Domain, type Segment } from '../../src/index.js';
import { atomicsPair, PAIR, WINDOW, windowAtomics } from '../lib/baselines.js';
import { flips, flipsSync } from '../lib/flip.js';
import { measure } from '../lib/measure.js';
import { atMost, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';
import type { Task } from '../lib/measure.js';

const BATCH = 100;
const MANY = 1000;
/** Samples between restarts of the recording trace: 100 x BATCH invalidations fill a third of its buffer. */
const RESTART = 100;

/** A watched segment of a domain of its own (tracing figures). */
async function watchedAlone(): Promise<{ domain: Domain; seg: Segment }> {
  const domain = await Domain.create();
  const seg = domain.space.make(4096);
  domain.space.get(seg.id, 'ro').attach();
  return { domain, seg };
}

/**
 * `flips` of `seg` while a trace of `domain` records, restarted every RESTART samples so its
 * bounded buffer never fills (a full buffer records nothing more); the restarting sample is
 * slower, and the median passes over it.
 */
function tracedFlips(name: string, domain: Domain, seg: Segment): { task: Task; stop: () => Promise<unknown> } {
  const flip = flips(name, seg, BATCH);
  let tracing = domain.trace();
  let samples = 0;
  const run = async (): Promise<void> => {
    if (++samples % RESTART === 0) {
      await tracing.stop();
      tracing = domain.trace();
    }
    await flip.run();
  };
  return { task: { ...flip, run }, stop: () => tracing.stop() };
}

export const invalidation: Suite = {
  name: 'invalidation',
  title: 'invalidation round trip with no callback notifier: unwatched, watched, 1,000 attachments',
  boundMs: 120_000,
  async run() {
    const domain = await Domain.create({ capacity: { attachments: 2 * MANY } });
    const unwatched = domain.space.make(4096);
    const watched = domain.space.make(4096);
    domain.space.get(watched.id, 'ro').attach();
    const moved = domain.space.make(4096);
    domain.space.get(moved.id, 'ro').attach();
    const crowded = domain.space.make(4096);
    const access = domain.space.get(crowded.id, 'ro');
    for (let i = 0; i < MANY; i++) access.attach();
    const off = await watchedAlone();
    await off.domain.trace().stop();
    const on = await watchedAlone();
    const traced = tracedFlips('tracing on', on.domain, on.seg);
    const t = await measure([
      atomicsPair(),
      windowAtomics(),
      flips('unwatched', unwatched, BATCH),
      flips('watched', watched, BATCH),
      flipsSync('watched sync', watched, BATCH),
      {
        name: 'migrate',
        batch: BATCH,
        async: true,
        run: async () => {
          for (let i = 0; i < BATCH; i++) await moved.migrate();
        },
      },
      flips('crowded', crowded, BATCH),
      flips('tracing off', off.seg, BATCH),
      traced.task,
    ]);
    await traced.stop();
    await Promise.all([domain.close(), off.domain.close(), on.domain.close()]);
    const pair = ns(t.get(PAIR)!);
    const one = ns(t.get('watched')!);
    return {
      rows: [
        row('invalidation', 'invalidation, watched (1 attachment, no notifier, no section): await seg.protect()', one, PAIR, pair, atMost(50)),
        row('invalidation', "an invalidation's atomics alone (lock, seqcount odd, holders' check, the change, seqcount even, unlock)", ns(t.get(WINDOW)!), PAIR, pair),
        row('invalidation', 'invalidation, watched: await seg.protect(), against its atomics alone', one, WINDOW, ns(t.get(WINDOW)!)),
        row('invalidation', 'invalidation, unwatched (no attachment): await seg.protect()', ns(t.get('unwatched')!), PAIR, pair),
        row('invalidation', 'seg.protectSync(), watched (the blocking form)', ns(t.get('watched sync')!), PAIR, pair),
        row('invalidation', 'await seg.migrate() of 4 KiB, watched', ns(t.get('migrate')!), PAIR, pair),
        row('invalidation', `invalidation of a segment with ${MANY.toLocaleString('en')} attachments (no notifier)`, ns(t.get('crowded')!), 'the same with 1 attachment', one, atMost(1.2)),
        row('invalidation', 'invalidation, watched, tracing off (after a trace ran and stopped)', ns(t.get('tracing off')!), 'the same, never traced', one, atMost(1.1)),
        row('invalidation', 'invalidation, watched, tracing on (its span and phases recorded)', ns(t.get('tracing on')!), 'the same, never traced', one),
      ],
      curves: [],
    };
  },
};
