/**
 * createPool: workers join on start and are reaped when Piscina destroys them; tasks get ids
 * and ranges; what a task attaches is released when it settles; an idle worker serves its
 * notifiers; an aborted or destroyed task leaves the domain consistent.
 */
import { describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
// The pool runs the built pool-worker module in its workers, so this file tests the build throughout.
import { createPool, type PoolOptions } from '../dist/src/pool.js';
import { Domain, XpmemError, type DomainOptions, type ReapMessage, type Segment } from '../dist/src/index.js';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { Piscina } from 'piscina';
import type { PoolRun } from '../dist/src/workers/pool.js';
import { carry, rebuild } from '../dist/src/workers/carry.js';
import { BOUND, bounded, expectCode, Gates, numbered } from './helpers.js';

function domain(opts: DomainOptions = {}): Promise<Domain> {
  return Domain.create({ arenaBytes: 1 << 20, deadlineMs: 5_000, ...opts });
}

const TASK = new URL('../dist/test/fixtures/pool-task.js', import.meta.url);
const KEEP_TASK = new URL('../dist/test/fixtures/keep-task.js', import.meta.url);
const CLOSE_SCRIPT = new URL('../dist/test/fixtures/close-script.js', import.meta.url);

/** Waits (bounded, on the event loop) until word `i` of `words` is at least `value`. */
async function until(words: Int32Array, i: number, value: number, what: string): Promise<void> {
  await bounded(
    (async () => {
      for (let v = Atomics.load(words, i); v < value; v = Atomics.load(words, i)) {
        const w = Atomics.waitAsync(words, i, v);
        if (w.async) await w.value;
      }
    })(),
    what,
  );
}

/** Resolves with the next `n` `xpmem:reap` messages. */
function nextReaps(n: number): Promise<ReapMessage[]> {
  const seen: ReapMessage[] = [];
  return bounded(
    new Promise((resolve) => {
      const on = (m: unknown): void => {
        if (seen.push(m as ReapMessage) < n) return;
        unsubscribe('xpmem:reap', on);
        resolve(seen);
      };
      subscribe('xpmem:reap', on);
    }),
    `${n} reaps`,
  );
}

async function closeAll(d: Domain, close: () => Promise<void>): Promise<void> {
  await close();
  await d.settled();
  const report = d.check();
  await d.close();
  expect(report.errors).toEqual([]);
}

describe('createPool', () => {
  it('sums a segment in place in parallel slices, and releases what each task attached', async () => {
    const d = await domain({ arenaBytes: 4 << 20 });
    const gates = new Gates();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 2, maxThreads: 2, workerData: { gates: gates.buffer, tag: 'mine' } });
    try {
      const n = 100_000;
      const seg = numbered(d, n);
      const slices = Array.from({ length: 8 }, (_, k) => pool.run({ op: 'sum', segId: seg.id, offset: (k * n) / 8, length: n / 8 }));
      const total = ((await Promise.all(slices)) as number[]).reduce((a, b) => a + b, 0);
      expect(total).toBe((n * (n - 1)) / 2);
      expect(await pool.run({ op: 'leak', segId: seg.id })).toBe('mine'); // the caller's workerData is kept
      expect(d.maps().filter((r) => r.kind === 'attachment' && r.space !== d.space.id)).toEqual([]);
      expect(d.stats().spaces).toBe(3);
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('a task that returns with an async section open: its attachment and permit go when that section ends', async () => {
    const d = await domain();
    const gates = new Gates();
    const words = new Int32Array(gates.buffer);
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 1, maxThreads: 1, workerData: { gates: gates.buffer } });
    try {
      const seg = d.space.make(4096);
      const slot = gates.take();
      const gate = gates.take();
      expect(await pool.run({ op: 'straggle', segId: seg.id, slot, gate })).toBe('returned');
      await until(words, slot, 1, 'the section is open');
      expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 }); // in use: not torn away under the section
      gates.open(gate);
      await until(words, slot, 2, 'the section ended');
      expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it("refuses atomics: 'sync', a task module that is not a path and an unknown option", async () => {
    const d = await domain();
    try {
      expect(() => createPool(d, { filename: TASK.pathname, atomics: 'sync' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      expect(() => createPool(d, { filename: 42 as unknown as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
      await expectCode(() => createPool(d, { filename: TASK.pathname, workerData: 7 }), 'ERR_INVALID_ARG_TYPE');
      const unknown = { filename: TASK.pathname, maxThread: 2 } as unknown as PoolOptions;
      expect(() => createPool(d, unknown)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("unknown key 'maxThread' (did you mean 'maxThreads'?)") }),
      );
    } finally {
      await d.close();
    }
  });

  it("errors reach pool.run() whole: class, code, segId, name, stack and cause, for ERR_XPMEM_*, Node's own codes and the task's, and so do their causes", async () => {
    const d = await domain();
    const pool = createPool(d, { filename: TASK, minThreads: 1, maxThreads: 1, name: 'fail' }); // a URL, and a pool-wide handler
    try {
      const seg = d.space.make(64);
      await seg.remove();
      const removed = await pool.run({ op: 'removed', segId: seg.id }).catch((e: unknown) => e);
      expect(removed).toBeInstanceOf(XpmemError);
      expect(removed).toMatchObject({ name: 'XpmemError', code: 'ERR_XPMEM_NO_SEGMENT', segId: seg.id });
      expect((removed as Error).stack).toContain('pool-task');
      const argument = await pool.run({ op: 'argument' }).catch((e: unknown) => e);
      expect(argument).toBeInstanceOf(RangeError);
      expect(argument).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      const own = (await pool.run({ op: 'own-error' }).catch((e: unknown) => e)) as Error & { code: string; detail: number[] };
      expect(own).toBeInstanceOf(Error);
      expect(own).toMatchObject({ name: 'TaskError', message: 'the task gave up', code: 'E_TASK', detail: [1, 2] });
      expect(own.cause).toEqual({ step: 3 });
      // Causes cross the same way, each rebuilt with its class and fields, a cause's cause too.
      const cause = async (kind: string): Promise<unknown> => ((await pool.run({ op: 'caused', cause: kind, space: d.space.id, segId: seg.id }).catch((e: unknown) => e)) as Error).cause;
      const enoent = { code: 'ENOENT', syscall: 'open', errno: -constants.errno.ENOENT, path: expect.stringContaining('no-such-file') };
      const fs = await cause('fs');
      expect(fs).toBeInstanceOf(Error);
      expect(fs).toMatchObject(enoent);
      const swap = (await cause('swap')) as XpmemError;
      expect(swap).toBeInstanceOf(XpmemError);
      expect(swap).toMatchObject({ name: 'XpmemError', code: 'ERR_XPMEM_SWAP_IO', space: d.space.id, segId: seg.id });
      expect(swap.cause).toMatchObject(enoent); // a cause's cause
      const dom = await cause('dom');
      expect(dom).toBeInstanceOf(DOMException);
      expect(dom).toMatchObject({ name: 'AbortError', code: DOMException.ABORT_ERR, message: 'This operation was aborted' });
      const aggregate = (await cause('aggregate')) as AggregateError;
      expect(aggregate).toBeInstanceOf(AggregateError);
      expect(aggregate.message).toBe('every attempt failed');
      expect(aggregate.errors).toHaveLength(2);
      expect(aggregate.errors[0]).toMatchObject(enoent);
      expect(aggregate.errors[1]).toBeInstanceOf(XpmemError);
      expect(aggregate.errors[1]).toMatchObject({ code: 'ERR_XPMEM_SWAP_IO', space: d.space.id });
      expect(aggregate.errors[1].cause).toMatchObject(enoent);
      // A chain that loops crosses as the same loop; a chain too long to carry crosses its first links.
      const loop = (await pool.run({ op: 'loop' }).catch((e: unknown) => e)) as Error;
      expect(loop.message).toBe('the task went round');
      expect(loop.cause).toBe(loop);
      const deep = (await pool.run({ op: 'deep' }).catch((e: unknown) => e)) as Error;
      expect(deep).toMatchObject({ message: 'link 99999', code: 'E_LINK' });
      expect(deep.cause).toMatchObject({ message: 'link 99998', code: 'E_LINK' });
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it("a task's error crosses as plain data: rebuilt whole even by a clone that keeps no Error (Bun's drops its cause and fields)", () => {
    /** What crosses when a clone keeps plain data only. */
    const across = (error: Error): unknown => rebuild(JSON.parse(JSON.stringify(carry(error))));
    class TaskError extends Error {}
    const own = Object.assign(new TaskError('the task gave up', { cause: { step: 3 } }), { name: 'TaskError', code: 'E_TASK' });
    const back = across(own) as Error;
    expect(back).toBeInstanceOf(Error);
    expect(back).toMatchObject({ name: 'TaskError', message: 'the task gave up', code: 'E_TASK', stack: own.stack });
    expect(back.cause).toEqual({ step: 3 });
    const removed = across(new XpmemError('ERR_XPMEM_NO_SEGMENT', 'no segment 7', { segId: 7, space: 66 }));
    expect(removed).toBeInstanceOf(XpmemError);
    expect(removed).toMatchObject({ code: 'ERR_XPMEM_NO_SEGMENT', message: 'no segment 7', segId: 7, space: 66 });
  });

  it('per-run names pick another export; a name the module lacks is ERR_INVALID_ARG_VALUE naming the module', async () => {
    const d = await domain();
    const gates = new Gates();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 1, maxThreads: 1, workerData: { gates: gates.buffer } });
    try {
      expect(await pool.run({ op: 'hi' }, { name: 'echo' })).toBe('echo hi');
      for (const name of ['missing', 'notAFunction']) {
        const error = (await pool.run({ op: 'hi' }, { name }).catch((e: unknown) => e)) as Error & { code: string };
        expect(error).toBeInstanceOf(TypeError);
        expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
        expect(error.message).toContain('pool-task.js');
        expect(error.message).toContain(`'${name}'`);
      }
      const badName = pool.run({ op: 'hi' }, { name: 7 as unknown as string }); // rejects, never throws
      await expect(badName).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(await pool.run({ op: 'leak', segId: d.space.make(64).id })).toBe(undefined); // the default export still
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('watches only its own workers: another Worker started while it is open and joining the domain is not reaped by it', async () => {
    const d = await domain();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 1, maxThreads: 1, workerData: { gates: new Gates().buffer } });
    try {
      expect(await pool.run({ op: 'joined' }, { name: 'echo' })).toBe('echo joined'); // the pool's worker joined first
      const other = new Worker(
        `
        const { workerData } = require('node:worker_threads');
        import(workerData.entry).then(({ join }) => join(workerData.handle));`,
        { eval: true, workerData: { entry: new URL('../dist/src/worker.js', import.meta.url).href, handle: d.handle() } },
      );
      await bounded(new Promise((resolve) => other.once('exit', resolve)), 'the other worker to join and exit');
      await d.settled();
      expect(d.stats().spaces).toBe(3); // this thread, the pool's worker, and the other one, unreaped
    } finally {
      await pool.close();
      await d.close();
    }
  });

  it('an idle pool worker serves its notifiers: compaction moving its segment gets start and end', async () => {
    const d = await domain();
    const gates = new Gates();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 1, maxThreads: 1, workerData: { gates: gates.buffer } });
    try {
      const hole = d.space.make(65536);
      const slot = gates.take();
      const segId = (await pool.run({ op: 'own', slot })) as number;
      await hole.remove();
      const before = d.maps().find((r) => r.segId === segId && r.kind === 'segment')!.offset;
      const report = await d.compact();
      expect(report).toEqual({ moved: 1, movedBytes: 65536, skipped: 0 });
      await until(new Int32Array(gates.buffer), slot, 2, 'the idle worker answered start and end');
      expect(d.maps().find((r) => r.segId === segId && r.kind === 'segment')!.offset).toBeLessThan(before);
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('an aborted task terminates its worker, which is reaped: its section no longer holds the segment', async () => {
    const d = await domain({ deadlineMs: 8 * BOUND }); // a drain left to its deadline would outlast bounded()
    const gates = new Gates();
    // No replacement worker (minThreads 0): only the reap can clear the dead worker's held word.
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 0, maxThreads: 1, workerData: { gates: gates.buffer } });
    try {
      const seg = d.space.make(4096);
      const slot = gates.take();
      const abort = new AbortController();
      const task = pool.run({ op: 'hold', segId: seg.id, slot, gate: gates.take() }, { signal: abort.signal });
      await until(new Int32Array(gates.buffer), slot, 1, 'the task holds its section');
      const before = d.maps().find((r) => r.kind === 'segment')!.offset;
      const migrated = seg.migrate(); // drains: the task holds a section
      await new Promise((resolve) => setImmediate(resolve));
      expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before);
      const reaped = nextReaps(1);
      abort.abort();
      await expect(task).rejects.toThrow(/abort/i);
      expect((await reaped)[0]!.segments).toBe(0);
      await bounded(migrated, 'the migrate, once the dead worker is reaped'); // a section still counted would hold it forever
      expect(d.stats().spaces).toBe(1); // no other worker joined meanwhile
      expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
      expect(d.check().errors).toEqual([]);
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('a closed pool stays closed: run() rejects ERR_XPMEM_CLOSED, and a worker Piscina starts after close() exits without joining', async () => {
    const d = await domain();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 1, maxThreads: 1 });
    let late: Promise<unknown> | undefined;
    try {
      const seg = d.space.make(4096);
      const sum = { op: 'sum', segId: seg.id, offset: 0, length: 1 };
      expect(await pool.run(sum)).toBe(0);
      await pool.close();
      await expectCode(() => pool.run(sum), 'ERR_XPMEM_CLOSED');
      // Piscina replaces an idle worker whose exit arrives after close() resolved; its own run()
      // (the pool's, unwrapped) starts a worker the same way.
      const started = new Promise<Worker>((resolve) => process.once('worker', resolve));
      late = Piscina.prototype.run.call(pool, { task: sum, filename: TASK.href, name: 'default' } satisfies PoolRun).catch((e: unknown) => e);
      const worker = await bounded(started, 'a worker started after close()');
      await bounded(once(worker, 'exit'), 'that worker exits');
      expect(d.stats().spaces).toBe(1); // it never joined
    } finally {
      await closeAll(d, () => pool.close());
    }
    expect(await bounded(late!, 'the late run fails when the pool closes again')).toBeInstanceOf(Error);
  });

  it("a pool whose domain was closed: run() rejects ERR_XPMEM_CLOSED, and a worker Piscina starts exits quietly instead of an 'error' event", async () => {
    const d = await domain();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 0, maxThreads: 1, idleTimeout: 0 });
    const errors: unknown[] = [];
    pool.on('error', (error: unknown) => errors.push(error)); // unheard, an 'error' event would end the program
    let late: Promise<unknown> | undefined;
    try {
      const seg = d.space.make(4096);
      const sum = { op: 'sum', segId: seg.id, offset: 0, length: 1 };
      const first = new Promise<Worker>((resolve) => process.once('worker', resolve));
      expect(await pool.run(sum)).toBe(0);
      await bounded(once(await first, 'exit'), 'the idle worker leaves (idleTimeout 0, minThreads 0)');
      await d.close();
      await expectCode(() => pool.run(sum), 'ERR_XPMEM_CLOSED');
      // A worker Piscina starts now (to replace one, or for its own run(), unwrapped here) finds the domain closed.
      const started = new Promise<Worker>((resolve) => process.once('worker', resolve));
      late = Piscina.prototype.run.call(pool, { task: sum, filename: TASK.href, name: 'default' } satisfies PoolRun).catch((e: unknown) => e);
      await bounded(once(await bounded(started, 'a worker started after the domain closed'), 'exit'), 'that worker exits');
      await new Promise((resolve) => setImmediate(resolve)); // the pool hears its exit
      expect(errors).toEqual([]);
    } finally {
      await pool.close();
    }
    expect(await bounded(late!, 'the late run fails when the pool closes')).toBeInstanceOf(Error);
  });

  it('destroying the pool mid-task leaves the domain consistent and every pool space reaped', async () => {
    const d = await domain();
    const gates = new Gates();
    const listeners = process.listenerCount('worker');
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 2, maxThreads: 2, workerData: { gates: gates.buffer } });
    try {
      const seg = d.space.make(4096);
      const gate = gates.take();
      const slots = [gates.take(), gates.take()];
      const tasks = slots.map((slot) =>
        pool.run({ op: 'hold', segId: seg.id, slot, gate }).then(
          () => undefined,
          (error: unknown) => error,
        ),
      );
      for (const slot of slots) await until(new Int32Array(gates.buffer), slot, 1, 'both tasks hold their sections');
      const reaped = nextReaps(2);
      await pool.destroy();
      for (const failed of await Promise.all(tasks)) expect(failed).toBeInstanceOf(Error);
      await reaped;
      expect(d.stats().spaces).toBe(1);
      expect(process.listenerCount('worker')).toBe(listeners); // the pool stopped watching new workers
      await seg.migrate({ deadlineMs: 1000 });
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('a worker keeps an attachment and a cache across tasks with { keep: true }; a notifier drops the cache and the next task rebuilds it', async () => {
    const d = await domain();
    const pool = createPool(d, { filename: KEEP_TASK.pathname, minThreads: 1, maxThreads: 1 });
    try {
      const publish = (value: number): Segment => {
        const seg = d.space.make(8 * 8);
        using att = seg.attach();
        att.write(Float64Array, (v) => {
          for (let i = 0; i < v.length; i++) v[i] = value * (i + 1);
        });
        return seg;
      };
      const first = publish(1);
      const total = (seg: Segment): Promise<unknown> => pool.run({ op: 'total', segId: seg.id });
      expect(await total(first)).toEqual({ sum: 36, attaches: 1, builds: 1 });
      expect(await total(first)).toEqual({ sum: 36, attaches: 1, builds: 1 }); // the kept attachment and the cache outlived the task
      expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 });
      await first.migrate(); // resolves once the worker's invalidateStart dropped the cache
      expect(await total(first)).toEqual({ sum: 36, attaches: 1, builds: 2 });
      const second = publish(2); // a new version, and the old one revoked
      await first.remove();
      expect(await total(second)).toEqual({ sum: 72, attaches: 2, builds: 3 });
      expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 }); // the worker detached the old one
      await pool.close(); // its thread exits: the space is reaped, and what it kept with it
      await d.settled();
      expect(d.stats()).toMatchObject({ spaces: 1, grants: 0, attachments: 0 });
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('a handle a task took without keep is released when the task settles, and says so when a later task uses it; keep is checked', async () => {
    const d = await domain();
    const pool = createPool(d, { filename: KEEP_TASK.pathname, minThreads: 1, maxThreads: 1 });
    try {
      const seg = d.space.make(64);
      expect(await pool.run({ op: 'stash', segId: seg.id })).toBe('stashed');
      expect(d.stats()).toMatchObject({ grants: 1, attachments: 1 }); // the kept access and its attachment
      const [att, access, kept] = (await pool.run({ op: 'unstash', segId: seg.id })) as [{ code: string; message: string }, { code: string; message: string }, number];
      expect(att.code).toBe('ERR_XPMEM_DETACHED');
      expect(att.message).toContain('released when the task that attached it settled; pass { keep: true } to keep it across tasks');
      expect(access.code).toBe('ERR_XPMEM_DETACHED');
      expect(access.message).toContain('released when the task that got it settled; pass { keep: true } to keep it across tasks');
      expect(kept).toBe(64); // what an access got with keep attaches is kept with it
      expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 }); // released by the task that used it
      // Outside a task, a detached handle says only that.
      const own = d.space.attach(seg.id, 'ro', undefined, { keep: true });
      own.detach();
      const detached = (() => {
        try {
          return own.read(() => 0);
        } catch (error) {
          return error as XpmemError;
        }
      })() as XpmemError;
      expect(detached.code).toBe('ERR_XPMEM_DETACHED');
      expect(detached.message).not.toContain('task');
      for (const [bad, code] of [
        [{ keep: 1 }, 'ERR_INVALID_ARG_TYPE'],
        [5, 'ERR_INVALID_ARG_TYPE'],
        [{ kep: true }, 'ERR_INVALID_ARG_VALUE'], // an unknown key, as in every options object
      ] as const) {
        await expectCode(() => d.space.get(seg.id, 'ro', bad as { keep: boolean }), code);
        await expectCode(() => d.space.attach(seg.id, 'ro', {}, bad as { keep: boolean }), code);
      }
      expect(d.stats()).toMatchObject({ grants: 0, attachments: 0 });
    } finally {
      await closeAll(d, () => pool.close());
    }
  });

  it('closing the domain with tasks in flight settles every run: finished ones with their value, the rest with ERR_XPMEM_CLOSED', async () => {
    const d = await domain();
    const gates = new Gates();
    const pool = createPool(d, { filename: TASK.pathname, minThreads: 2, maxThreads: 2, workerData: { gates: gates.buffer } });
    try {
      const seg = d.space.make(4096);
      const sum = { op: 'sum', segId: seg.id, offset: 0, length: 1 };
      const finished = [pool.run(sum), pool.run(sum)];
      await Promise.all(finished);
      const gate = gates.take(); // never opened: only the close can end these tasks
      const slots = [gates.take(), gates.take()];
      const running = slots.map((slot) => pool.run({ op: 'hold', segId: seg.id, slot, gate }));
      const queued = Array.from({ length: 4 }, () => pool.run(sum));
      const all = Promise.allSettled([...finished, ...running, ...queued]);
      for (const slot of slots) await until(new Int32Array(gates.buffer), slot, 1, 'both workers run a blocked task');
      await d.close();
      const settled = await bounded(all, 'every run to settle');
      expect(settled.slice(0, 2)).toEqual([
        { status: 'fulfilled', value: 0 },
        { status: 'fulfilled', value: 0 },
      ]);
      for (const s of settled.slice(2)) {
        expect(s.status).toBe('rejected');
        expect((s as PromiseRejectedResult).reason).toBeInstanceOf(XpmemError);
        expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_XPMEM_CLOSED' });
      }
      await expectCode(() => pool.run(sum), 'ERR_XPMEM_CLOSED');
    } finally {
      await pool.destroy(); // not close(), which would wait for blocked tasks the domain's close failed to end
    }
  });

  it('a script that closes the domain with tasks queued exits with code 0 once every run settled', async () => {
    const child = spawn(process.execPath, [fileURLToPath(CLOSE_SCRIPT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = once(child, 'exit');
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    try {
      const [code] = (await bounded(exited, 'the script to exit')) as [number | null];
      expect({ code, err }).toEqual({ code: 0, err: '' });
    } finally {
      child.kill(); // a no-op once it exited
    }
    const [held, ...rest] = JSON.parse(out) as unknown[];
    expect(held).toBe('ERR_XPMEM_CLOSED');
    expect(rest).toHaveLength(6);
    for (const r of rest) expect([0, 'ERR_XPMEM_CLOSED']).toContain(r); // done before the close, or ended by it
  });
});
