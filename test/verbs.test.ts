import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { Domain, join, type Segment } from '../src/index.js';
import { agents, domain, expectCode, Gates, spaceSlot, teardown, until } from './helpers.js';
import { H_MUTEX } from '../src/layout.js';

/** What `fn` throws, synchronously; fails when it returns. */
function thrown(fn: () => unknown): unknown {
  let returned: unknown;
  try {
    returned = fn();
  } catch (error) {
    return error;
  }
  throw new Error(`nothing was thrown; it returned ${String(returned)}`);
}

describe('XPMEM verbs in one space', () => {
  it('make gives zero-filled memory that get/attach/read/write reach without copies', async () => {
    const d = await domain();
    const seg = d.space.make(4096, { name: 'pattern' });
    const att = d.space.get(seg.id, 'rw').attach();
    expect(att.read((v) => v.every((b) => b === 0))).toBe(true);
    att.write((v) => {
      v.fill(7);
    });
    const again = d.space.get(seg.id, 'ro').attach({ offset: 100, length: 8 });
    expect(again.read((v) => Array.from(v))).toEqual([7, 7, 7, 7, 7, 7, 7, 7]);
    expect(att.read(Float64Array, (v) => v.length)).toBe(512);
    await seg.remove();
    const fresh = d.space.make(4096);
    expect(
      d.space
        .get(fresh.id)
        .attach()
        .read((v) => v.every((b) => b === 0)),
    ).toBe(true);
    expect(d.check()).toEqual({ ok: true, errors: [] });
    await d.close();
  });

  it('memory of a removed segment is reusable at once: 5,000 make/remove of 1 MiB in a 32 MiB arena', async () => {
    const d = await Domain.create({ arenaBytes: 32 << 20, maxArenaBytes: 32 << 20 });
    const small: { remove(): Promise<void> }[] = [];
    for (let i = 0; i < 5000; i++) {
      const seg = d.space.make(1 << 20);
      if (i % 100 === 0) small.push(d.space.make(64 + i));
      seg.removeSync();
    }
    for (const s of small) await s.remove();
    expect(d.stats().freeBytes).toBe(32 << 20);
    expect(d.check().ok).toBe(true);
    await d.close();
  });

  it('an awaited removal nobody can observe is quick only while the domain mutex is free: taken, it waits without blocking the event loop', async () => {
    const d = await domain();
    const gates = new Gates();
    const [holder] = await agents(d, gates, 1);
    try {
      const free = d.stats().freeBytes;
      const quick = d.space.make(4096);
      const removed = quick.remove();
      expect(d.stats().freeBytes).toBe(free); // removed before remove() returned
      await removed;
      const words = new Int32Array(d.handle().control);
      const seg = d.space.make(4096);
      Atomics.store(words, H_MUTEX, spaceSlot(d, await holder!.call<number>('space')) + 1); // as if the other thread held it
      let settled = false;
      const waiting = seg.remove().finally(() => (settled = true));
      await new Promise((resolve) => setImmediate(resolve)); // the event loop turns: remove() did not block it
      expect(settled).toBe(false);
      Atomics.store(words, H_MUTEX, 0);
      Atomics.notify(words, H_MUTEX);
      await waiting;
      expect(d.stats().freeBytes).toBe(free);
    } finally {
      await teardown(d, [holder!]);
    }
  });

  it('a removal nobody can observe opens no window; a permit or an owner notifier makes it a full invalidation', async () => {
    const d = await domain();
    try {
      const mapped = d.space.make(4096);
      const map = d.space.get(mapped.id).attach().map();
      const before = d.stats().invalidations;
      const left = d.space.make(4096);
      const access = d.space.get(left.id);
      const stale = access.attach().map(); // a mapping outlives its attachment: no lock, no grant
      access.release();
      left.removeSync();
      expect(stale.retry()).toBe(true); // the seqcount moved: its view is of freed memory
      d.space.make(4096, { name: 'alone' }).removeSync();
      const swapped = d.space.make(4096);
      await swapped.swapOut();
      await swapped.remove(); // swapped out, with its swap file: the file goes too
      expect(readdirSync(d.handle().swapDir)).toEqual([]);
      expect(d.stats().invalidations - before).toBe(1); // only the swap-out
      expect(map.retry()).toBe(false); // no window anywhere near the mapped segment either
      const granted = d.space.make(4096);
      const permit = d.space.get(granted.id, 'ro'); // a permit, nothing attached: it must be revoked in a window
      await granted.remove();
      expect(d.stats().invalidations - before).toBe(2);
      await expectCode(() => permit.attach(), 'ERR_XPMEM_REMOVED');
      const events: string[] = [];
      d.space.notifier({
        invalidateStart: (r) => {
          events.push(`start ${r.event}`);
        },
        invalidateEnd: (r) => {
          events.push(`end ${r.event}`);
        },
      });
      await d.space.make(4096).remove();
      expect(events).toEqual(['start remove', 'end remove']); // the owner's space-wide notifier hears it
      const gone = d.space.make(64);
      await gone.remove();
      const reused = d.space.make(64); // the freed slot again
      const reusedAccess = d.space.get(reused.id);
      const fresh = reusedAccess.attach().map();
      reusedAccess.release(); // nobody observes it now but the mapping
      await expectCode(() => gone.remove(), 'ERR_XPMEM_REMOVED');
      expect(fresh.retry()).toBe(false); // a stale handle's call touched nothing of the new segment
      await reused.remove();
      expect(d.stats()).toMatchObject({ segments: 1, grants: 1, attachments: 1 }); // the mapped one
      expect(d.check().errors).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('bad input gets a typed error and leaves the domain unchanged', async () => {
    const d = await domain({ maxArenaBytes: 4 << 20 });
    const seg = d.space.make(1024, { permit: 'ro' });
    const before = JSON.stringify(d.maps());
    const cases: [() => unknown, string][] = [
      [() => d.space.make('1' as unknown as number), 'ERR_INVALID_ARG_TYPE'],
      [() => d.space.make(0), 'ERR_OUT_OF_RANGE'],
      [() => d.space.make(1.5), 'ERR_OUT_OF_RANGE'],
      [() => d.space.make(64 << 20), 'ERR_XPMEM_NO_MEMORY'],
      [() => d.space.make(8, { permit: 'x' as 'rw' }), 'ERR_INVALID_ARG_VALUE'],
      [() => d.space.get('1' as unknown as number), 'ERR_INVALID_ARG_TYPE'],
      [() => d.space.get(-1), 'ERR_XPMEM_NO_SEGMENT'],
      [() => d.space.get(seg.id + 1), 'ERR_XPMEM_NO_SEGMENT'],
      [() => d.space.get(seg.id, 'x' as 'rw'), 'ERR_INVALID_ARG_VALUE'],
      [() => d.space.get(seg.id).attach({ offset: 1000, length: 100 }), 'ERR_XPMEM_RANGE'],
      [() => d.space.get(seg.id).attach({ offset: -1 }), 'ERR_OUT_OF_RANGE'],
      [() => d.space.get(seg.id).attach({ length: 0 }), 'ERR_OUT_OF_RANGE'],
      [
        () =>
          d.space
            .get(seg.id)
            .attach()
            .read(3 as unknown as () => void),
        'ERR_INVALID_ARG_TYPE',
      ],
      [
        () =>
          d.space
            .get(seg.id)
            .attach({ offset: 1, length: 16 })
            .read(Float64Array, () => 0),
        'ERR_XPMEM_RANGE',
      ],
      [() => d.space.notifier(null as unknown as object), 'ERR_INVALID_ARG_TYPE'],
      [() => d.space.notifier({ invalidateStart: 1 as unknown as () => void }), 'ERR_INVALID_ARG_TYPE'],
      [() => seg.resize(-5), 'ERR_OUT_OF_RANGE'],
      [() => seg.protect('x' as 'rw'), 'ERR_INVALID_ARG_VALUE'],
    ];
    for (const [fn, code] of cases) {
      await expectCode(fn, code);
      expect(d.check().errors).toEqual([]);
    }
    expect(JSON.stringify(d.maps().filter((r) => r.kind === 'segment'))).toBe(JSON.stringify(JSON.parse(before).filter((r: { kind: string }) => r.kind === 'segment')));
    await d.close();
  });

  it('bad options, handles and signals anywhere in the API get typed errors before anything changes', async () => {
    const d = await domain();
    const seg = d.space.make(256);
    const att = d.space.get(seg.id).attach();
    const aborted = AbortSignal.abort('stop');
    const bad = { deadlineMs: -1 };
    const cases: [() => unknown, string][] = [
      [() => Domain.create({ arenaBytes: -1 }), 'ERR_OUT_OF_RANGE'],
      [() => Domain.create({ deadlineMs: '5' as unknown as number }), 'ERR_INVALID_ARG_TYPE'],
      [() => Domain.create({ slowMs: 0 }), 'ERR_OUT_OF_RANGE'],
      [() => Domain.create({ slowMs: 1.5 }), 'ERR_OUT_OF_RANGE'],
      [() => Domain.create({ slowMs: '200' as unknown as number }), 'ERR_INVALID_ARG_TYPE'],
      [() => d.trace({ maxEvents: 0 }), 'ERR_OUT_OF_RANGE'],
      [() => d.trace({ maxEvent: 10 } as object), 'ERR_INVALID_ARG_VALUE'],
      [() => Domain.create(7 as unknown as object), 'ERR_INVALID_ARG_TYPE'],
      [() => Domain.create({ capacity: 3 as unknown as object }), 'ERR_INVALID_ARG_TYPE'],
      [() => join({ id: 1 } as unknown as Parameters<typeof join>[0]), 'ERR_INVALID_ARG_TYPE'],
      [() => d.watch({} as unknown as Worker), 'ERR_INVALID_ARG_TYPE'],
      [() => d.spawn(new URL('./helpers.js', import.meta.url), { workerData: 5 }), 'ERR_INVALID_ARG_TYPE'],
      [() => d.maps('x' as unknown as number), 'ERR_INVALID_ARG_TYPE'],
      [() => att.section('wx' as 'rw'), 'ERR_INVALID_ARG_VALUE'],
      [() => att.section('ro', bad), 'ERR_OUT_OF_RANGE'],
      [() => att.section('ro', { signal: {} as AbortSignal }), 'ERR_INVALID_ARG_TYPE'],
      [() => att.readAsync(() => 0, bad), 'ERR_OUT_OF_RANGE'],
      [() => att.writeAsync(5 as unknown as () => void), 'ERR_INVALID_ARG_TYPE'],
      [() => att.writeAsync(() => 0, { signal: aborted }), 'ERR_XPMEM_ABORTED'],
      [() => att.map(bad), 'ERR_OUT_OF_RANGE'],
      [() => att.write(Object as unknown as Float64ArrayConstructor, () => 0), 'ERR_INVALID_ARG_TYPE'],
      [() => seg.migrate(bad), 'ERR_OUT_OF_RANGE'],
      [() => seg.migrate({ signal: aborted }), 'ERR_XPMEM_ABORTED'],
      [() => seg.removeSync({ signal: aborted }), 'ERR_XPMEM_ABORTED'],
      [() => seg.resize(2 ** 40), 'ERR_OUT_OF_RANGE'],
      [() => seg.protectSync('ro', 3 as unknown as object), 'ERR_INVALID_ARG_TYPE'],
      [() => d.trace().stop({ deadlineMs: -1 }), 'ERR_OUT_OF_RANGE'], // last: the trace it started goes on recording
    ];
    const before = JSON.stringify(d.maps());
    for (const [i, [fn, code]] of cases.entries()) {
      await expectCode(fn, code).catch((error: Error) => {
        throw new Error(`case ${i}: ${error.message}`);
      });
      expect(d.check().errors).toEqual([]);
    }
    expect(JSON.stringify(d.maps())).toBe(before);
    expect(att.read((v) => v.length)).toBe(256); // nothing was left half-entered
    await d.close();
    await expectCode(() => att.read(() => 0), 'ERR_XPMEM_CLOSED');
    await expectCode(() => d.space.get(seg.id), 'ERR_XPMEM_CLOSED');
    await expectCode(() => d.space.notifier({}), 'ERR_XPMEM_CLOSED');
    await expectCode(() => seg.migrate(), 'ERR_XPMEM_CLOSED');
    await expectCode(() => join(d.handle()), 'ERR_XPMEM_CLOSED');
  });

  it('unknown options are refused naming the known key they resemble; byte sizes the arena would round are refused', async () => {
    const create = Domain.create as (opts: unknown) => Promise<Domain>;
    const cases: [() => unknown, string, RegExp][] = [
      [() => create({ areanBytes: 1 << 20 }), 'ERR_INVALID_ARG_VALUE', /unknown key 'areanBytes' \(did you mean 'arenaBytes'\?\)/],
      [() => create({ memorylimit: 1 << 20 }), 'ERR_INVALID_ARG_VALUE', /'memorylimit' \(did you mean 'memoryLimit'\?\)/],
      [
        () => create({ colour: 'blue' }),
        'ERR_INVALID_ARG_VALUE',
        /only known keys \(arenaBytes, maxArenaBytes, deadlineMs, memoryLimit, swapDir, capacity, slowMs, shared\)\. Received unknown key 'colour'$/,
      ],
      [() => create({ capacity: { segment: 8 } }), 'ERR_INVALID_ARG_VALUE', /"options\.capacity".*unknown key 'segment' \(did you mean 'segments'\?\)/],
      [() => create({ arenaBytes: 100 }), 'ERR_OUT_OF_RANGE', /"options\.arenaBytes".*a multiple of 64 .*Received 100$/],
      [() => create({ arenaBytes: 2 ** 31, maxArenaBytes: 2 ** 30 }), 'ERR_OUT_OF_RANGE', /"options\.arenaBytes".*raise options\.maxArenaBytes/],
      [() => create({ arenaBytes: 2 ** 31 }), 'ERR_OUT_OF_RANGE', /to options\.maxArenaBytes \(1073741824, the default\); raise options\.maxArenaBytes/],
      [() => create({ maxArenaBytes: 1000 }), 'ERR_OUT_OF_RANGE', /"options\.maxArenaBytes".*a multiple of 64/],
      [() => create({ memoryLimit: 1000 }), 'ERR_OUT_OF_RANGE', /"options\.memoryLimit".*a multiple of 64/],
    ];
    for (const [i, [fn, code, message]] of cases.entries()) {
      const error = await Promise.resolve()
        .then(fn)
        .then(
          () => new Error('nothing was thrown'),
          (e: unknown) => e as Error,
        );
      expect(error, `case ${i}`).toMatchObject({ code, message: expect.stringMatching(message) });
    }
  });

  it('argument errors print what they received, as Node core does', async () => {
    const d = await domain();
    try {
      const seg = d.space.make(64);
      const att = seg.attach();
      const loose = att as unknown as { read(...args: unknown[]): unknown; write(...args: unknown[]): unknown };
      const cases: [() => unknown, string][] = [
        [() => loose.read(Float32Array), 'The "fn" argument must be of type function. Received undefined'],
        [() => d.space.get(undefined as unknown as number), 'The "segId" argument must be of type number. Received undefined'],
        [() => d.space.get('7' as unknown as number), `The "segId" argument must be of type number. Received type string ('7')`],
        [() => loose.write(Object, () => 0), 'The "type" argument must be a typed-array constructor such as Float64Array. Received function Object'],
        [() => d.space.make(8, { name: 5 as unknown as string }), 'The "options.name" argument must be of type string. Received type number (5)'],
        [() => d.space.notifier(null as unknown as object), 'The "callbacks" argument must be of type object. Received null'],
        [() => d.watch(new Map() as unknown as Worker), 'The "worker" argument must be an instance of Worker. Received an instance of Map'],
        [() => seg.attach({ offset: 'x'.repeat(40) as unknown as number }), `The "options.offset" argument must be of type number. Received type string ('${'x'.repeat(25)}...')`],
      ];
      expect(cases.map(([fn]) => (thrown(fn) as Error).message)).toEqual(cases.map(([, message]) => message));
    } finally {
      await d.close();
    }
  });

  it('use after detach, release, remove and close gives typed errors; a second detach or release is a no-op', async () => {
    const d = await domain();
    const seg = d.space.make(256);
    const access = d.space.get(seg.id);
    const att = access.attach();
    att.detach();
    att.detach();
    await expectCode(() => att.read(() => 0), 'ERR_XPMEM_DETACHED');
    const att2 = access.attach();
    access.release();
    access.release();
    await expectCode(() => att2.write(() => 0), 'ERR_XPMEM_DETACHED');
    await expectCode(() => access.attach(), 'ERR_XPMEM_DETACHED');
    const att3 = d.space.get(seg.id).attach();
    await seg.remove();
    await expectCode(() => att3.read(() => 0), 'ERR_XPMEM_REMOVED');
    await expectCode(() => seg.migrate(), 'ERR_XPMEM_REMOVED');
    await expectCode(() => seg.remove(), 'ERR_XPMEM_REMOVED');
    await expectCode(() => d.space.get(seg.id), 'ERR_XPMEM_NO_SEGMENT');
    expect(d.check().errors).toEqual([]);
    await d.close();
    await expectCode(() => d.space.make(64), 'ERR_XPMEM_CLOSED');
  });

  it('permits are checked at get(); protection is checked at section entry', async () => {
    const d = await domain();
    const gates = new Gates();
    const [a] = await agents(d, gates, 1);
    const ro = d.space.make(64, { permit: 'ro' });
    const none = d.space.make(64, { permit: 'none' });
    await expectCode(() => a!.call('get', { segId: ro.id, mode: 'rw' }), 'ERR_XPMEM_PERMISSION');
    await expectCode(() => a!.call('get', { segId: none.id, mode: 'ro' }), 'ERR_XPMEM_PERMISSION');
    const access = await a!.call('get', { segId: ro.id, mode: 'ro' });
    const att = await a!.call('attach', { access });
    await expectCode(() => a!.call('write', { att, bytes: [1] }), 'ERR_XPMEM_PERMISSION');
    const rw = d.space.make(64);
    const att2 = await a!.call('attach', { access: await a!.call('get', { segId: rw.id, mode: 'rw' }) });
    await a!.call('write', { att: att2, bytes: [5] });
    await rw.protect('ro');
    await expectCode(() => a!.call('write', { att: att2, bytes: [6] }), 'ERR_XPMEM_PERMISSION');
    expect(await a!.call('read', { att: att2, to: 1 })).toEqual([5]);
    await rw.protect('none');
    await expectCode(() => a!.call('read', { att: att2 }), 'ERR_XPMEM_PERMISSION');
    await rw.protect('rw');
    await a!.call('write', { att: att2, bytes: [6] });
    await teardown(d, [a!]);
  });

  it('resize grows with zeros and keeps bytes; shrinking makes attachments past the end unusable', async () => {
    const d = await domain();
    const seg = d.space.make(100);
    const whole = d.space.get(seg.id).attach();
    whole.write((v) => {
      v.fill(9);
    });
    const tail = d.space.get(seg.id).attach({ offset: 64, length: 36 });
    await seg.resize(100_000);
    const grown = d.space.get(seg.id).attach();
    expect(grown.read((v) => [v[0], v[99], v[100], v[99_999]])).toEqual([9, 9, 0, 0]);
    await seg.resize(64);
    await expectCode(() => tail.read(() => 0), 'ERR_XPMEM_RANGE');
    expect(
      d.space
        .get(seg.id)
        .attach()
        .read((v) => v.length),
    ).toBe(64);
    expect(seg.bytes).toBe(64);
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('sections nest only in increasing segment id order; a sync VM operation inside its own section would deadlock', async () => {
    const d = await domain();
    const low = d.space.make(64);
    const high = d.space.make(64);
    const a = d.space.get(low.id).attach();
    const b = d.space.get(high.id).attach();
    expect(a.read(() => b.read(() => 'nested'))).toBe('nested');
    await expectCode(() => b.read(() => a.read(() => 0)), 'ERR_XPMEM_WOULD_DEADLOCK');
    await expectCode(() => a.read(() => a.read(() => 0)), 'ERR_XPMEM_WOULD_DEADLOCK');
    await expectCode(() => a.read(() => low.migrateSync()), 'ERR_XPMEM_WOULD_DEADLOCK');
    await expectCode(() => a.read(() => a.detach()), 'ERR_XPMEM_BUSY');
    // A reused table slot gets a new, higher id: the order is by id, not by where it is stored.
    await low.remove();
    const later = d.space.make(64);
    expect(later.id).toBeGreaterThan(high.id);
    const c = d.space.get(later.id).attach();
    expect(b.read(() => c.read(() => 'by id'))).toBe('by id');
    await expectCode(() => c.read(() => b.read(() => 0)), 'ERR_XPMEM_WOULD_DEADLOCK');
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('explicit sections end with using; mapped mode retries after an invalidation', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = d.space.get(seg.id).attach();
    {
      using s = att.section('rw');
      s.view[0] = 42;
    }
    const m = att.map();
    expect(m.view[0]).toBe(42);
    expect(m.valid).toBe(true);
    await seg.migrate();
    expect(m.retry()).toBe(true);
    m.refresh();
    expect(m.valid).toBe(true);
    expect(m.view[0]).toBe(42);
    await d.close();
  });

  it('a stale segment handle whose slot a new segment took says ERR_XPMEM_REMOVED, also inside a section on the new one', async () => {
    const d = await Domain.create({ capacity: { segments: 1 } });
    const old = d.space.make(64);
    await old.remove();
    const next = d.space.make(64); // the same slot, a new generation
    const att = d.space.get(next.id).attach();
    await expectCode(() => old.migrate(), 'ERR_XPMEM_REMOVED');
    att.read(() => expect(() => old.migrateSync()).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_REMOVED' })));
    att.read(() => expect(() => next.migrateSync()).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_WOULD_DEADLOCK' })));
    expect(d.check().errors).toEqual([]);
    await d.close();
  });
});

describe('the forms a task author reaches for', () => {
  it('seg.attach() and space.attach() own their permit: detach or using releases both; using releases an Access', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const own = seg.attach({ offset: 8, length: 8 });
    own.write((v) => {
      v.fill(9);
    });
    expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 });
    own.detach();
    expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    {
      using att = d.space.attach(seg.id, 'ro');
      expect(att.read((v) => v[8])).toBe(9);
      expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 });
    }
    expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    {
      using access = d.space.get(seg.id, 'ro');
      access.attach();
      access.attach({ offset: 0, length: 8 });
    }
    expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    await expectCode(() => d.space.attach(seg.id, 'rx' as 'ro'), 'ERR_INVALID_ARG_VALUE');
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('await using closes a domain, removes a segment and unregisters a notifier; a segment already removed or a closed domain disposes quietly', async () => {
    let outer: Domain;
    let kept: Segment;
    {
      await using d = await domain();
      outer = d;
      kept = d.space.make(64);
      const events: string[] = [];
      let segId = -1;
      {
        await using seg = d.space.make(64);
        segId = seg.id;
        await using n = seg.attach().notifier({
          invalidateEnd: (r) => {
            events.push(r.event);
          },
        });
        await seg.migrate();
        expect(n.registered).toBe(true);
        {
          await using gone = d.space.make(64);
          await gone.remove(); // removed before its disposal: nothing left to do
        }
      }
      await expectCode(() => d.space.get(segId), 'ERR_XPMEM_NO_SEGMENT');
      expect(events).toEqual(['migrate']); // unregistered before its segment's removal
      expect(d.stats()).toMatchObject({ segments: 1, grants: 0, attachments: 0 });
    }
    await expectCode(() => outer.space.make(64), 'ERR_XPMEM_CLOSED');
    await kept[Symbol.asyncDispose](); // its domain closed: nothing left to do
    await outer[Symbol.asyncDispose](); // a second close is a no-op
  });

  it('a failed space.attach() or seg.attach() keeps no permit', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    await expectCode(() => d.space.attach(seg.id, 'ro', { offset: 64 }), 'ERR_XPMEM_RANGE');
    await expectCode(() => d.space.attach(seg.id, 'ro', { length: -1 }, { keep: true }), 'ERR_OUT_OF_RANGE');
    await expectCode(() => seg.attach({ offset: 8, length: 64 }), 'ERR_XPMEM_RANGE');
    expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('typed views in every section form: readAsync, writeAsync and section take a typed-array constructor', async () => {
    const d = await domain();
    const att = d.space.make(64).attach();
    await att.writeAsync(Float64Array, async (v) => {
      v[1] = 2.5;
    });
    expect(await att.readAsync(Float64Array, async (v) => v[1])).toBe(2.5);
    {
      using s = att.section('rw', Int32Array, { deadlineMs: 100 });
      s.view[0] = -7;
    }
    {
      using s = att.section('ro', Int32Array);
      expect([s.view.length, s.view[0]]).toEqual([16, -7]);
    }
    await expectCode(() => att.readAsync(Uint8Array as unknown as (v: Uint8Array) => number), 'ERR_INVALID_ARG_TYPE');
    await d.close();
  });

  it('a section whose callback returns its own view fails with ERR_XPMEM_VIEW_ESCAPE; a copy or a value is returned as is', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = seg.attach();
    await expectCode(() => att.read((v) => v), 'ERR_XPMEM_VIEW_ESCAPE');
    await expectCode(() => att.write(Float64Array, (v) => v.subarray(2)), 'ERR_XPMEM_VIEW_ESCAPE');
    await expectCode(() => att.readAsync(async (v) => v), 'ERR_XPMEM_VIEW_ESCAPE');
    const error = await Promise.resolve()
      .then(() => att.read((v) => v))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ segId: seg.id });
    const copy = att.read((v) => v.slice(0, 4));
    expect(copy.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    expect(Array.from(copy)).toEqual([0, 0, 0, 0]);
    expect(att.read((v) => ({ first: v[0] }))).toEqual({ first: 0 });
    expect(
      att.write((v) => {
        v[0] = 1;
      }),
    ).toBeUndefined(); // the section still works after the refusals
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('a sync section whose callback returns a promise fails with ERR_XPMEM_ASYNC_CALLBACK: the section ended at its first await', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = seg.attach();
    // What plain JavaScript can pass (the TypeScript types refuse these callbacks: test/types.test-d.ts).
    const loose = att as unknown as { read(fn: (v: Uint8Array) => unknown): unknown; write(type: unknown, fn: (v: Float64Array) => unknown): unknown };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      let resumed = false;
      let release = (): void => {};
      const paused = new Promise<void>((resolve) => (release = resolve));
      const error = thrown(() =>
        loose.read(async () => {
          await paused;
          resumed = true;
        }),
      );
      expect(error).toMatchObject({ code: 'ERR_XPMEM_ASYNC_CALLBACK', segId: seg.id });
      expect((error as Error).message).toMatch(/readAsync.*writeAsync/);
      seg.migrateSync(); // the section had ended: a sync VM operation on its segment does not wait for it
      release();
      await until(() => resumed, 'the callback to go on after its first await');
      await expectCode(
        () =>
          loose.write(Float64Array, async () => {
            throw new Error('thrown outside any section');
          }),
        'ERR_XPMEM_ASYNC_CALLBACK',
      );
      // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise, on purpose
      const thenable = { then: (_: unknown, reject: (e: Error) => void) => reject(new Error('a thenable')) };
      await expectCode(() => loose.read(() => thenable), 'ERR_XPMEM_ASYNC_CALLBACK');
      await new Promise((resolve) => setImmediate(resolve)); // an unhandled rejection is reported before the next macrotask
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(await att.readAsync(async (v) => v.length)).toBe(64); // what to use instead
    // biome-ignore lint/suspicious/noThenProperty: a then that is not a function, on purpose
    const notThenable = { then: 1 };
    expect(att.read(() => notThenable)).toBe(notThenable); // returned as it is
    expect(d.check().errors).toEqual([]);
    await d.close();
  });

  it('errors name the segment (segId) and say why plainly: ranges past 2^31 - 1, a type with no callback, one segment nested in itself', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    const att = seg.attach();
    await expectCode(() => d.space.get(seg.id).attach({ length: 2 ** 31 }), 'ERR_OUT_OF_RANGE');
    await expectCode(() => (att.read as (t: unknown) => unknown)(Float32Array), 'ERR_INVALID_ARG_TYPE');
    const nested = (await Promise.resolve()
      .then(() => att.read(() => att.read(() => 0)))
      .catch((e: unknown) => e)) as Error;
    expect(nested).toMatchObject({ code: 'ERR_XPMEM_WOULD_DEADLOCK', segId: seg.id });
    expect(nested.message).toContain(`already holds a section on segment ${seg.id}`);
    await seg.remove();
    const removed = await Promise.resolve()
      .then(() => att.read(() => 0))
      .catch((e: unknown) => e);
    expect(removed).toMatchObject({ code: 'ERR_XPMEM_REMOVED', segId: seg.id });
    const missing = await Promise.resolve()
      .then(() => d.space.get(seg.id))
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'ERR_XPMEM_NO_SEGMENT', segId: seg.id });
    await d.close();
  });
});
