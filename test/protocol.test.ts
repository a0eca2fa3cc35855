/**
 * The rules of the invalidation protocol (DESIGN section 4), each with real workers. Orders are
 * read from a shared log every thread appends to with one Atomics.add (agent codes are
 * tag * 10 + 1 start, 2 start done, 3 end, 4 release, 5 unregistered, 6 end done; 7x are
 * sections; the main thread logs 9x).
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, domain, expectCode, Gates, heldWords, segSlot, spaceSlot, teardown, until } from './helpers.js';
import { capacitiesOf, H_MUTEX, HELD_WANT, IV_END, IV_GEN, layoutFor, slotBase } from '../src/layout.js';
import { readRecord } from '../src/notifier/record.js';

const REOPENER = new URL('../dist/test/fixtures/reopener.js', import.meta.url);
const RESOLVED = 99;

describe('invalidation protocol', () => {
  it('no section starts inside an invalidation window: entries of other threads and of the owner wait until its start returned and it closed', async () => {
    const d = await domain();
    const gates = new Gates();
    const [sleeper, reader] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const mine = d.space.get(seg.id).attach();
    mine.write((v) => {
      v.fill(7);
    });
    const gate = gates.take();
    const att = await sleeper!.call('attach', { access: await sleeper!.call('get', { segId: seg.id }) });
    await sleeper!.call('notifier', { att, how: 'block', gate, tag: 1 });
    const ratt = await reader!.call('attach', { access: await reader!.call('get', { segId: seg.id }) });
    const readerId = await reader!.call<number>('space');
    const migrated = seg.migrate();
    await sleeper!.until((e) => e.event === 'start'); // the window is open; the start blocks in its callback
    const read = reader!.send('enter', { att: ratt, code: 71 });
    // The reader's entry parks in its held word (or, were the window not held off, gets in and logs 71).
    await until(() => heldWords(d, readerId).includes(segSlot(d, seg.id) + 1 + HELD_WANT) || gates.log.includes(71), 'the reader to try its entry');
    const own = mine.readAsync(() => gates.note(72));
    await new Promise((resolve) => setImmediate(resolve)); // an entry not held off would be inside by now
    gates.open(gate);
    await migrated;
    await Promise.all([read, own]);
    const log = gates.log;
    expect(log.indexOf(12)).toBeGreaterThan(-1);
    expect(log.indexOf(71)).toBeGreaterThan(log.indexOf(12)); // after the start returned
    expect(log.indexOf(72)).toBeGreaterThan(log.indexOf(12));
    expect(await reader!.call('read', { att: ratt, to: 4 })).toEqual([7, 7, 7, 7]); // the migrate copied the bytes
    await teardown(d, [sleeper!, reader!]);
  });

  it('the owner resolves once every start returned (blocking and async), without waiting for the ends; each space gets one end after its start', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // an owner that waited for the ends would outlast bounded()
    const gates = new Gates();
    const list = await agents(d, gates, 2);
    const seg = d.space.make(128);
    const g1 = gates.take();
    const g2 = gates.take();
    const endGate = gates.take();
    for (const [i, a] of list.entries()) {
      const att = await a.call('attach', { access: await a.call('get', { segId: seg.id }), range: { offset: 64 * i, length: 64 } });
      await a.call('notifier', { att, how: i === 0 ? 'block' : 'async', gate: i === 0 ? g1 : g2, tag: i + 1, endHow: 'block', endGate });
    }
    const done = seg.migrate().then(() => gates.note(RESOLVED));
    await Promise.all(list.map((a) => a.until((e) => e.event === 'start')));
    gates.open(g1);
    gates.open(g2);
    await bounded(done, 'the owner to resolve while the ends block'); // endGate is still closed
    expect(gates.log.filter((c) => c === 16 || c === 26)).toEqual([]);
    gates.open(endGate);
    await Promise.all(list.map((a) => a.until((e) => e.event === 'end')));
    await until(() => gates.log.includes(16) && gates.log.includes(26), 'both ends to return');
    const log = gates.log;
    for (const tag of [1, 2]) {
      expect(log.indexOf(tag * 10 + 1)).toBeLessThan(log.indexOf(tag * 10 + 2));
      expect(log.indexOf(tag * 10 + 2)).toBeLessThan(log.indexOf(RESOLVED));
      expect(log.indexOf(tag * 10 + 2)).toBeLessThan(log.indexOf(tag * 10 + 3));
      expect(log.filter((c) => c === tag * 10 + 1)).toHaveLength(1);
      expect(log.filter((c) => c === tag * 10 + 3)).toHaveLength(1);
    }
    const [s, e] = [list[0]!.events.find((x) => x.event === 'start')!, list[0]!.events.find((x) => x.event === 'end')!];
    expect({ ...s, event: 'x', blockable: 0 }).toEqual({ ...e, event: 'x', blockable: 0 });
    expect(s).toMatchObject({ segId: seg.id, offset: 0, length: 128, type: 'migrate', blockable: true });
    await until(() => d.stats().invalidationsInFlight === 0, 'every end to be acked');
    await teardown(d, list);
  });

  it('records are reused while targets still read them: thousands of back-to-back operations, every space gets each start and then its end', async () => {
    // Each operation reopens a record its targets may still be reading (nobody waits for the
    // ends). The targets run sections on another segment meanwhile, so they read records at
    // every section boundary. An ack that landed on a reopened record would lose that space
    // its next end, and every later start of the segment would wait for it until the deadline.
    const d = await domain({ deadlineMs: BOUND });
    const gates = new Gates();
    const words = new Int32Array(gates.buffer);
    const list = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const busy = d.space.make(64);
    const stop = gates.take();
    const progress = gates.take();
    const running = [];
    for (const [i, a] of list.entries()) {
      const att = await a.call('attach', { access: await a.call('get', { segId: seg.id }) });
      await a.call('notifier', { att, how: 'plain', tag: i + 1 });
      const own = await a.call('attach', { access: await a.call('get', { segId: busy.id }), range: { offset: 4 * i, length: 4 } });
      running.push(a.call<{ code?: string }>('loop', { body: { op: 'increment', att: own, index: 0, times: 10 }, progress, stop }, 4 * BOUND)); // runs for all the operations below
    }
    await until(() => Atomics.load(words, progress) > 0, 'the sections to run');
    const OPS = 3000;
    for (let i = 0; i < OPS; i++) {
      const mode = i % 2 === 0 ? 'ro' : 'rw';
      if (i % 4 < 2) seg.protectSync(mode);
      else await seg.protect(mode);
    }
    gates.open(stop);
    for (const r of await Promise.all(running)) expect(r.code).toBeUndefined();
    for (const a of list) {
      await a.until((e) => e.event === 'end' && a.count('end') === OPS, 'every end');
      const seen = a.events.filter((e) => e.event === 'start' || e.event === 'end').map((e) => e.event);
      expect(seen).toEqual(Array.from({ length: 2 * OPS }, (_, k) => (k % 2 === 0 ? 'start' : 'end')));
    }
    await until(() => d.stats().invalidationsInFlight === 0, 'the last record to be acked');
    await teardown(d, list);
  });

  it('a record read while its slot is reopened is one use of it, never a mix of two', async () => {
    // White box: a worker reopens records over and over with openRecord and endRecord, and in
    // each use acks the end of target `self` before the record turns END. A read that mixed one
    // use's END with the next use's cleared masks would show an END `self` never acked, as a
    // target sees it when a reopening lands between its reads: its ack would land on the new use.
    const d = await domain({ capacity: { invalidations: 1 } }); // no free record: each opening reuses the ended one
    const words = new Int32Array(d.handle().control);
    const layout = layoutFor(capacitiesOf(words));
    const self = layout.spaces.capacity - 1; // no space there: nobody else reads these records
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const writer = d.spawn(REOPENER, { workerData: { stop, target: self } });
    try {
      const gen = slotBase(layout.invalidations, 0) + IV_GEN; // moves at each opening
      await until(() => Atomics.load(words, gen) > 100, 'the worker to reopen the record');
      let mixed = 0;
      for (let i = 0; i < 5_000_000; i++) {
        const view = readRecord(words, layout, 0, self);
        if (view.state === IV_END && view.targeted && !view.ended) mixed++;
      }
      expect(mixed).toBe(0);
    } finally {
      Atomics.store(stop, 0, 1);
      await new Promise((resolve) => writer.once('exit', resolve));
      await d.close();
    }
  });

  it("a space never sees a later start of a segment before its earlier end: a start still settling holds back the next operation's start", async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const other = d.space.make(64);
    const gate = gates.take();
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    const oatt = await a!.call('attach', { access: await a!.call('get', { segId: other.id }) });
    await a!.call('notifier', { att, how: 'async', gate, tag: 1 });
    await expectCode(() => seg.migrate({ deadlineMs: 100 }), 'ERR_XPMEM_TIMEOUT'); // its start is still settling
    const second = seg.migrate();
    await a!.call('deliver', { att: oatt }); // a section exit delivers inline: the second start must stay back
    expect(gates.log.filter((c) => c === 11)).toHaveLength(1);
    gates.open(gate);
    await second;
    await a!.until((e) => e.event === 'end' && a!.count('end') === 2, 'the second end');
    expect(gates.log.filter((c) => c % 10 !== 6)).toEqual([11, 12, 13, 11, 12, 13]);
    await teardown(d, [a!]);
  });

  it('a later start waits for an earlier end that runs sections: none is delivered inside it, though each section exit delivers events inline', async () => {
    const d = await domain();
    const gates = new Gates();
    const words = new Int32Array(gates.buffer);
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const other = d.space.make(64);
    const endGate = gates.take();
    const sections = gates.take(); // endGate + 1: the sections the end ran
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    const oatt = await a!.call('attach', { access: await a!.call('get', { segId: other.id }) });
    await a!.call('notifier', { att, how: 'plain', endHow: 'sections', endGate, endOther: oatt, tag: 1 });
    await seg.migrate();
    await until(() => Atomics.load(words, sections) > 0, 'the end to run sections');
    const second = seg.migrate();
    await until(() => d.stats().invalidationsInFlight === 2, 'the second record to be published');
    const seen = Atomics.load(words, sections);
    await until(() => Atomics.load(words, sections) > seen + 2, 'section exits after the second start was posted');
    gates.open(endGate);
    await second;
    await a!.until((e) => e.event === 'end' && a!.count('end') === 2, 'the second end');
    await until(() => gates.log.filter((c) => c === 16).length === 2, 'the second end to return'); // it runs no section: the gate is open
    expect(gates.log).toEqual([11, 12, 13, 16, 11, 12, 13, 16]);
    await teardown(d, [a!]);
  });

  it("a later start waits for an earlier end's promise to settle", async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const other = d.space.make(64);
    const endGate = gates.take();
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    const oatt = await a!.call('attach', { access: await a!.call('get', { segId: other.id }) });
    await a!.call('notifier', { att, how: 'plain', endHow: 'async', endGate, tag: 1 });
    await seg.migrate();
    await a!.until((e) => e.event === 'end', 'the first end');
    const second = seg.migrate();
    await a!.call('deliver', { att: oatt }); // a section exit delivers inline: the second start must stay back
    expect(gates.log).toEqual([11, 12, 13]);
    gates.open(endGate);
    await second;
    await a!.until((e) => e.event === 'end' && a!.count('end') === 2, 'the second end');
    await until(() => gates.log.length === 8, 'the second end to settle');
    expect(gates.log).toEqual([11, 12, 13, 16, 11, 12, 13, 16]);
    await teardown(d, [a!]);
  });

  it("the hold-off ends when the window closes: another thread's section runs while an invalidateEnd still runs", async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // a window held open for the ends would outlast the agent call's bound
    const gates = new Gates();
    const [slow, reader] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const endGate = gates.take();
    const att = await slow!.call('attach', { access: await slow!.call('get', { segId: seg.id }) });
    await slow!.call('notifier', { att, how: 'plain', tag: 1, endHow: 'block', endGate });
    const ratt = await reader!.call('attach', { access: await reader!.call('get', { segId: seg.id }) });
    const migrated = seg.migrate();
    await slow!.until((e) => e.event === 'end');
    await reader!.call('enter', { att: ratt, code: 71 });
    gates.open(endGate);
    await migrated;
    await until(() => gates.log.includes(16), 'the end to return');
    const log = gates.log;
    expect(log.indexOf(13)).toBeLessThan(log.indexOf(71));
    expect(log.indexOf(71)).toBeLessThan(log.indexOf(16));
    await teardown(d, [slow!, reader!]);
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

  it("registration is race-free even before the space delivered the window's start: the late notifier is left out", async () => {
    const d = await domain();
    const gates = new Gates();
    const [busy] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await busy!.call('attach', { access: await busy!.call('get', { segId: seg.id }) });
    await busy!.call('notifier', { att, how: 'plain', tag: 1 });
    let opened!: () => void;
    const window = new Promise<void>((resolve) => {
      opened = resolve;
    });
    d.space.notifier({ invalidateStart: () => opened() }); // the owner's own: the window is open
    const gate = gates.take();
    const registered = busy!.send('spin', { gate, after: { op: 'notifier', att, how: 'plain', tag: 2 } });
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

  it('a space that never yields makes the invalidator fail with ERR_XPMEM_TIMEOUT naming it and its thread, rolled back', async () => {
    const d = await domain();
    const gates = new Gates();
    const [spinner] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const mine = d.space.get(seg.id).attach();
    mine.write((v) => {
      v.fill(3);
    });
    const att = await spinner!.call('attach', { access: await spinner!.call('get', { segId: seg.id }) });
    await spinner!.call('notifier', { att, how: 'plain', tag: 1 });
    const spaceId = await spinner!.call<number>('space');
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const gate = gates.take();
    void spinner!.send('spin', { gate });
    await spinner!.until((e) => e.event === 'spinning');
    const error = await seg.migrate({ deadlineMs: 100 }).catch((e: unknown) => e);
    const threadId = spinner!.worker.threadId; // its thread, blamed with it
    expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: spaceId, threadId, message: expect.stringContaining(`space ${spaceId} (thread ${threadId}) `) });
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
    const inX = ax.writeAsync((v) => {
      v[0] = 1;
    }); // waits out the window, parked in a held word
    let leaveY!: () => void;
    let enteredY!: () => void;
    const yEntered = new Promise<void>((resolve) => {
      enteredY = resolve;
    });
    const inY = ay.writeAsync(async () => {
      enteredY();
      await new Promise<void>((resolve) => {
        leaveY = resolve;
      });
    });
    await yEntered;
    expect(heldWords(d, d.space.id).slice(0, 2)).toEqual([segSlot(d, x.id) + 1 + HELD_WANT, segSlot(d, y.id) + 1]); // two words: x parked, y held
    gates.open(gate);
    await xMigrated;
    await inX; // x's section came and went while y's is still open
    expect(heldWords(d, d.space.id).slice(0, 2)).toEqual([0, segSlot(d, y.id) + 1]);
    await expectCode(() => y.migrate(), 'ERR_XPMEM_WOULD_DEADLOCK'); // at once: our own section holds it
    leaveY();
    await inY;
    expect(heldWords(d, d.space.id).slice(0, 2)).toEqual([0, 0]);
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

  it("ERR_XPMEM_WOULD_DEADLOCK when a sync wait depends on this thread's own unsettled callback promise", async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = d.space.get(seg.id).attach();
    let settle!: () => void;
    const n = d.space.notifier({
      invalidateStart: () =>
        new Promise<void>((resolve) => {
          settle = resolve;
        }),
    });
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

  it("ERR_XPMEM_WOULD_DEADLOCK when a sync operation's start would wait for this thread's own unsettled invalidateEnd", async () => {
    const d = await domain();
    const seg = d.space.make(64);
    let settle!: () => void;
    let ends = 0;
    const n = d.space.notifier({
      invalidateEnd: () => {
        ends++;
        return new Promise<void>((resolve) => {
          settle = resolve;
        });
      },
    });
    await seg.migrate(); // its own end runs before it returns, and leaves its promise pending
    expect(ends).toBe(1);
    await expectCode(() => seg.migrateSync(), 'ERR_XPMEM_WOULD_DEADLOCK'); // its start waits for that promise
    settle();
    await seg.migrate();
    expect(ends).toBe(2);
    settle();
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
    const warning = await a!.until((e) => e.event === 'warning', 'the warning');
    expect(warning).toMatchObject({ type: 'XpmemNotifierWarning', tag: expect.stringContaining('callback failure on purpose') });
    await teardown(d, [a!]);
  });

  it('callbacks delivered inline at a library wait say blockable: false; from the idle event loop, true', async () => {
    const d = await domain();
    const gates = new Gates();
    const [blocker, waiter] = await agents(d, gates, 2);
    const x = d.space.make(64);
    const y = d.space.make(64);
    const gate = gates.take();
    const batt = await blocker!.call('attach', { access: await blocker!.call('get', { segId: y.id }) });
    await blocker!.call('notifier', { att: batt, how: 'block', gate, tag: 1 });
    const wx = await waiter!.call('attach', { access: await waiter!.call('get', { segId: x.id }) });
    const wy = await waiter!.call('attach', { access: await waiter!.call('get', { segId: y.id }) });
    await waiter!.call('notifier', { att: wx, how: 'plain', tag: 2 });
    await x.migrate();
    await waiter!.until((e) => e.event === 'start' && e.tag === 2);
    const yMigrated = y.migrate();
    await blocker!.until((e) => e.event === 'start'); // y's window stays open
    const waiterId = await waiter!.call<number>('space');
    const entered = waiter!.send('enter', { att: wy, code: 71 }); // blocks the waiter's thread in a library wait
    await until(() => heldWords(d, waiterId).includes(segSlot(d, y.id) + 1 + HELD_WANT), 'the waiter to wait');
    const xMigrated = x.migrate(); // its start reaches the waiter while it waits
    await waiter!.until((e) => e.event === 'start' && e.tag === 2 && waiter!.count('start') === 2, 'the inline start');
    await xMigrated;
    gates.open(gate);
    await Promise.all([yMigrated, entered]);
    expect(waiter!.events.filter((e) => e.event === 'start').map((e) => e.blockable)).toEqual([true, false]);
    await teardown(d, [blocker!, waiter!]);
  });

  it('an AbortSignal aborted while an operation waits ends it with ERR_XPMEM_ABORTED, rolled back, and the started space still gets its end', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND });
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const mine = d.space.get(seg.id).attach();
    mine.write((v) => {
      v.fill(5);
    });
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const gate = gates.take();
    const att = await a!.call('attach', { access: await a!.call('get', { segId: seg.id }) });
    await a!.call('notifier', { att, how: 'block', gate, tag: 1 });
    const abort = new AbortController();
    const migrated = seg.migrate({ signal: abort.signal }).catch((e: unknown) => e);
    await a!.until((e) => e.event === 'start');
    abort.abort(new Error('the caller changed its mind'));
    expect(await bounded(migrated, 'the aborted migrate')).toMatchObject({ code: 'ERR_XPMEM_ABORTED' });
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before);
    gates.open(gate);
    await a!.until((e) => e.event === 'end');
    expect(mine.read((v) => v[0])).toBe(5);
    await teardown(d, [a!]);
  });

  it('await seg.migrate() inside an async section on the same segment fails at once with ERR_XPMEM_WOULD_DEADLOCK; one started inside a sync section waits for it', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // a wait for itself would outlast bounded()
    const seg = d.space.make(64);
    const att = d.space.get(seg.id).attach();
    const inside = att.writeAsync(async () => seg.migrate()).catch((e: unknown) => e);
    expect(await bounded(inside, 'the refusal')).toMatchObject({ code: 'ERR_XPMEM_WOULD_DEADLOCK' });
    let started!: Promise<void>;
    att.write(() => {
      started = seg.migrate();
    }); // not awaited inside: it runs once the section ended
    await bounded(started, 'the migrate started inside a sync section');
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it("awaiting operations in a loop lets the event loop run: a worker's message ends the loop", async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    let done = false;
    a!.worker.once('message', () => {
      done = true;
    });
    const sent = a!.call('space'); // its answer is a message this loop must let in
    const end = performance.now() + BOUND;
    let runs = 0;
    while (!done && performance.now() < end) {
      await seg.migrate();
      runs++;
    }
    expect(done).toBe(true);
    expect(runs).toBeGreaterThan(0);
    await sent;
    await teardown(d, [a!]);
  });

  it("sections and unregister() wait only until their own deadline, not the domain's", async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // the domain's deadline would outlast bounded()
    const gates = new Gates();
    const [sleeper] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const gate = gates.take();
    const att = await sleeper!.call('attach', { access: await sleeper!.call('get', { segId: seg.id }) });
    await sleeper!.call('notifier', { att, how: 'block', gate, tag: 1 });
    const mine = d.space.get(seg.id).attach();
    let settle!: () => void;
    const own = mine.notifier({
      invalidateStart: () =>
        new Promise<void>((resolve) => {
          settle = resolve;
        }),
    });
    const migrated = seg.migrate();
    await sleeper!.until((e) => e.event === 'start'); // the window is open
    await expectCode(
      () =>
        bounded(
          mine.readAsync(() => 0, { deadlineMs: 50 }),
          'readAsync',
        ),
      'ERR_XPMEM_TIMEOUT',
    );
    await expectCode(() => bounded(own.unregister({ deadlineMs: 50 }), 'unregister'), 'ERR_XPMEM_TIMEOUT'); // its start is in flight
    expect(own.registered).toBe(false);
    gates.open(gate);
    settle();
    await migrated;
    expect(mine.read(() => 1, { deadlineMs: 50 })).toBe(1);
    await own.unregister();
    await teardown(d, [sleeper!]);
  });

  it('XpmemError.space names the public space id of a mutex holder, and a synchronous call waits for the mutex only until its own deadline', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // the domain's deadline would outlast the agent call's bound
    const gates = new Gates();
    const [holder, caller] = await agents(d, gates, 2);
    await holder!.call('space');
    const holderId = await holder!.call<number>('space');
    const segId = await caller!.call<number>('make', { bytes: 64 });
    const words = new Int32Array(d.handle().control);
    const slot = spaceSlot(d, holderId);
    expect(holderId).not.toBe(slot); // an id is not a slot: the generation shows
    Atomics.store(words, H_MUTEX, slot + 1); // as if the holder's thread held the domain mutex
    try {
      const error = await caller!.call('migrateSync', { segId, opts: { deadlineMs: 50 } }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', message: expect.stringContaining(`space ${holderId} `) });
      const made = await d.space.makeAsync(64, { deadlineMs: 50 }).catch((e: unknown) => e);
      expect(made).toMatchObject({ code: 'ERR_XPMEM_TIMEOUT', space: holderId });
    } finally {
      Atomics.store(words, H_MUTEX, 0);
      Atomics.notify(words, H_MUTEX);
    }
    await teardown(d, [holder!, caller!]);
  });

  it('removeSync of a segment nobody observes never frees it under its own operation in flight: ERR_XPMEM_WOULD_DEADLOCK, and the operation completes', async () => {
    const d = await domain();
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    const holderId = await holder!.call<number>('space');
    const seg = d.space.make(64);
    const other = d.space.make(64);
    const words = new Int32Array(d.handle().control);
    Atomics.store(words, H_MUTEX, spaceSlot(d, holderId) + 1); // as if another thread held the domain mutex
    let migrating: Promise<void> | undefined;
    try {
      migrating = seg.migrate(); // holds the segment's operation lock, its window open, waiting for the mutex
      expect(() => seg.removeSync({ deadlineMs: 50 })).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_WOULD_DEADLOCK', segId: seg.id }));
      // The quick removal waits for the mutex only until its own deadline, and its error names the segment and the holder.
      expect(() => other.removeSync({ deadlineMs: 50 })).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_TIMEOUT', segId: other.id, space: holderId }));
    } finally {
      Atomics.store(words, H_MUTEX, 0);
      Atomics.notify(words, H_MUTEX);
    }
    await bounded(migrating!, 'the migration');
    const segments = d.stats().segments;
    seg.removeSync();
    other.removeSync();
    expect(d.stats().segments).toBe(segments - 2);
    await teardown(d, [holder!]);
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
    await a!.until((e) => e.event === 'end' && e.type === 'resize', "the shrink's end");
    await seg.remove();
    await a!.until((e) => e.event === 'end' && e.type === 'remove', "the removal's end");
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
