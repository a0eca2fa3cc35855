/**
 * Lost-write stress: writers increment counters in write sections while the owner migrates,
 * resizes and protects the segment under them. Every increment must survive. STRESS=long runs
 * far more increments.
 */
import { describe, expect, it } from 'vitest';
import { agents, domain, Gates, teardown } from './helpers.js';

const LONG = process.env.STRESS === 'long';
const TIMES = LONG ? 2_000_000 : 20_000;

describe('no lost write across VM operations', () => {
  it(`${TIMES} increments per writer survive concurrent migrate/resize/protect windows`, async () => {
    const d = await domain({ deadlineMs: 30_000 });
    const gates = new Gates();
    const writers = await agents(d, gates, 2);
    const seg = d.space.make(4096);
    const atts = await Promise.all(writers.map(async (w) => w.call('attach', { access: await w.call('get', { segId: seg.id }), range: { offset: 0, length: 64 } })));
    let done = false;
    const running = Promise.all(writers.map((w, i) => w.call(i === 0 ? 'increment' : 'incrementAsync', { att: atts[i], index: i, times: TIMES }, ))).finally(() => { done = true; });
    let ops = 0;
    const sizes = [4096, 8192, 128, 65536];
    while (!done) {
      await new Promise((resolve) => setImmediate(resolve)); // let the writers' answers in
      const k = ops++ % 3;
      if (k === 0) await seg.migrate();
      else if (k === 1) await seg.resize(sizes[ops % sizes.length]!);
      else await seg.protect('rw'); // a full invalidation that changes nothing: writers keep going
    }
    await running.catch(async (error) => { throw new Error(`writer failed after ${ops} VM operations: ${String(error)}`); });
    const counts = d.space.get(seg.id, 'ro').attach({ offset: 0, length: 64 }).read(Int32Array, (v) => [v[0], v[1]]);
    expect(counts).toEqual([TIMES, TIMES]);
    expect(ops).toBeGreaterThan(3);
    await teardown(d, writers);
  });
});
