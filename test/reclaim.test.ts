/**
 * Reclaim and compaction: the clock picks unreferenced victims (sections and `referenced`
 * answers protect a segment), memoryLimit holds under writers with a working set four times
 * larger and nothing is lost, compaction under writers loses nothing and closes the holes.
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, domain, expectCode, Gates, teardown, type Agent } from './helpers.js';
import type { Domain, Segment } from '../src/index.js';

const KIB64 = 64 * 1024;
const long = process.env.STRESS === 'long';

/** Attaches every segment in `segs` read-write in agent `a`; returns the attachment keys. */
async function attachAll(a: Agent, segs: Segment[]): Promise<number[]> {
  const keys: number[] = [];
  for (const s of segs) keys.push(await a.call<number>('attach', { access: await a.call('get', { segId: s.id, mode: 'rw' }), range: {} }));
  return keys;
}

/** Runs `batch()` `times` times (each a burst of concurrent work), checking the invariants after each. */
async function checkedBatches(d: Domain, times: number, batch: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < times; i++) {
    await batch();
    const report = d.check();
    if (!report.ok) throw new Error(report.errors.join('\n'));
  }
}

function counters(d: Domain, seg: Segment): number[] {
  return Array.from(d.space.get(seg.id, 'ro').attach({ offset: 0, length: 8 }).read(Int32Array, (v) => [...v]));
}

describe('reclaim', () => {
  it('passes over a segment a section used since the clock last cleared it', async () => {
    const d = await domain({ memoryLimit: 3 * KIB64 });
    try {
      const [a, b, c] = [d.space.make(KIB64), d.space.make(KIB64), d.space.make(KIB64)];
      const attB = d.space.get(b!.id).attach();
      d.space.make(KIB64); // the clock clears a, b and c, then swaps out a, the first it finds unreferenced
      expect([a!.swapped, b!.swapped, c!.swapped]).toEqual([true, false, false]);
      attB.read(() => {}); // b is used again; c is not
      d.space.make(KIB64);
      expect([b!.swapped, c!.swapped]).toEqual([false, true]);
      expect(d.stats().reclaims).toBe(2);
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('passes over a segment whose attacher answers referenced() with true', async () => {
    const d = await domain({ memoryLimit: 3 * KIB64 });
    const [agent] = await agents(d, new Gates(), 1);
    try {
      const [a, b, c] = [d.space.make(KIB64), d.space.make(KIB64), d.space.make(KIB64)];
      const att = await agent!.call('attach', { access: await agent!.call('get', { segId: b!.id, mode: 'ro' }), range: {} });
      await agent!.call('notifier', { att, how: 'plain', tag: 1, referenced: true });
      d.space.make(KIB64); // clears b's bit and asks the agent
      await agent!.until((e) => e.event === 'referenced' && e.segId === b!.id, 'referenced() asked');
      await agent!.call('space'); // the answer was stored before the agent read its next message
      d.space.make(KIB64);
      expect([a!.swapped, b!.swapped, c!.swapped]).toEqual([true, false, true]);
    } finally {
      await teardown(d, [agent!]);
    }
  });

  it('never swaps out a segment its own thread holds a section on: NO_MEMORY instead, domain unchanged', async () => {
    const d = await domain({ memoryLimit: 2 * KIB64 });
    try {
      const a = d.space.make(KIB64);
      d.space.make(KIB64, { swappable: false });
      const att = d.space.get(a.id).attach();
      att.read(() => expect(() => d.space.make(KIB64)).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_NO_MEMORY' })));
      expect(a.swapped).toBe(false);
      d.space.make(KIB64);
      expect(a.swapped).toBe(true);
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('make() refuses at once a size the limit can never hold, and bad wait options, swapping nothing out', async () => {
    const d = await domain({ memoryLimit: 2 * KIB64 });
    try {
      const a = d.space.make(KIB64);
      await expectCode(() => d.space.make(3 * KIB64), 'ERR_XPMEM_NO_MEMORY');
      await expectCode(() => d.space.make(KIB64, { deadlineMs: -1 }), 'ERR_OUT_OF_RANGE');
      await expectCode(() => d.space.make(KIB64, { signal: 'stop' as unknown as AbortSignal }), 'ERR_INVALID_ARG_TYPE');
      expect(a.swapped).toBe(false);
      expect(d.stats()).toMatchObject({ segments: 1, swappedSegments: 0 });
      d.space.make(2 * KIB64, { deadlineMs: 1000 }); // exactly the limit: the other one goes
      expect(a.swapped).toBe(true);
      expect(d.check().errors).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('a segment grown in place stays within memoryLimit even when memory was taken after the resize began', async () => {
    const d = await domain({ memoryLimit: KIB64 });
    try {
      const hole = d.space.make(8 << 10);
      d.space.make(40 << 10, { swappable: false });
      const grown = d.space.make(16 << 10, { swappable: false }); // free space after it: it grows in place
      await hole.remove();
      let taken = false;
      d.space.get(grown.id).attach().notifier({
        // Inside the window, before the resize applies: 4 KiB more resident (60 of 64 KiB).
        invalidateStart() { if (!taken) { taken = true; d.space.make(4 << 10, { swappable: false }); } },
        invalidateEnd() {},
      });
      await expectCode(() => grown.resize(24 << 10), 'ERR_XPMEM_NO_MEMORY'); // 8 KiB more would be 68 KiB
      expect(grown.bytes).toBe(16 << 10);
      expect(d.stats().residentBytes).toBeLessThanOrEqual(KIB64);
      expect(d.check().errors).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('a resize that must move under memoryLimit reclaims first and runs one invalidation, not a rolled-back one and a retry', async () => {
    const d = await domain({ memoryLimit: KIB64 });
    try {
      const grown = d.space.make(16 << 10);
      d.space.make(64, { swappable: false }); // right after it: it cannot grow in place
      const victim = d.space.make(40 << 10);
      const starts: string[] = [];
      d.space.get(grown.id).attach().notifier({ invalidateStart: (r) => { starts.push(r.event); }, invalidateEnd() {} });
      const before = d.stats().invalidations;
      await grown.resize(20 << 10); // moving holds 16 + 20 KiB: the victim must go first
      expect(grown.bytes).toBe(20 << 10);
      expect(victim.swapped).toBe(true);
      expect(starts).toEqual(['resize']);
      expect(d.stats().invalidations - before).toBe(2); // the victim's swap-out and the resize
      expect(d.check().errors).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('keeps resident bytes under a limit 4x smaller than the working set while writers fault, and loses no write', async () => {
    const d = await domain({ memoryLimit: 4 * KIB64, arenaBytes: 2 << 20 });
    const list = await agents(d, new Gates(), 2);
    try {
      const segs = Array.from({ length: 16 }, (_, i) => d.space.make(KIB64, { name: `ws${i}` }));
      const batches = long ? 200 : 6;
      const keys = await Promise.all(list.map((a) => attachAll(a, segs)));
      await checkedBatches(d, batches, () => Promise.all(list.map((a, i) => a.call('incrementEach', { atts: keys[i], index: i, rounds: 10 }))));
      for (const s of segs) expect(counters(d, s).slice(0, 2)).toEqual([batches * 10, batches * 10]);
      const stats = d.stats();
      expect(stats.residentBytes).toBeLessThanOrEqual(4 * KIB64);
      expect(stats.faults).toBeGreaterThan(16);
      expect(stats.reclaims).toBeGreaterThan(16);
    } finally {
      await teardown(d, list);
    }
  }, 4 * BOUND);
});

describe('compaction', () => {
  it('closes the holes while writers run, and loses no write', async () => {
    const d = await domain({ arenaBytes: 2 << 20 });
    const list = await agents(d, new Gates(), 2);
    try {
      const segs = Array.from({ length: 10 }, () => d.space.make(KIB64));
      for (const i of [0, 2, 4, 6]) await segs[i]!.remove();
      const kept = segs.filter((_, i) => ![0, 2, 4, 6].includes(i));
      const rounds = long ? 20_000 : 400;
      const keys = await Promise.all(list.map((a) => attachAll(a, kept)));
      const work = Promise.all(list.map((a, i) => a.call('incrementEach', { atts: keys[i], index: i, rounds })));
      const first = await d.compact();
      await work;
      const second = await d.compact();
      expect(first.moved + second.moved).toBeGreaterThan(0);
      for (const s of kept) expect(counters(d, s).slice(0, 2)).toEqual([rounds, rounds]);
      const rows = d.maps().filter((r) => r.kind === 'segment').sort((x, y) => x.offset - y.offset);
      expect(rows.map((r) => r.offset)).toEqual(rows.map((_, i) => i * KIB64)); // packed from the start
      expect(d.stats().compacted).toBe(first.moved + second.moved);
      await expectCode(() => d.compact({ deadlineMs: -1 }), 'ERR_OUT_OF_RANGE');
    } finally {
      await teardown(d, list);
    }
  });
});
