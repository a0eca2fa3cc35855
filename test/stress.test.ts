/**
 * Lost-write stress: writers increment counters in write sections (one sync, one async) while
 * the owner runs a mix of VM operations under them: migrate, resize, protect, swap-out (the
 * writers fault it back in) and compaction (a filler made and removed below opens a hole).
 * Every increment must survive. STRESS=long: 10 million increments against at least 1,000
 * VM operations.
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, domain, Gates, teardown } from './helpers.js';

const LONG = process.env.STRESS === 'long';
const TIMES = LONG ? 5_000_000 : 20_000;
/** Bound of the whole run (the long one takes about a minute on a busy 2-core machine). */
const LIMIT = LONG ? 20 * BOUND : BOUND;

describe('no lost write across VM operations', () => {
  it(`${2 * TIMES} increments survive migrate, resize, protect, swap and compaction windows`, async () => {
    const d = await domain({ deadlineMs: 30_000, arenaBytes: 4 << 20 });
    const gates = new Gates();
    const writers = await agents(d, gates, 2);
    const seg = d.space.make(4096);
    const atts = await Promise.all(writers.map(async (w) => w.call('attach', { access: await w.call('get', { segId: seg.id }), range: { offset: 0, length: 64 } })));
    let done = false;
    const running = Promise.all(writers.map((w, i) => w.call(i === 0 ? 'increment' : 'incrementAsync', { att: atts[i], index: i, times: TIMES }, LIMIT))).finally(() => { done = true; });
    const sizes = [4096, 8192, 128, 65536];
    const kinds: Record<string, number> = {};
    const mix: [string, () => Promise<unknown>][] = [
      ['migrate', () => seg.migrate()],
      ['resize', () => seg.resize(sizes[(kinds.resize ?? 0) % sizes.length]!)],
      ['protect', () => seg.protect('rw')], // a full invalidation that changes nothing: writers keep going
      ['swap', () => seg.swapOut()],
      ['compact', async () => { await d.space.make(64 * 1024).remove(); return d.compact(); }],
    ];
    let ops = 0;
    while (!done) {
      await new Promise((resolve) => setImmediate(resolve)); // let the writers' answers in
      const [kind, op] = mix[ops++ % mix.length]!;
      await op();
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    await running.catch(async (error) => { throw new Error(`writer failed after ${ops} VM operations: ${String(error)}`); });
    const counts = d.space.get(seg.id, 'ro').attach({ offset: 0, length: 64 }).read(Int32Array, (v) => [v[0], v[1]]);
    expect(counts).toEqual([TIMES, TIMES]);
    expect(ops).toBeGreaterThan(LONG ? 1_000 : 5);
    expect(d.stats().faults).toBeGreaterThan(0);
    if (LONG) console.log(`stress: ${2 * TIMES} increments, ${ops} VM operations`, kinds, d.stats());
    await teardown(d, writers);
  }, LIMIT + BOUND);
});
