/** Death (DESIGN section 4): a terminated space is reaped and nobody waits on it. */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, domain, expectCode, Gates, teardown } from './helpers.js';

describe('reaping dead spaces', () => {
  it('a worker terminated inside a section: its hold is released and the owner\'s migrate completes', async () => {
    const d = await domain({ deadlineMs: 10_000 });
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId: seg.id }) });
    void holder!.send('hold', { att, gate: gates.take(), tag: 1 }).catch(() => {});
    await holder!.until((e) => e.event === 'holding');
    const migrated = seg.migrate();
    await holder!.worker.terminate();
    await migrated;
    await d.settled();
    expect(d.maps().filter((r) => r.kind === 'attachment')).toEqual([]);
    expect(d.check().errors).toEqual([]);
    await teardown(d, []);
  });

  it('a third thread draining the dead space is woken by the reap, not left to its deadline', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // a missed wake shows as a bounded() failure
    const gates = new Gates();
    const [owner, holder] = await agents(d, gates, 2);
    const segId = await owner!.call<number>('make', { bytes: 64 });
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId }) });
    void holder!.send('hold', { att, gate: gates.take(), tag: 1 }).catch(() => {});
    await holder!.until((e) => e.event === 'holding');
    const migrated = owner!.call('migrate', { segId });
    await holder!.worker.terminate();
    await bounded(migrated, 'the owner\'s migrate');
    await d.settled();
    expect(d.check().errors).toEqual([]);
    await teardown(d, [owner!]);
  });

  it('a worker terminated inside a blocking callback counts as acked; the operation completes', async () => {
    const d = await domain({ deadlineMs: 10_000 });
    const gates = new Gates();
    const [sleeper, other] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    for (const [i, a] of [sleeper!, other!].entries()) {
      const att = await a.call('attach', { access: await a.call('get', { segId: seg.id }) });
      await a.call('notifier', { att, how: i === 0 ? 'block' : 'plain', gate: gates.take(), tag: i + 1 });
    }
    const migrated = seg.migrate();
    await sleeper!.until((e) => e.event === 'start');
    await sleeper!.worker.terminate();
    await migrated;
    await other!.until((e) => e.event === 'end');
    await d.settled();
    expect(d.check().errors).toEqual([]);
    await teardown(d, [other!]);
  });

  it('an owner that dies: its segments are removed, attachers get release, and the arena bytes come back', async () => {
    const d = await domain();
    const gates = new Gates();
    const [owner, user] = await agents(d, gates, 2);
    const freeBefore = d.stats().freeBytes;
    const segId = await owner!.call<number>('make', { bytes: 4096 });
    const att = await user!.call('attach', { access: await user!.call('get', { segId }) });
    await user!.call('notifier', { att, how: 'plain', release: true, tag: 1 });
    await user!.call('write', { att, bytes: [1, 2, 3] });
    expect(d.stats().freeBytes).toBe(freeBefore - 4096);
    await owner!.worker.terminate();
    await user!.until((e) => e.event === 'release');
    await d.settled();
    expect(user!.events.filter((e) => e.tag === 1).map((e) => e.event)).toEqual(['release']);
    await expectCode(() => user!.call('read', { att }), 'ERR_XPMEM_REMOVED');
    expect(d.stats().freeBytes).toBe(freeBefore);
    expect(d.check().errors).toEqual([]);
    await teardown(d, [user!]);
  });

  it('an owner that dies in the middle of its own invalidation: the window is closed and attachers get their end', async () => {
    const d = await domain();
    const gates = new Gates();
    const [owner, user] = await agents(d, gates, 2);
    const segId = await owner!.call<number>('make', { bytes: 256 });
    const gate = gates.take();
    const att = await user!.call('attach', { access: await user!.call('get', { segId }) });
    await user!.call('notifier', { att, how: 'async', gate, tag: 1 });
    void owner!.send('migrate', { segId }).catch(() => {});
    await user!.until((e) => e.event === 'start');
    await owner!.worker.terminate();
    gates.open(gate);
    await d.settled();
    await user!.until((e) => e.event === 'end');
    await expectCode(() => user!.call('read', { att }), 'ERR_XPMEM_REMOVED');
    expect(d.check().errors).toEqual([]);
    await teardown(d, [user!]);
  });
});
