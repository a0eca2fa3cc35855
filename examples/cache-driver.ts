/**
 * cache-driver: a worker keeps derived state of a segment (a mapped view and the sum of its
 * bytes) and drops it in invalidateStart, rebuilding after invalidateEnd. The owner swaps it out,
 * compacts, resizes and migrates it, and makes filler segments under a memoryLimit that holds
 * only three of them, so reclaim evicts segments too. After every step the worker answers from
 * its cache and the owner checks the answer against what the bytes must be: it is never stale.
 * Run with `npm run example:cache-driver` (STEPS=<n> for more steps).
 */
import { once } from 'node:events';
import { Domain, type Segment } from '../src/index.js';

const MIB = 1 << 20;
const STEPS = Number(process.env.STEPS ?? 200);
const pattern = (i: number): number => (i * 7 + 3) & 255;

/** A small deterministic generator, so every run does the same steps. */
let seed = 12345;
const random = (n: number): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return (seed >>> 8) % n;
};

const domain = await Domain.create({ arenaBytes: 8 * MIB, memoryLimit: 3 * MIB, deadlineMs: 5_000 });
const seg = domain.space.make(MIB, { name: 'cached' });
const init = domain.space.get(seg.id);
init.attach().write((v) => {
  for (let i = 0; i < v.length; i++) v[i] = pattern(i);
});
init.release();
let length = MIB;
let patternEnd = MIB; // bytes past a shrink come back as zeros when the segment grows again

const worker = domain.spawn(new URL('./cache-worker.js', import.meta.url), { workerData: { segId: seg.id } });
await once(worker, 'message');

const fillers: Segment[] = [];
const steps: Record<string, () => Promise<void>> = {
  'swap out': () => seg.swapOut(),
  migrate: () => seg.migrate(),
  compact: async () => {
    await domain.compact();
  },
  resize: async () => {
    length = (1 + random(8)) * (MIB / 8) - random(1000);
    patternEnd = Math.min(patternEnd, length);
    await seg.resize(length);
  },
  'make a filler': async () => {
    const f = domain.space.make(MIB, { name: 'filler' });
    const fill = domain.space.get(f.id);
    fill.attach().write((v) => {
      v.fill(0xee);
    }); // what a stale view would read
    fill.release();
    fillers.push(f);
  },
  'remove a filler': async () => {
    await fillers.splice(random(fillers.length + 1), 1)[0]?.remove();
  },
};
const names = Object.keys(steps);
const counts: Record<string, number> = {};
let stale = 0;
let answered = 0;
let last = { drops: 0, rebuilds: 0 };
const t0 = performance.now();
for (let step = 0; step < STEPS; step++) {
  const name = names[random(names.length)]!;
  await steps[name]!();
  counts[name] = (counts[name] ?? 0) + 1;
  const peek = Array.from({ length: 16 }, () => random(length));
  worker.postMessage({ peek });
  const [answer] = (await once(worker, 'message')) as [{ length: number; sum: number; peek: number[]; drops: number; rebuilds: number }];
  let sum = 0;
  for (let i = 0; i < patternEnd; i++) sum += pattern(i);
  const expected = peek.map((i) => (i < patternEnd ? pattern(i) : 0));
  if (answer.length !== length || answer.sum !== sum || answer.peek.some((v, k) => v !== expected[k])) stale++;
  answered++;
  last = answer;
}
const ms = performance.now() - t0;
const stats = domain.stats();
console.log(`cache-driver: ${STEPS} owner steps in ${ms.toFixed(0)} ms under a ${stats.memoryLimit / MIB} MiB memoryLimit`);
console.log(
  `  steps: ${Object.entries(counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`,
);
console.log(`  the worker answered ${answered} queries from its cache: ${stale} stale; it dropped the cache ${last.drops} times and rebuilt it ${last.rebuilds} times`);
console.log(
  `  resident ${(stats.residentBytes / MIB).toFixed(2)} MiB (limit ${stats.memoryLimit / MIB} MiB), swapped ${(stats.swappedBytes / MIB).toFixed(2)} MiB in ${stats.swappedSegments} segment(s)`,
);
console.log(
  `  swap-outs ${stats.swapOuts} (reclaim victims ${stats.reclaims}), swap-ins ${stats.swapIns} (faults ${stats.faults}), compacted ${stats.compacted}, invalidations ${stats.invalidations}, waits p50 ${stats.waitP50Ms} ms p99 ${stats.waitP99Ms} ms`,
);
const rows = domain.formatMaps().split('\n');
console.log([rows[0], ...rows.filter((line) => / cached$/.test(line) || / live +filler$/.test(line))].map((line) => `  ${line}`).join('\n'));
await worker.terminate();
await domain.settled();
console.log(`  check: ${domain.check().ok ? 'consistent' : 'BROKEN'}`);
await domain.close();
if (stale > 0) process.exitCode = 1;
