/**
 * Callback delivery edge cases in one thread: queued VM operations, a sync operation that
 * would wait on its own promise, a rolled-back removal, and aborts only when the invalidator
 * really gave up.
 */
import { describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, domain, expectCode, Gates, teardown } from './helpers.js';

/** A promise and the function that settles it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('callback delivery', () => {
  it("a synchronous section behind a window of this very thread's own operation, not yet awaited, fails at once with ERR_XPMEM_WOULD_DEADLOCK: only this thread's event loop could finish that operation", async () => {
    const d = await domain({ deadlineMs: 2_000 }); // a wait for it would end here, ERR_XPMEM_TIMEOUT
    const gates = new Gates();
    const [target] = await agents(d, gates, 1);
    const seg = d.space.make(64);
    const att = await target!.call('attach', { access: await target!.call('get', { segId: seg.id }) });
    const gate = gates.take();
    await target!.call('notifier', { att, how: 'block', gate, tag: 1 });
    const migrating = seg.migrate(); // its window opens now; its end waits for the target's start
    await target!.until((e) => e.event === 'start', "the target's start");
    const mine = d.space.get(seg.id, 'ro').attach();
    await expectCode(() => mine.read(() => 0), 'ERR_XPMEM_WOULD_DEADLOCK');
    gates.open(gate);
    await migrating;
    expect(mine.read(() => 1)).toBe(1); // after the operation, the section enters
    await teardown(d, [target!]);
  });

  it('a VM operation queued behind another on the same segment runs as soon as the first ends', async () => {
    const d = await domain({ deadlineMs: 4 * BOUND }); // a lost wake-up shows as a bounded() failure
    const seg = d.space.make(4096);
    // A slow invalidateStart: the first operation holds the segment's lock while it waits for it.
    const n = d.space.notifier({ invalidateStart: () => new Promise<void>((resolve) => setTimeout(resolve, 20)) });
    await bounded(Promise.all([seg.migrate(), seg.protect('rw'), seg.migrate()]), 'three queued operations');
    await n.unregister();
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('a sync VM operation whose own notifier returned a promise fails fast with ERR_XPMEM_WOULD_DEADLOCK', async () => {
    const d = await domain({ deadlineMs: 5_000 }); // not ERR_XPMEM_TIMEOUT after blocking this long
    const seg = d.space.make(4096);
    const n = d.space.notifier({ invalidateStart: async () => {} });
    await expectCode(() => seg.migrateSync(), 'ERR_XPMEM_WOULD_DEADLOCK');
    await n.unregister(); // the event completed from the dispatcher
    await seg.migrate();
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('a synchronous wait on a segment inside its own running callback fails fast instead of waiting for itself', async () => {
    const d = await domain({ deadlineMs: 2_000 }); // blocking until the deadline would show as ERR_XPMEM_TIMEOUT
    const seg = d.space.make(4096);
    const att = d.space.get(seg.id).attach();
    const codes: (string | undefined)[] = [];
    const n = d.space.notifier({
      invalidateStart: () => {
        try {
          att.read(() => {}); // the window is open until this very callback returns
        } catch (error) {
          codes.push((error as { code?: string }).code);
        }
      },
    });
    await seg.migrate();
    expect(codes).toEqual(['ERR_XPMEM_WOULD_DEADLOCK']);
    await n.unregister();
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('a removal rolled back at its deadline leaves the range notifiers registered and served', async () => {
    const d = await domain();
    const seg = d.space.make(4096);
    const watched = d.space.get(seg.id).attach();
    const log: string[] = [];
    const n = watched.notifier({
      invalidateStart: (r) => {
        log.push(`start ${r.event}`);
      },
      invalidateEnd: (r) => {
        log.push(`end ${r.event}`);
      },
    });
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    const gate = gates.take();
    const att = await holder!.call('attach', { access: await holder!.call('get', { segId: seg.id }) });
    const held = holder!.send('hold', { att, gate, tag: 1 });
    await holder!.until((e) => e.event === 'holding');
    await expectCode(() => seg.remove({ deadlineMs: 100 }), 'ERR_XPMEM_TIMEOUT');
    gates.open(gate);
    await held;
    expect(n.registered).toBe(true);
    await seg.migrate();
    expect(log).toEqual(['start remove', 'end remove', 'start migrate', 'end migrate']);
    await n.unregister();
    await teardown(d, [holder!]);
  });

  it('range.signal aborts only when the invalidator gave up, not when other events pass by', async () => {
    const d = await domain();
    const slow = d.space.make(4096);
    const other = d.space.make(4096);
    const finish = deferred();
    const seen: boolean[] = [];
    const n = d.space.notifier({
      invalidateEnd: async (r) => {
        if (r.segId !== slow.id) return;
        await finish.promise;
        seen.push(r.signal.aborted);
      },
    });
    const migrated = slow.migrate();
    await other.migrate(); // another record passes through delivery while slow's end is pending
    finish.resolve();
    await migrated;
    expect(seen).toEqual([false]);
    await n.unregister();
    await d.close();
  });

  it('range.signal aborts when the invalidator gives up while a start still runs, also for a signal first read after that', async () => {
    const d = await domain();
    const seg = d.space.make(4096);
    const other = d.space.make(4096);
    const release = deferred();
    const ended = deferred();
    const seen: boolean[] = [];
    const n = d.space.notifier({
      invalidateStart: async (r) => {
        if (r.segId !== seg.id) return;
        await release.promise;
        seen.push(r.signal.aborted); // read only now, after the invalidator gave up
      },
      invalidateEnd: (r) => {
        if (r.segId === seg.id) ended.resolve();
      },
    });
    await expectCode(() => seg.migrate({ deadlineMs: 100 }), 'ERR_XPMEM_TIMEOUT');
    await other.migrate(); // its delivery passes over every record: the given-up start hears of it
    release.resolve();
    await ended.promise;
    expect(seen).toEqual([true]);
    await n.unregister();
    await d.close();
  });

  it('an end never runs inside its own start: a start blocked in a library wait defers the end until it returns', async () => {
    const d = await domain();
    const gates = new Gates();
    const [w] = await agents(d, gates, 1);
    const s1 = d.space.make(64);
    const s2 = d.space.make(64);
    const a1 = await w!.call('attach', { access: await w!.call('get', { segId: s1.id }) });
    const a2 = await w!.call('attach', { access: await w!.call('get', { segId: s2.id }) });
    await w!.call('notifier', { att: a1, how: 'section', other: a2, tag: 1 });
    const hold = deferred();
    const n = d.space.notifier({ invalidateStart: (r) => (r.segId === s2.id ? hold.promise : undefined) });
    const m2 = s2.migrate(); // s2's window stays open until hold resolves
    // The agent's start on s1 waits to enter s2 while the invalidator of s1 gives up and ends.
    await expectCode(() => s1.migrate({ deadlineMs: 200 }), 'ERR_XPMEM_TIMEOUT');
    hold.resolve();
    await m2;
    await w!.until((e) => e.event === 'end' && e.tag === 1);
    expect(gates.log.filter((c) => c >= 11 && c <= 13)).toEqual([11, 12, 13]);
    await n.unregister();
    await teardown(d, [w!]);
  });
});
