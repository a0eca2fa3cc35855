/**
 * Piscina: the sum of a 256 MiB Float64 segment on 2 threads, in slices, with an xpmem pool
 * (createPool: tasks get the segment id and a range and read in place), against a plain Piscina
 * reading a SharedArrayBuffer from workerData, and against a plain Piscina sent a structured
 * clone of each slice per task.
 */
import { Piscina } from 'piscina';
import { Domain } from '../../src/index.js';
import { createPool } from '../../src/pool.js';
import type { Slice } from '../fixtures/sum.js';
import { BOUND_MS } from '../lib/attachers.js';
import { bounded } from '../lib/bounded.js';
import { measure, TIME_MS } from '../lib/measure.js';
import { atLeast, bandwidth, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const BYTES = 256 * 2 ** 20;
const N = BYTES / 8;
const THREADS = 2;
const SLICES = 16;
const TASKS = new URL('../fixtures/sum.js', import.meta.url);
/** Sum of 0 .. N-1: every partial sum is an integer below 2^53, so the check is exact. */
const EXPECTED = (N * (N - 1)) / 2;

const slices: readonly Slice[] = Array.from({ length: SLICES }, (_, k) => ({ from: (k * N) / SLICES, to: ((k + 1) * N) / SLICES }));

/** Runs one task per slice and checks the total. */
async function sumAll(run: (s: Slice) => Promise<number>): Promise<void> {
  const parts = await Promise.all(slices.map(run));
  const sum = parts.reduce((a, b) => a + b, 0);
  if (sum !== EXPECTED) throw new Error(`pool sum ${sum}, expected ${EXPECTED}`);
}

export const pool: Suite = {
  name: 'pool',
  title: 'piscina sum of a 256 MiB segment on 2 threads',
  boundMs: 180_000,
  async run() {
    const domain = await Domain.create({ arenaBytes: BYTES + 2 ** 20 });
    const seg = domain.space.make(BYTES);
    const numbers = new Float64Array(N);
    for (let i = 0; i < N; i++) numbers[i] = i;
    const shared = new SharedArrayBuffer(BYTES);
    new Float64Array(shared).set(numbers);
    const mine = domain.space.get(seg.id, 'rw').attach();
    mine.write(Float64Array, (v) => v.set(numbers));
    mine.detach();
    const xpmem = createPool(domain, { filename: TASKS.href, name: 'segment', minThreads: THREADS, maxThreads: THREADS });
    const plain = new Piscina({ filename: TASKS.href, minThreads: THREADS, maxThreads: THREADS, workerData: { shared } });
    const budget = { timeMs: TIME_MS * 2, iterations: 6 };
    const t = await measure(
      [
        { name: 'shared', batch: 1, async: true, run: () => sumAll((s) => plain.run(s, { name: 'shared' })) },
        { name: 'segment', batch: 1, async: true, run: () => sumAll((s) => xpmem.run({ ...s, segId: seg.id })) },
        { name: 'cloned', batch: 1, async: true, run: () => sumAll((s) => plain.run(numbers.slice(s.from, s.to), { name: 'cloned' })) },
      ],
      budget,
    );
    await bounded(Promise.all([xpmem.close(), plain.close()]), 'closing the pools', BOUND_MS);
    await bounded(domain.settled(), 'reaping pool workers', BOUND_MS);
    await domain.close();
    const gbs = (name: string) => bandwidth(t.get(name)!, BYTES);
    return {
      rows: [
        row('pool', 'piscina sum of a 256 MiB segment, 2 threads (createPool)', gbs('segment'), 'plain SharedArrayBuffer in workerData', gbs('shared'), atLeast(0.95)),
        row('pool', 'piscina sum of a 256 MiB segment, against per-task copies', gbs('segment'), 'structured clone of each slice per task', gbs('cloned'), atLeast(5, '>= 5x faster')),
        row('pool', 'plain SharedArrayBuffer against per-task copies (the ceiling of the above)', gbs('shared'), 'structured clone of each slice per task', gbs('cloned')),
      ],
      curves: [],
    };
  },
};
