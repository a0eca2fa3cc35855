/**
 * Invalidations with no callback notifier and no section inside, so the figure is the
 * protocol's own cost (record, seqcount window, acks, drain, end); and the same with 1,000
 * unrelated attachments (other segments, attached by this space) present in the domain.
 */
import { Domain } from '../../src/index.js';
import { atomicsPair, PAIR } from '../lib/baselines.js';
import { flips, flipsSync } from '../lib/flip.js';
import { measure } from '../lib/measure.js';
import { atMost, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const BATCH = 100;
const UNRELATED = 1000;

export const invalidation: Suite = {
  name: 'invalidation',
  title: 'invalidation round trip with no callback notifier; with 1,000 unrelated attachments',
  boundMs: 120_000,
  async run() {
    const plain = await Domain.create();
    const crowded = await Domain.create();
    const seg = plain.space.make(4096);
    const moved = plain.space.make(4096);
    const target = crowded.space.make(4096);
    const others = Array.from({ length: UNRELATED }, () => crowded.space.make(4096));
    for (const other of others) crowded.space.get(other.id, 'ro').attach();
    const t = await measure([
      atomicsPair(),
      flips('await seg.protect()', seg, BATCH),
      flipsSync('seg.protectSync()', seg, BATCH),
      { name: 'await seg.migrate(), 4 KiB', batch: BATCH, async: true, run: async () => { for (let i = 0; i < BATCH; i++) await moved.migrate(); } },
      flips('crowded: await seg.protect()', target, BATCH),
    ]);
    await plain.close();
    await crowded.close();
    const pair = ns(t.get(PAIR)!);
    const none = ns(t.get('await seg.protect()')!);
    return {
      rows: [
        row('invalidation', 'invalidation, no notifier, no section: await seg.protect()', none, PAIR, pair, atMost(50)),
        row('invalidation', 'seg.protectSync() (blocking form)', ns(t.get('seg.protectSync()')!), PAIR, pair),
        row('invalidation', 'await seg.migrate() of 4 KiB', ns(t.get('await seg.migrate(), 4 KiB')!), PAIR, pair),
        row('invalidation', `invalidation with ${UNRELATED.toLocaleString('en')} unrelated attachments present`, ns(t.get('crowded: await seg.protect()')!), 'the same with none', none, atMost(1.2)),
      ],
      curves: [],
    };
  },
};
