/**
 * parallel-sum: a piscina pool sums a Float64 segment in place, in slices, while the owner
 * migrates it midway; against a plain SharedArrayBuffer in workerData and against a structured
 * clone of each slice per task, all measured in this process. Tasks get ids and ranges, never data.
 * Run with `npm run example:parallel-sum` (MIB=<size> to change the 256 MiB default).
 */
import { Piscina } from 'piscina';
import { Domain } from '../src/index.js';
import { createPool } from '../src/pool.js';
import type { SumTask } from './sum-task.js';

const MIB = Number(process.env.MIB ?? 256);
const THREADS = 2;
const SLICES = 64;
const n = (MIB << 20) / 8;
const TASK = new URL('./sum-task.js', import.meta.url).href;
const expected = (n * (n - 1)) / 2; // every partial sum is an integer below 2^53: exact

function slices(): { from: number; to: number }[] {
  return Array.from({ length: SLICES }, (_, k) => ({ from: Math.floor((k * n) / SLICES), to: Math.floor(((k + 1) * n) / SLICES) }));
}

async function timed(label: string, run: () => Promise<number[]>): Promise<{ label: string; ms: number; sum: number }> {
  const t = performance.now();
  const sum = (await run()).reduce((a, b) => a + b, 0);
  return { label, ms: performance.now() - t, sum };
}

const domain = await Domain.create({ arenaBytes: (MIB << 20) + (1 << 20), maxArenaBytes: Math.min(2 ** 32 - 64, 3 * (MIB << 20)) });
const seg = domain.space.make(n * 8, { name: 'numbers' });
const mine = domain.space.get(seg.id).attach();
mine.write(Float64Array, (v) => {
  for (let i = 0; i < n; i++) v[i] = i;
});

const pool = createPool(domain, { filename: TASK, minThreads: THREADS, maxThreads: THREADS });
const shared = new SharedArrayBuffer(n * 8);
mine.read(Float64Array, (v) => {
  new Float64Array(shared).set(v);
}); // copied inside the section: its view is valid there only
const plain = new Piscina({ filename: new URL('./sum-task.js', import.meta.url).pathname, minThreads: THREADS, maxThreads: THREADS, atomics: 'async', workerData: { shared } });
await Promise.all([pool, plain].map((p) => Promise.all(Array.from({ length: THREADS }, () => p.run({ kind: 'cloned', values: new Float64Array(1) } satisfies SumTask)))));

const results = [];
results.push(await timed('xpmem segment', () => Promise.all(slices().map((s) => pool.run({ kind: 'segment', segId: seg.id, ...s } satisfies SumTask) as Promise<number>))));
let moved = false;
let moveMs = 0;
results.push(
  await timed('xpmem segment, migrated midway', async () => {
    let done = 0;
    let migration: Promise<void> | undefined;
    const parts = await Promise.all(
      slices().map(async (s) => {
        const part = (await pool.run({ kind: 'segment', segId: seg.id, ...s } satisfies SumTask)) as number;
        if (++done === SLICES / 2) {
          const began = performance.now();
          migration = seg.migrate().then(() => {
            moved = true;
            moveMs = performance.now() - began;
          });
        }
        return part;
      }),
    );
    await migration;
    return parts;
  }),
);
results.push(await timed('plain SharedArrayBuffer in workerData', () => Promise.all(slices().map((s) => plain.run({ kind: 'shared', ...s } satisfies SumTask) as Promise<number>))));
results.push(
  await timed('structured clone of each slice', () =>
    Promise.all(
      slices().map((s) => {
        const values = mine.read(Float64Array, (v) => v.slice(s.from, s.to));
        return plain.run({ kind: 'cloned', values } satisfies SumTask) as Promise<number>;
      }),
    ),
  ),
);

// What the move costs anyway: fresh memory, touched for the first time, plus the copy.
const began = performance.now();
const fresh = new SharedArrayBuffer(n * 8);
mine.read(Float64Array, (v) => {
  new Float64Array(fresh).set(v);
});
const freshMs = performance.now() - began;

const base = results[2]!.ms;
console.log(`parallel-sum: ${MIB} MiB of Float64 (${n} numbers), ${SLICES} slices on ${THREADS} threads; expected sum ${expected}`);
for (const r of results) {
  console.log(`  ${r.label.padEnd(40)} ${r.ms.toFixed(1).padStart(9)} ms  ${(base / r.ms).toFixed(2).padStart(5)}x of plain SAB  sum ${r.sum === expected ? 'correct' : `WRONG (${r.sum})`}`);
}
console.log(`  the segment ${moved ? 'was migrated while tasks ran' : 'was NOT migrated'}; ${domain.stats().invalidations} invalidation(s), check: ${domain.check().ok ? 'consistent' : 'BROKEN'}`);
console.log(`  the move itself took ${moveMs.toFixed(1)} ms (tasks wait it out): it copies ${MIB} MiB into arena memory never touched before;`);
console.log(`  a new ${MIB} MiB SharedArrayBuffer filled with the same bytes took ${freshMs.toFixed(1)} ms here, the floor of any move`);
mine.detach();
console.log(
  domain
    .formatMaps()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n'),
);
await Promise.all([pool.close(), plain.close()]);
await domain.settled();
await domain.close();
if (results.some((r) => r.sum !== expected) || !moved) process.exitCode = 1;
