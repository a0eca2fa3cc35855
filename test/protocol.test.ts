/**
 * The rules of the invalidation protocol (DESIGN section 4), each with real workers. Orders are
 * read from a shared log every thread appends to with one Atomics.add (agent codes are
 * tag * 10 + 1 start, 2 start done, 3 end, 4 release, 5 unregistered; the main thread logs 9x).
 */
import { describe, expect, it } from 'vitest';
import { agents, bounded, domain, expectCode, Gates, teardown } from './helpers.js';

const RESOLVED = 99;

describe('invalidation protocol', () => {
  it('no section runs inside an invalidation window: entries wait until invalidateEnd', async () => {
    const d = await domain();
    const gates = new Gates();
    const [sleeper, reader] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const mine = d.space.get(seg.id).attach();
    const gate = gates.take();
    const att = await sleeper!.call('attach', { access: await sleeper!.call('get', { segId: seg.id }) });
    await sleeper!.call('notifier', { att, how: 'block', gate, tag: 1 });
    const ratt = await reader!.call('attach', { access: await reader!.call('get', { segId: seg.id }) });
    const migrated = seg.migrate();
    await sleeper!.until((e) => e.event === 'start');
    // The window is open until the sleeper's callback returns: every entry must wait it out.
    await expectCode(() => reader!.call('read', { att: ratt, deadlineMs: 50 }), 'ERR_XPMEM_TIMEOUT');
    await expectCode(() => mine.section('ro', { deadlineMs: 50 }), 'ERR_XPMEM_TIMEOUT');
    gates.open(gate);
    await migrated;
    expect(await reader!.call('read', { att: ratt, to: 1 })).toEqual([0]);
    await teardown(d, [sleeper!, reader!]);
  });

  it('callbacks are balanced and ordered; the owner resolves only after sleeping callbacks finished (blocking and async)', async () => {
    const d = await domain();
    const gates = new Gates();
    const list = await agents(d, gates, 2);
    const seg = d.space.make(128);
    const g1 = gates.take();
    const g2 = gates.take();
    for (const [i, a] of list.entries()) {
      const att = await a.call('attach', { access: await a.call('get', { segId: seg.id }), range: { offset: 64 * i, length: 64 } });
      await a.call('notifier', { att, how: i === 0 ? 'block' : 'async', gate: i === 0 ? g1 : g2, tag: i + 1 });
    }
    const done = seg.migrate().then(() => gates.note(RESOLVED));
    await Promise.all(list.map((a) => a.until((e) => e.event === 'start')));
    gates.open(g1);
    gates.open(g2);
    await done;
    await Promise.all(list.map((a) => a.until((e) => e.event === 'end')));
    const log = gates.log;
    for (const tag of [1, 2]) {
      expect(log.indexOf(tag * 10 + 1)).toBeLessThan(log.indexOf(tag * 10 + 2));
      expect(log.indexOf(tag * 10 + 2)).toBeLessThan(log.indexOf(RESOLVED));
      expect(log.filter((c) => c === tag * 10 + 1)).toHaveLength(1);
      expect(log.filter((c) => c === tag * 10 + 3)).toHaveLength(1);
    }
    const [s, e] = [list[0]!.events.find((x) => x.event === 'start')!, list[0]!.events.find((x) => x.event === 'end')!];
    expect({ ...s, event: 'x', blockable: 0 }).toEqual({ ...e, event: 'x', blockable: 0 });
    expect(s).toMatchObject({ segId: seg.id, offset: 0, length: 128, type: 'migrate', blockable: true });
    await teardown(d, list);
  });

  it('registration is race-free: a notifier registered during a window gets neither its start nor its end, then the next window whole', async () => {
    const d = await domain();
    const gates = new Gates();
    const [sleeper, late] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const gate = gates.take();
    const satt = await sleeper!.call('attach', { access: await sleeper!.call('get', { segId: seg.id }) });
    await sleeper!.call('notifier', { att: satt, how: 'block', gate, tag: 1 });
    const latt = await late!.call('attach', { access: await late!.call('get', { segId: seg.id }) });
    await late!.call('notifier', { att: latt, how: 'plain', tag: 2 });
    const first = seg.migrate();
    await sleeper!.until((e) => e.event === 'start');
    await late!.call('notifier', { att: latt, how: 'plain', tag: 3 }); // registered inside the window
    gates.open(gate);
    await first;
    await late!.until((e) => e.event === 'end' && e.tag === 2);
    expect(late!.events.filter((e) => e.tag === 3)).toEqual([]);
    await seg.migrate();
    await late!.until((e) => e.event === 'end' && e.tag === 3);
    expect(late!.events.filter((e) => e.tag === 3).map((e) => e.event)).toEqual(['start', 'end']);
    await teardown(d, [sleeper!, late!]);
  });

  it('registration is race-free even before the space delivered the window\'s start: the late notifier is left out', async () => {
    const d = await domain();
    const gates = new Gates();
    const [busy] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await busy!.call('attach', { access: await busy!.call('get', { segId: seg.id }) });
    await busy!.call('notifier', { att, how: 'plain', tag: 1 });
    let opened!: () => void;
    const window = new Promise<void>((resolve) => { opened = resolve; });
    d.space.notifier({ invalidateStart: () => opened() }); // the owner's own: the window is open
    const gate = gates.take();
    const registered = busy!.send('spin', { gate, then: { op: 'notifier', att, how: 'plain', tag: 2 } });
    await busy!.until((e) => e.event === 'spinning');
    const migrated = seg.migrate();
    await bounded(window, 'the window to open');
    gates.open(gate); // registers tag 2 inside the window, before its dispatcher ran the start
    await registered;
    await migrated;
    await busy!.until((e) => e.event === 'end' && e.tag === 1);
    expect(busy!.events.filter((e) => e.tag === 2)).toEqual([]);
    await seg.migrate();
    await busy!.until((e) => e.event === 'end' && e.tag === 2);
    expect(busy!.events.filter((e) => e.tag === 2).map((e) => e.event)).toEqual(['start', 'end']);
    await teardown(d, [busy!]);
  });

  it('unregister from inside a callback resolves only after that invalidation ended', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    await a!.call('notifier', { att, how: 'unregister', tag: 1 });
    await seg.migrate();
    await a!.until((e) => e.event === 'end');
    await seg.migrate();
    const log = gates.log;
    expect(log.indexOf(13)).toBeGreaterThan(-1);
    for (let i = 0; i < 100 && !gates.log.includes(15); i++) await a!.call('space');
    expect(gates.log.indexOf(15)).toBeGreaterThan(gates.log.indexOf(13));
    expect(gates.log.filter((c) => c === 11)).toHaveLength(1); // nothing after unregister
    await teardown(d, [a!]);
  });

  it('a space that never yields makes the invalidator fail with ERR_XPMEM_TIMEOUT naming it, rolled back', async () => {
    const d = await domain();
    const gates = new Gates();
    const [spinner] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const mine = d.space.get(seg.id).attach();
    mine.write((v) => v.fill(3));
    const att = await spinner!.call('attach', { access: await spinner!.call('get', { segId: seg.id }) });
    await spinner!.call('notifier', { att, how: 'plain', tag: 1 });
    const spaceId = await spinner!.call<number>('space');
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const gate = gates.take();
    void spinner!.send('spin', { gate });
    await spinner!.until((e) => e.event === 'spinning');
    const error = await seg.migrate({ deadlineMs: 100 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: spaceId });
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before);
    expect(mine.read((v) => v[0])).toBe(3);
    gates.open(gate);
    await spinner!.call('space');
    expect(spinner!.count('start')).toBe(spinner!.count('end'));
    await teardown(d, [spinner!]);
  });

  it('drain: a section already inside when the window opens keeps the operation from running; past the deadline it is rolled back', async () => {
    const d = await domain();
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId: seg.id }) });
    const spaceId = await holder!.call<number>('space');
    const gate = gates.take();
    const held = holder!.send('hold', { att, gate, tag: 1 });
    await holder!.until((e) => e.event === 'holding');
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const error = await seg.migrate({ deadlineMs: 100 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: spaceId });
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before);
    gates.open(gate);
    await held;
    await seg.migrate();
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
    await teardown(d, [holder!]);
  });

  it('concurrent async sections in one thread keep separate holds: one waiting out a window never hides another', async () => {
    const d = await domain();
    const gates = new Gates();
    const [sleeper] = await agents(d, gates, 1);
    const x = d.space.make(64);
    const y = d.space.make(64);
    const gate = gates.take();
    const satt = await sleeper!.call('attach', { access: await sleeper!.call('get', { segId: x.id }) });
    await sleeper!.call('notifier', { att: satt, how: 'block', gate, tag: 1 });
    const ax = d.space.get(x.id).attach();
    const ay = d.space.get(y.id).attach();
    const xMigrated = x.migrate();
    await sleeper!.until((e) => e.event === 'start'); // x's window is open
    const inX = ax.writeAsync((v) => { v[0] = 1; }); // waits out the window
    let leaveY!: () => void;
    let enteredY!: () => void;
    const yEntered = new Promise<void>((resolve) => { enteredY = resolve; });
    const inY = ay.writeAsync(async () => { enteredY(); await new Promise<void>((resolve) => { leaveY = resolve; }); });
    await yEntered;
    gates.open(gate);
    await xMigrated;
    await inX; // x's section came and went while y's is still open
    const error = await y.migrate({ deadlineMs: 100 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: d.space.id }); // y's drain still sees our hold
    leaveY();
    await inY;
    await y.migrate();
    await teardown(d, [sleeper!]);
  });

  it('a blocked callback past the deadline: ERR_XPMEM_TIMEOUT, and invalidateEnd is still delivered after its start', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const gate = gates.take();
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    await a!.call('notifier', { att, how: 'block', gate, tag: 1 });
    await expectCode(() => seg.migrate({ deadlineMs: 100 }), 'ERR_XPMEM_TIMEOUT');
    gates.open(gate);
    await a!.until((e) => e.event === 'end');
    expect(a!.events.filter((e) => e.tag === 1).map((e) => e.event)).toEqual(['start', 'end']);
    await seg.migrate();
    await teardown(d, [a!]);
  });

  it('ERR_XPMEM_WOULD_DEADLOCK when a sync wait depends on this thread\'s own unsettled callback promise', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = d.space.get(seg.id).attach();
    let settle!: () => void;
    const n = d.space.notifier({ invalidateStart: () => new Promise<void>((resolve) => { settle = resolve; }) });
    const migrated = seg.migrate();
    await new Promise((resolve) => setImmediate(resolve));
    await expectCode(() => att.read(() => 0), 'ERR_XPMEM_WOULD_DEADLOCK');
    settle();
    await migrated;
    expect(att.read((v) => v.length)).toBe(64);
    await n.unregister();
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('a callback that throws counts as done and is reported, not fatal', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    await a!.call('notifier', { att, how: 'throw', tag: 1 });
    await seg.migrate();
    await a!.until((e) => e.event === 'end');
    await teardown(d, [a!]);
  });

  it('remove revokes every attachment: waiters wake to ERR_XPMEM_REMOVED and range notifiers end with it', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    await a!.call('notifier', { att, how: 'plain', tag: 1 });
    const freeBefore = d.stats().freeBytes;
    await seg.remove();
    expect(d.stats().freeBytes).toBe(freeBefore + 64);
    await a!.until((e) => e.event === 'end');
    expect(a!.events.find((e) => e.event === 'start')).toMatchObject({ type: 'remove' });
    await expectCode(() => a!.call('read', { att }), 'ERR_XPMEM_REMOVED');
    await a!.call('detach', { att });
    await teardown(d, [a!]);
  });

  it('remove ends a range notifier whose attachment lies past a shrunk end, and unregisters it', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(4096);
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }), range: { offset: 3000, length: 100 } });
    const n = await a!.call('notifier', { att, how: 'plain', tag: 1 });
    await seg.resize(1000); // the attachment is now past the end: its notifier heard this shrink
    await a!.until((e) => e.event === 'end' && e.type === 'resize', 'the shrink\'s end');
    await seg.remove();
    await a!.until((e) => e.event === 'end' && e.type === 'remove', 'the removal\'s end');
    expect(a!.events.filter((e) => e.event === 'start').map((e) => e.type)).toEqual(['resize', 'remove']);
    expect(await a!.call('registered', { notifier: n })).toBe(false);
    expect(d.check().errors).toEqual([]);
    await teardown(d, [a!]);
  });

  it('a range notifier on an attachment of a removed segment is ERR_XPMEM_REMOVED and leaves the tables intact', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = d.space.get(seg.id).attach();
    await seg.remove();
    await expectCode(() => att.notifier({}), 'ERR_XPMEM_REMOVED');
    expect(d.check().errors).toEqual([]);
    // The freed attachment slot is taken again: the stale handle must not count on it.
    const next = d.space.make(64);
    const reused = d.space.get(next.id).attach();
    await expectCode(() => att.notifier({}), 'ERR_XPMEM_REMOVED');
    const n = reused.notifier({});
    expect(d.check().errors).toEqual([]);
    await next.remove();
    expect(n.registered).toBe(false);
    expect(d.check().errors).toEqual([]);
    await d.close();
  });
});
