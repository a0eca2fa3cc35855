/** Death (DESIGN section 4): a terminated space is reaped and nobody waits on it. */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, domain, expectCode, Gates, noneInFlight, teardown } from './helpers.js';
import { joinMm } from '../src/workers/join.js';
import { reap, spaceNow } from '../src/workers/reap.js';
import { reapMidway } from './fixtures/reap-midway.js';
import { SP_REAPER, SP_STATE, SPACE_DEAD, SPACE_FREE, SPACE_LIVE, slotBase } from '../src/layout.js';

describe('reaping dead spaces', () => {
  it('a worker terminated inside a section: the migrate waits for it, then its hold is released by the reap and the migrate completes', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND });
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId: seg.id }) });
    void holder!.send('hold', { att, gate: gates.take(), tag: 1 }).catch(() => {});
    await holder!.until((e) => e.event === 'holding');
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const migrated = seg.migrate();
    await new Promise((resolve) => setImmediate(resolve)); // a migrate that did not drain would have moved it by now
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before);
    await holder!.worker.terminate();
    await bounded(migrated, 'the migrate, once the holder is reaped');
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
    await d.settled();
    expect(d.maps().filter((r) => r.kind === 'attachment')).toEqual([]);
    expect(d.check().errors).toEqual([]);
    await teardown(d, []);
  });

  it('a reap claims only the member it found dead: a slot that now holds another (generation, pid, thread or start) is not reaped', async () => {
    const d = await domain();
    const [agent] = await agents(d, new Gates(), 1);
    const { mm } = joinMm(d.handle()); // this thread's membership
    const { words, layout } = mm;
    const slot = ((await agent!.call('space')) as number) % layout.spaces.capacity;
    const found = spaceNow(words, layout, slot);
    for (const other of [{ gen: found.gen + 1 }, { pid: found.pid + 1 }, { thread: found.thread + 1 }, { start: found.start + 1 }]) {
      expect(await reap(mm, { ...found, ...other }, () => {}), JSON.stringify(other)).toBe(0);
      expect(Atomics.load(words, slotBase(layout.spaces, slot) + SP_STATE)).toBe(SPACE_LIVE);
    }
    expect(spaceNow(words, layout, slot)).toEqual(found); // the same member, never reaped
    await teardown(d, [agent!]);
  });

  it('a second reap of a dead space whose reap is under way claims nothing and returns at once; the first removes what it owned', async () => {
    const d = await domain();
    const [agent] = await agents(d, new Gates(), 1);
    const { mm } = joinMm(d.handle());
    const { words, layout } = mm;
    const slot = ((await agent!.call('space')) as number) % layout.spaces.capacity;
    for (let i = 0; i < 2; i++) await agent!.call('make', { bytes: 64 });
    // White box: reaped as if dead. The first reap runs to its first await: claimed, the space
    // stopped (dead, its generation bumped); a second watcher then finds it dead, as it is now.
    const first = reap(mm, spaceNow(words, layout, slot), () => {});
    const second = reap(mm, spaceNow(words, layout, slot), () => {});
    expect(await Promise.all([first, second])).toEqual([2, 0]);
    expect(Atomics.load(words, slotBase(layout.spaces, slot) + SP_STATE)).toBe(SPACE_FREE);
    await teardown(d, [agent!]);
  });

  it('a reap that fails after its first steps lets its claim go: the space reads dead and unclaimed, and another reap finishes it', async () => {
    const d = await domain();
    const [agent] = await agents(d, new Gates(), 1);
    const { mm } = joinMm(d.handle());
    const { words, layout } = mm;
    const slot = ((await agent!.call('space')) as number) % layout.spaces.capacity;
    const failing = (): never => {
      throw new Error('dropping its users failed');
    };
    await expect(reapMidway(mm, spaceNow(words, layout, slot), failing)).rejects.toThrow('dropping its users failed');
    const base = slotBase(layout.spaces, slot);
    expect([Atomics.load(words, base + SP_STATE), Atomics.load(words, base + SP_REAPER)]).toEqual([SPACE_DEAD, 0]);
    expect(await reap(mm, spaceNow(words, layout, slot), () => {})).toBe(0); // it owned no segment
    expect(Atomics.load(words, base + SP_STATE)).toBe(SPACE_FREE);
    await teardown(d, [agent!]);
  });

  it('a worker terminated while it holds the domain mutex joining: its reap frees the mutex', async () => {
    const d = await domain({ deadlineMs: 2_000 });
    const gates = new Gates();
    const [joiner] = await agents(d, gates, 1);
    void joiner!.send('joiningMutex', { gate: gates.take(), tag: 1 }).catch(() => {});
    await joiner!.until((e) => e.event === 'holding');
    await joiner!.worker.terminate();
    await d.settled();
    d.space.make(64).removeSync(); // a transaction: ERR_XPMEM_TIMEOUT had the mutex stayed taken
    await teardown(d, []);
  });

  it("only a worker's exit reaps its space: no call reaps a running thread, and a worker that already exited cannot be watched", async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    expect('reapThread' in d).toBe(false);
    await a!.worker.terminate();
    await d.settled();
    await expectCode(() => d.watch(a!.worker), 'ERR_INVALID_ARG_VALUE');
    await teardown(d, []);
  });

  it('settled() gives up at its deadline naming the live space a reap waits for; the reap goes on and ends once it answers', async () => {
    const d = await domain({ deadlineMs: 300 });
    const gates = new Gates();
    const [owner, spinner] = await agents(d, gates, 2);
    const segId = await owner!.call<number>('make', { bytes: 64 });
    const att = await spinner!.call('attach', { access: await spinner!.call('get', { segId }) });
    await spinner!.call('notifier', { att, how: 'plain', tag: 1 });
    const spinnerId = await spinner!.call<number>('space');
    const gate = gates.take();
    void spinner!.send('spin', { gate });
    await spinner!.until((e) => e.event === 'spinning');
    await owner!.worker.terminate(); // its segment's release needs the spinner's start
    const error = await d.settled({ deadlineMs: 1000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: spinnerId });
    gates.open(gate);
    await d.settled({ deadlineMs: BOUND });
    await spinner!.until((e) => e.event === 'end');
    expect(d.check().errors).toEqual([]);
    await teardown(d, [spinner!]);
  });

  it('closing the domain while a callback is in flight: the operation fails, the record ends, and an unregister() waiting for the callback resolves', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND });
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    const n = await a!.call('notifier', { att, how: 'async', gate: gates.take(), tag: 1 });
    const migrated = seg.migrate().catch((e: unknown) => e);
    await a!.until((e) => e.event === 'start');
    const unregistered = a!.call('unregister', { notifier: n }); // waits for the start in flight
    await d.close();
    expect(await bounded(migrated, 'the migrate')).toMatchObject({ code: 'ERR_XPMEM_CLOSED' });
    await unregistered; // bounded by the agent call
    await a!.worker.terminate();
  });

  it('a third thread draining the dead space is woken by the reap, not left to its deadline', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND, slowMs: 4 * BOUND }); // a missed wake shows as a bounded() failure: no slow report wakes the drain
    const gates = new Gates();
    const [owner, holder] = await agents(d, gates, 2);
    const segId = await owner!.call<number>('make', { bytes: 64 });
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId }) });
    void holder!.send('hold', { att, gate: gates.take(), tag: 1 }).catch(() => {});
    await holder!.until((e) => e.event === 'holding');
    const migrated = owner!.call('migrate', { segId });
    await holder!.worker.terminate();
    await bounded(migrated, "the owner's migrate");
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
    await noneInFlight(d); // the dead target's end is the reaper's to ack
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
    // The owner dies as a target of its own migrate, blocked in its own invalidateStart: its
    // start and end acks are the reaper's to give.
    await owner!.call('notifier', { how: 'block', gate: gates.take(), tag: 2 });
    void owner!.send('migrate', { segId }).catch(() => {});
    await owner!.until((e) => e.event === 'start');
    await owner!.worker.terminate();
    await user!.until((e) => e.event === 'release');
    await d.settled();
    await noneInFlight(d);
    expect(user!.events.filter((e) => e.tag === 1).map((e) => e.event)).toEqual(['start', 'end', 'release']);
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
