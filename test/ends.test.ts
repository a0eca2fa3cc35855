/**
 * Ends: nobody waits for an invalidateEnd, yet every one must come, in order, and records must
 * never pile up behind them. Real workers; codes in the shared log as in protocol.test.ts
 * (tag * 10 + 1 start, 2 start done, 3 end, 6 end done).
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, domain, Gates, segSlot, spaceSlot, teardown, until } from './helpers.js';
import { capacitiesOf, IV_END, IV_SEG, IV_START, IV_STATE, layoutFor, SP_STATE, SPACE_DEAD, SPACE_LIVE, slotBase } from '../src/layout.js';
import type { Domain } from '../src/index.js';

const KIB64 = 64 << 10;

/** The slot of the record now starting on segment `segId` (white box), or -1. */
function startingRecord(d: Domain, segId: number): number {
  const words = new Int32Array(d.handle().control);
  const { invalidations } = layoutFor(capacitiesOf(words));
  const seg = segSlot(d, segId);
  for (let r = 0; r < invalidations.capacity; r++) {
    const base = slotBase(invalidations, r);
    if (Atomics.load(words, base + IV_STATE) === IV_START && Atomics.load(words, base + IV_SEG) === seg) return r;
  }
  return -1;
}

describe('ends', () => {
  it('targets reaped while their owner invalidates back to back leave no record in flight, and later operations still find records', async () => {
    // A record opened after the reaper acked for the dead space, but before it dropped the dead
    // space's notifiers, still named it as a target: its start counted as acked, its end never.
    const d = await domain({ capacity: { invalidations: 4 } });
    const gates = new Gates();
    const words = new Int32Array(gates.buffer);
    const [owner] = await agents(d, gates, 1);
    const segId = await owner!.call<number>('make', { bytes: 64 });
    const stop = gates.take();
    const progress = gates.take();
    let looped = false;
    const looping = owner!.call<{ runs: number; code?: string }>('loop', { body: { op: 'protect', segId, mode: 'rw' }, progress, stop }).finally(() => (looped = true));
    for (let round = 0; round < 16 && !looped; round++) {
      const [watcher] = await agents(d, gates, 1);
      const att = await watcher!.call('attach', { access: await watcher!.call('get', { segId }) });
      await watcher!.call('notifier', { att, how: 'plain', tag: 1 });
      await watcher!.until((e) => e.event === 'end', 'an end in the watcher');
      const seen = Atomics.load(words, progress);
      await watcher!.worker.terminate();
      await until(() => Atomics.load(words, progress) >= seen + 4 || looped, 'the owner to go on invalidating');
      await d.settled();
    }
    gates.open(stop);
    expect((await looping).code).toBeUndefined();
    await until(() => d.stats().invalidationsInFlight === 0, 'every record to be acked');
    await teardown(d, [owner!]);
  });

  it('targets reaped while their owner invalidates: a space marked dead is never made a target, so no record waits for its end', async () => {
    // White box, deterministic: what the reaper's first transaction leaves (SP_STATE dead) while
    // the space's notifier is still linked, as between its acks for the records opened before and
    // the transaction that drops its notifiers. The space never yields: only its reaper could ack.
    const d = await domain();
    const gates = new Gates();
    const [watcher] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await watcher!.call('attach', { access: await watcher!.call('get', { segId: seg.id }) });
    await watcher!.call('notifier', { att, how: 'plain', tag: 1 });
    const slot = spaceSlot(d, await watcher!.call<number>('space'));
    const gate = gates.take();
    void watcher!.send('spin', { gate });
    await watcher!.until((e) => e.event === 'spinning');
    const words = new Int32Array(d.handle().control);
    const state = slotBase(layoutFor(capacitiesOf(words)).spaces, slot) + SP_STATE;
    Atomics.store(words, state, SPACE_DEAD);
    await seg.protect('rw');
    expect(d.stats().invalidationsInFlight).toBe(0);
    Atomics.store(words, state, SPACE_LIVE); // its reaper finds it by its live slot
    gates.open(gate);
    await teardown(d, [watcher!]);
    expect(watcher!.count('start')).toBe(0);
  });

  it('an invalidator killed after its record turned END but before it told its targets: the reaper tells them, and they get their end', async () => {
    // The invalidator is a reclaim's: it owns nothing, so its reap removes nothing and posts
    // nobody; only the reaper's own look at the records it left can tell the target.
    const d = await domain({ memoryLimit: 2 * KIB64 });
    const gates = new Gates();
    const [invalidator, target] = await agents(d, gates, 2);
    const victim = d.space.make(KIB64);
    d.space.make(KIB64, { swappable: false });
    const gate = gates.take();
    const att = await target!.call('attach', { access: await target!.call('get', { segId: victim.id }) });
    await target!.call('notifier', { att, how: 'block', gate, tag: 1 });
    void invalidator!.send('makeRemove', { bytes: KIB64 }).catch(() => {});
    await target!.until((e) => e.event === 'start', 'the swap-out to start');
    const r = startingRecord(d, victim.id);
    expect(r).toBeGreaterThanOrEqual(0);
    // What the invalidator's END store leaves, had it died before its posts to the targets.
    const words = new Int32Array(d.handle().control);
    Atomics.store(words, slotBase(layoutFor(capacitiesOf(words)).invalidations, r) + IV_STATE, IV_END);
    await invalidator!.worker.terminate();
    gates.open(gate);
    await d.settled();
    await target!.until((e) => e.event === 'end', 'the end the dead invalidator never posted');
    await until(() => d.stats().invalidationsInFlight === 0, 'the record to be acked');
    await teardown(d, [target!]);
  });

  it('a thread that awaits an operation and then blocks on what a target does in its end is not left waiting', async () => {
    const d = await domain();
    const gates = new Gates();
    const words = new Int32Array(gates.buffer);
    const [target] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await target!.call('attach', { access: await target!.call('get', { segId: seg.id }) });
    for (let round = 0; round < 5; round++) {
      const ended = gates.take();
      const n = await target!.call('notifier', { att, how: 'plain', endHow: 'open', endGate: ended, tag: round + 1 });
      await seg.migrate();
      // Blocks this thread (and its event loop) until the target's invalidateEnd opens the gate.
      expect(Atomics.wait(words, ended, 0, BOUND), `round ${round}`).not.toBe('timed-out'); // 'not-equal': the end came first
      await target!.call('unregister', { notifier: n });
    }
    await teardown(d, [target!]);
  });

  it('slow ends hold back only their own space: back-to-back operations never run out of records', async () => {
    const d = await domain({ capacity: { invalidations: 4 } });
    const gates = new Gates();
    const [slow, quick] = await agents(d, gates, 2);
    const seg = d.space.make(64);
    const other = d.space.make(64);
    const att = await slow!.call('attach', { access: await slow!.call('get', { segId: seg.id }) });
    await slow!.call('notifier', { att, how: 'plain', endHow: 'slow', endGate: 20, tag: 1 });
    const oatt = await quick!.call('attach', { access: await quick!.call('get', { segId: other.id }) });
    await quick!.call('notifier', { att: oatt, how: 'plain', tag: 2 });
    const OPS = 24;
    for (let i = 0; i < OPS; i++) {
      await seg.migrate();
      await other.migrate(); // an unrelated watched operation in the same domain
    }
    await slow!.until((e) => e.event === 'end' && slow!.count('end') === OPS, 'every slow end');
    await until(() => gates.log.filter((c) => c === 16).length === OPS, 'every slow end to settle');
    const log = gates.log.filter((c) => c < 20);
    expect(log).toEqual(Array.from({ length: OPS }, () => [11, 12, 13, 16]).flat());
    await until(() => d.stats().invalidationsInFlight === 0, 'every record to be acked');
    await teardown(d, [slow!, quick!]);
  });

  it('an operation that finds no free record waits for one within its deadline; past it, ERR_XPMEM_TIMEOUT names a space whose end holds a record', async () => {
    const d = await domain({ capacity: { invalidations: 2 } });
    const gates = new Gates();
    const list = await agents(d, gates, 3);
    const segs = list.map(() => d.space.make(64));
    const endGates = [gates.take(), gates.take()];
    const ids: number[] = [];
    for (const [i, a] of list.entries()) {
      const att = await a.call('attach', { access: await a.call('get', { segId: segs[i]!.id }) });
      await a.call('notifier', { att, how: 'plain', ...(i < 2 ? { endHow: 'async', endGate: endGates[i] } : {}), tag: i + 1 });
      ids.push(await a.call<number>('space'));
    }
    await segs[0]!.migrate();
    await segs[1]!.migrate(); // both records now wait for an end that waits for its gate
    await until(() => list[0]!.count('end') === 1 && list[1]!.count('end') === 1, 'both ends to run');
    try {
      await segs[2]!.migrate({ deadlineMs: 200 });
      expect.unreachable('the migrate found a record while every one was in use');
    } catch (error) {
      expect((error as { code?: string }).code).toBe('ERR_XPMEM_TIMEOUT');
      expect(ids.slice(0, 2)).toContain((error as { space?: number }).space);
      expect((error as Error).message).toMatch(/invalidateEnd/);
    }
    const waiting = segs[2]!.migrate();
    gates.open(endGates[0]!);
    await waiting;
    await list[2]!.until((e) => e.event === 'end', 'the third end');
    gates.open(endGates[1]!);
    await until(() => d.stats().invalidationsInFlight === 0, 'every record to be acked');
    await teardown(d, list);
  });
});
