/**
 * Reclaim and compaction: the clock picks unreferenced victims (sections and `referenced`
 * answers protect a segment), memoryLimit holds under writers with a working set four times
 * larger and nothing is lost, compaction under writers loses nothing and closes the holes.
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, domain, expectCode, Gates, segSlot, spaceSlot, teardown, until, type Agent } from './helpers.js';
import { capacitiesOf, layoutFor, SEG_SEQ, SP_AGE, slotBase } from '../src/layout.js';
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

/** The seqcount of segment `segId` (white box: moves by two per invalidation window). */
function segSeq(d: Domain, segId: number): number {
  const words = new Int32Array(d.handle().control);
  return Atomics.load(words, slotBase(layoutFor(capacitiesOf(words)).segments, segSlot(d, segId)) + SEG_SEQ);
}

/** First word of space `spaceId`'s slot in `d`'s control block. */
function spaceBase(d: Domain, spaceId: number): number {
  return slotBase(layoutFor(capacitiesOf(new Int32Array(d.handle().control))).spaces, spaceSlot(d, spaceId));
}

function counters(d: Domain, seg: Segment): number[] {
  return Array.from(
    d.space
      .get(seg.id, 'ro')
      .attach({ offset: 0, length: 8 })
      .read(Int32Array, (v) => [...v]),
  );
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
      d.space
        .get(grown.id)
        .attach()
        .notifier({
          // Inside the window, before the resize applies: 4 KiB more resident (60 of 64 KiB).
          invalidateStart() {
            if (!taken) {
              taken = true;
              d.space.make(4 << 10, { swappable: false });
            }
          },
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
      d.space
        .get(grown.id)
        .attach()
        .notifier({
          invalidateStart: (r) => {
            starts.push(r.event);
          },
          invalidateEnd() {},
        });
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

  it(
    'keeps resident bytes under a limit 4x smaller than the working set while writers fault, and loses no write',
    async () => {
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
    },
    4 * BOUND,
  );
});

describe('reclaim under contention (when it waits, when it fails)', () => {
  it(
    'two threads faulting two segments under a one-segment limit never starve each other into ERR_XPMEM_NO_MEMORY',
    async () => {
      const d = await domain({ memoryLimit: KIB64, arenaBytes: 1 << 20 });
      const list = await agents(d, new Gates(), 2);
      try {
        const segs = [d.space.make(KIB64), d.space.make(KIB64)];
        const keys = await Promise.all(list.map((a) => attachAll(a, segs)));
        const rounds = long ? 5_000 : 300;
        await Promise.all(list.map((a, i) => a.call('incrementEach', { atts: keys[i], index: i, rounds }, 4 * BOUND)));
        for (const s of segs) expect(counters(d, s).slice(0, 2)).toEqual([rounds, rounds]);
        expect(d.stats().residentBytes).toBeLessThanOrEqual(KIB64);
        expect(d.check().errors).toEqual([]);
      } finally {
        await teardown(d, list);
      }
    },
    8 * BOUND,
  );

  it('an allocation whose every victim is held by sections waits until one is released, then takes it', async () => {
    const d = await domain({ memoryLimit: 2 * KIB64, deadlineMs: 4 * BOUND });
    const gates = new Gates();
    const holders = await agents(d, gates, 2);
    try {
      const segs = [d.space.make(KIB64), d.space.make(KIB64)];
      const gate = [gates.take(), gates.take()];
      const held = await Promise.all(
        holders.map(async (h, i) => {
          const att = await h.call('attach', { access: await h.call('get', { segId: segs[i]!.id }) });
          const holding = h.send('hold', { att, gate: gate[i], tag: i });
          await h.until((e) => e.event === 'holding');
          return { holding }; // not the promise itself: the async function would wait for it
        }),
      );
      const before = segs.map((s) => segSeq(d, s.id));
      const made = d.space.makeAsync(KIB64);
      // Each victim's swap-out opened its window and rolled back (the seqcount moved by two): the
      // first reclaim freed nothing, and the allocation now waits for a victim to come free.
      await until(() => segs.every((s, i) => segSeq(d, s.id) - before[i]! >= 2), 'both victims tried and skipped');
      expect([segs[0]!.swapped, segs[1]!.swapped]).toEqual([false, false]);
      gates.open(gate[1]!);
      await bounded(made, 'the allocation, once a victim is free');
      expect([segs[0]!.swapped, segs[1]!.swapped]).toEqual([false, true]);
      gates.open(gate[0]!);
      await Promise.all(held.map((h) => h.holding));
      expect(d.check().errors).toEqual([]);
    } finally {
      await teardown(d, holders);
    }
  });

  it("an unanswering victim: make() gives up at its own deadline with ERR_XPMEM_TIMEOUT naming the space, not the domain's; its signal aborts it", async () => {
    const d = await domain({ memoryLimit: 2 * KIB64, deadlineMs: 4 * BOUND }); // the domain's deadline would outlast bounded()
    const gates = new Gates();
    const [spinner] = await agents(d, gates, 1);
    try {
      const victim = d.space.make(KIB64);
      d.space.make(KIB64, { swappable: false });
      const att = await spinner!.call('attach', { access: await spinner!.call('get', { segId: victim.id }) });
      await spinner!.call('notifier', { att, how: 'plain', tag: 1 });
      const spinnerId = await spinner!.call<number>('space');
      const gate = gates.take();
      void spinner!.send('spin', { gate });
      await spinner!.until((e) => e.event === 'spinning');
      expect(() => d.space.make(KIB64, { deadlineMs: 50 })).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_TIMEOUT', space: spinnerId }));
      const late = await bounded(
        d.space.makeAsync(KIB64, { deadlineMs: 50 }).catch((e: unknown) => e),
        'makeAsync at its deadline',
      );
      expect(late).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: spinnerId });
      const abort = new AbortController();
      const aborted = d.space.makeAsync(KIB64, { signal: abort.signal }).catch((e: unknown) => e);
      await new Promise((resolve) => setImmediate(resolve));
      abort.abort();
      expect(await bounded(aborted, 'the aborted makeAsync')).toMatchObject({ code: 'ERR_XPMEM_ABORTED' });
      expect(victim.swapped).toBe(false);
      gates.open(gate);
      await spinner!.call('space');
      d.space.make(KIB64, { deadlineMs: BOUND }); // answered now: the victim goes
      expect(victim.swapped).toBe(true);
      expect(d.check().errors).toEqual([]);
    } finally {
      await teardown(d, [spinner!]);
    }
  });

  it('ERR_XPMEM_NO_MEMORY at once when what this thread pins and unswappable memory leave no room, whatever others do', async () => {
    const d = await domain({ memoryLimit: 2 * KIB64, deadlineMs: 4 * BOUND });
    try {
      const mine = d.space.make(KIB64);
      d.space.make(KIB64, { swappable: false });
      const att = d.space.get(mine.id).attach();
      const refused = await bounded(
        att.writeAsync(() => d.space.makeAsync(KIB64).catch((e: unknown) => e)),
        'the refusal',
      );
      expect(refused).toMatchObject({ code: 'ERR_XPMEM_NO_MEMORY' });
      expect(mine.swapped).toBe(false);
    } finally {
      await d.close();
    }
  });

  it("the clock waits for a busy space's referenced() answer before it passes again: a true answer keeps the segment", async () => {
    const d = await domain({ memoryLimit: 3 * KIB64, deadlineMs: 4 * BOUND });
    const gates = new Gates();
    const [agent] = await agents(d, gates, 1);
    try {
      const [b, c] = [d.space.make(KIB64), d.space.make(KIB64)]; // b comes first on the clock
      d.space.make(KIB64, { swappable: false });
      const att = await agent!.call('attach', { access: await agent!.call('get', { segId: b!.id, mode: 'ro' }), range: {} });
      await agent!.call('notifier', { att, how: 'plain', tag: 1, referenced: true });
      const agentId = await agent!.call<number>('space');
      const gate = gates.take();
      void agent!.send('spin', { gate }); // busy: it answers only after the gate opens
      await agent!.until((e) => e.event === 'spinning');
      const asked = (): number => Atomics.load(new Int32Array(d.handle().control), spaceBase(d, agentId) + SP_AGE);
      const before = asked();
      const made = d.space.makeAsync(KIB64); // clears b's and c's bits, asks the agent about b
      await until(() => asked() !== before, 'the clock to ask');
      gates.open(gate);
      await bounded(made, 'the allocation');
      expect([b!.swapped, c!.swapped]).toEqual([false, true]); // b was answered for before the clock came back
    } finally {
      await teardown(d, [agent!]);
    }
  });
});

describe('compaction', () => {
  it('a move whose hole was taken while its window was open is not counted as moved', async () => {
    const d = await domain();
    try {
      const hole = d.space.make(KIB64);
      const mover = d.space.make(KIB64);
      await hole.remove(); // the only free range below the mover
      let filler: Segment | undefined;
      const n = d.space.notifier({
        invalidateStart: (r) => {
          if (r.event === 'migrate' && filler === undefined) filler = d.space.make(KIB64, { swappable: false });
        }, // takes the hole
      });
      const report = await d.compact();
      expect(filler).toBeDefined();
      expect(report).toEqual({ moved: 0, movedBytes: 0, skipped: 0 });
      expect(d.stats().compacted).toBe(0);
      expect(d.maps().find((r) => r.segId === mover.id && r.kind === 'segment')!.offset).toBe(KIB64);
      await n.unregister();
      expect(d.check().errors).toEqual([]);
    } finally {
      await d.close();
    }
  });

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
      const rows = d
        .maps()
        .filter((r) => r.kind === 'segment')
        .sort((x, y) => x.offset - y.offset);
      expect(rows.map((r) => r.offset)).toEqual(rows.map((_, i) => i * KIB64)); // packed from the start
      expect(d.stats().compacted).toBe(first.moved + second.moved);
      await expectCode(() => d.compact({ deadlineMs: -1 }), 'ERR_OUT_OF_RANGE');
    } finally {
      await teardown(d, list);
    }
  });
});
