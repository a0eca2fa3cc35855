/**
 * Observability: diagnostics_channel messages for invalidations, faults, reclaims and reaps;
 * stats() counters that follow what happened; maps() rows and their printed table.
 */
import { describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { agents, domain, Gates, teardown } from './helpers.js';

/** Collects the messages of `channels` while `fn` runs. */
async function collect(channels: string[], fn: () => Promise<void>): Promise<Record<string, unknown[]>> {
  const seen: Record<string, unknown[]> = Object.fromEntries(channels.map((c) => [c, []]));
  const handlers = channels.map((c) => [c, (m: unknown) => seen[c]!.push(m)] as const);
  for (const [c, h] of handlers) subscribe(c, h);
  try {
    await fn();
  } finally {
    for (const [c, h] of handlers) unsubscribe(c, h);
  }
  return seen;
}

describe('observability', () => {
  it('publishes invalidations, faults, reclaims and reaps, and counts them in stats()', async () => {
    const d = await domain({ memoryLimit: 132 * 1024 }); // two 64 KiB segments and the agent's 4 KiB one
    const [agent] = await agents(d, new Gates(), 1);
    let segId = 0;
    const seen = await collect(['xpmem:invalidate', 'xpmem:fault', 'xpmem:reclaim', 'xpmem:reap'], async () => {
      const a = d.space.make(64 * 1024, { name: 'a' });
      segId = a.id;
      const att = d.space.get(a.id).attach();
      await a.swapOut();
      att.read(() => {}); // fault
      d.space.make(64 * 1024);
      d.space.make(64 * 1024); // reclaim: a is the oldest
      await agent!.call('make', { bytes: 4096 });
      await agent!.worker.terminate();
      await d.settled();
    });
    expect(seen['xpmem:invalidate']).toContainEqual({ segId, event: 'swap', attachers: 0, durationMs: expect.any(Number), error: undefined });
    expect(seen['xpmem:fault']).toEqual([{ segId, space: d.space.id, bytes: 64 * 1024, durationMs: expect.any(Number) }]);
    expect(seen['xpmem:reclaim']).toEqual([{ neededBytes: 60 * 1024, freedBytes: 64 * 1024, victims: [segId], aged: expect.any(Number), durationMs: expect.any(Number) }]);
    expect(seen['xpmem:reap']).toEqual([{ space: expect.any(Number), threadId: agent!.worker.threadId === -1 ? expect.any(Number) : agent!.worker.threadId, pid: process.pid, segments: 1 }]);
    const stats = d.stats();
    expect(stats).toMatchObject({ faults: 1, swapOuts: 2, swapIns: 1, reclaims: 1, swappedSegments: 1, swappedBytes: 64 * 1024, memoryLimit: 132 * 1024, residentBytes: 128 * 1024 });
    expect(stats.invalidations).toBe(seen['xpmem:invalidate']!.length);
    await teardown(d, []);
  });

  it('maps() rows carry the threadId of their space', async () => {
    const d = await domain();
    const [agent] = await agents(d, new Gates(), 1);
    const segId = await agent!.call<number>('make', { bytes: 64 });
    const space = await agent!.call<number>('space');
    const att = d.space.attach(segId, 'ro');
    const threadId = agent!.worker.threadId;
    expect(d.maps().map((r) => [r.kind, r.space, r.threadId])).toEqual([
      ['segment', space, threadId],
      ['attachment', d.space.id, 0],
    ]);
    const lines = d.formatMaps().split('\n');
    expect(lines[0]).toMatch(/^space\s+threadId\s+segId\s/);
    expect(lines[1]).toMatch(new RegExp(`^ *${space} +${threadId} +${segId} +segment `));
    att.detach();
    await teardown(d, [agent!]);
  });

  it('maps() lists segments and attachments with names and states; formatMaps() prints them aligned', async () => {
    const d = await domain();
    try {
      const a = d.space.make(1000, { name: 'alpha' });
      const b = d.space.make(64, { name: 'β-buffer', permit: 'ro' });
      d.space.get(a.id, 'ro').attach({ offset: 100, length: 200 });
      await b.swapOut();
      expect(d.maps()).toEqual([
        { space: d.space.id, threadId: 0, segId: a.id, name: 'alpha', kind: 'segment', offset: 0, length: 1000, mode: 'rw', state: 'live' },
        { space: d.space.id, threadId: 0, segId: b.id, name: 'β-buffer', kind: 'segment', offset: -1, length: 64, mode: 'rw', state: 'swapped' },
        { space: d.space.id, threadId: 0, segId: a.id, name: 'alpha', kind: 'attachment', offset: 100, length: 200, mode: 'ro', state: 'live' },
      ]);
      const lines = d.formatMaps().split('\n');
      expect(lines).toHaveLength(4);
      expect(lines[0]).toMatch(/^space\s+threadId\s+segId\s+kind\s+offset\s+length\s+mode\s+state\s+name$/);
      expect(lines[2]).toMatch(/ - +64 +rw +swapped +β-buffer$/);
      const kind = lines[0]!.indexOf('kind');
      expect(lines.slice(1).map((l) => l.slice(kind).split(' ')[0])).toEqual(['segment', 'segment', 'attachment']);
      expect(d.maps(d.space.id + 1)).toEqual([]);
    } finally {
      await d.close();
    }
  });
});
