/**
 * Per-operation cost against the number of segments present (10 to 100,000): make, get,
 * attach and invalidate, each paired with its inverse so the count stays put. One domain whose
 * tables hold the largest point, so only the count changes between points.
 */
import { Domain } from '../../src/index.js';
import { series, type Point } from '../lib/curve.js';
import { flipsSync } from '../lib/flip.js';
import { measure, repeat, TIME_MS } from '../lib/measure.js';
import type { Suite } from '../lib/suite.js';

const POINTS = [10, 100, 1000, 10_000, 100_000];
const CAPACITY = 2 ** 17;
const BATCH = 100;
const BYTES = 64;

export const segments: Suite = {
  name: 'segments',
  title: 'make/get/attach/invalidate cost vs segments present',
  boundMs: 180_000,
  async run() {
    const domain = await Domain.create({ capacity: { segments: CAPACITY } });
    const { space } = domain;
    const target = space.make(BYTES);
    const access = space.get(target.id, 'ro');
    const tasks = [
      repeat('make + removeSync', BATCH, () => space.make(BYTES).removeSync()),
      repeat('get + release', BATCH, () => space.get(target.id, 'ro').release()),
      repeat('attach + detach', BATCH, () => access.attach().detach()),
      flipsSync('protectSync (one invalidation)', target, BATCH),
    ];
    const points = new Map<string, Point[]>(tasks.map((t) => [t.name, []]));
    let present = 1;
    for (const n of POINTS) {
      for (; present < n; present++) space.make(BYTES);
      const t = await measure(tasks, { timeMs: TIME_MS / 2 });
      for (const [name, list] of points) list.push({ x: n, y: t.get(name)!.ns, rme: t.get(name)!.rme });
    }
    await domain.close();
    return {
      rows: [],
      curves: [
        {
          name: 'per-operation cost vs segments present',
          x: 'segments present',
          series: [...points].map(([name, list]) => series(name, 'ns/op', list)),
          note: `${POINTS.map((n) => n.toLocaleString('en')).join(', ')} segments of ${BYTES} bytes, all in one domain with capacity.segments ${CAPACITY.toLocaleString('en')} (other tables default); blocking forms, no notifier`,
        },
      ],
    };
  },
};
