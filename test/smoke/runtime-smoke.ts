/**
 * The runtime smoke test: the library's main paths on whatever runtime runs this file. .ci/run
 * runs the built file under Deno (`deno run -A dist/test/smoke/runtime-smoke.js`) and Bun
 * (`bun dist/test/smoke/runtime-smoke.js`); test/runtimes.test.ts runs it under the suite's
 * Node. The owner makes a segment; a worker attaches it with a notifier; the owner migrates it
 * (waiting for the worker's invalidateStart; the worker then reads the same bytes) and removes
 * it (the worker's next section fails with ERR_XPMEM_REMOVED); a piscina pool (createPool)
 * sums a segment in place while it migrates, and its tasks' errors come back whole; the domain
 * checks consistent and the program ends by itself. A shared domain (one other processes may
 * open) is made and closed on Node; Deno and Bun, which load no V8 addon, refuse it with
 * ERR_XPMEM_UNSUPPORTED naming the runtime, and so does Node where the addon cannot load
 * (XPMEM_THREADS_PREBUILD naming a folder that does not exist). One line per step; exits 1 on the first
 * failure, or when it has not ended within DEADLINE_MS (a hang fails too).
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { setTimeout } from 'node:timers';
import type { Worker } from 'node:worker_threads';
import { Domain, XpmemError, type Segment } from '../../src/index.js';
import { createPool } from '../../src/pool.js';

const DEADLINE_MS = 60_000;
const deadline = setTimeout(() => fail(`did not end within ${DEADLINE_MS} ms`), DEADLINE_MS);

/** Reports `why` and ends the program with status 1 (its workers with it). */
function fail(why: unknown): never {
  console.error('runtime smoke: FAILED:', why);
  process.exit(1);
}

/** Throws unless `ok`; prints the step. */
function check(ok: boolean, step: string): void {
  if (!ok) throw new Error(`not so: ${step}`);
  console.log(`ok ${step}`);
}

/** The runtime running this file, with its version. */
function runtime(): string {
  const { bun, deno, node } = process.versions;
  return bun !== undefined ? `Bun ${bun}` : deno !== undefined ? `Deno ${deno}` : `Node ${node}`;
}

/** Sends `ask` to `worker` and resolves with its answer. */
async function answer(worker: Worker, ask: string): Promise<{ sum?: number; code?: string }> {
  worker.postMessage(ask);
  const [reply] = (await once(worker, 'message')) as [{ sum?: number; code?: string }];
  return reply;
}

/** Waits, on the event loop, until word `i` of `words` is at least `n`. */
async function reach(words: Int32Array, i: number, n: number): Promise<void> {
  for (let v = Atomics.load(words, i); v < n; v = Atomics.load(words, i)) {
    const w = Atomics.waitAsync(words, i, v);
    if (w.async) await w.value;
  }
}

/** A worker attaches `seg` with a notifier; the owner migrates, then removes it under the worker. */
async function notifierSteps(domain: Domain, seg: Segment, bytes: number): Promise<void> {
  const counts = new Int32Array(new SharedArrayBuffer(8));
  const worker = domain.spawn(new URL('./smoke-worker.js', import.meta.url), { workerData: { segId: seg.id, counts: counts.buffer } });
  const exited = once(worker, 'exit');
  await once(worker, 'message'); // ready: attached, notifier registered
  const pattern = (bytes / 256) * ((255 * 256) / 2);
  check((await answer(worker, 'sum')).sum === pattern, 'a worker attached the segment and read what the owner wrote');
  await seg.migrate();
  check(Atomics.load(counts, 0) === 1, "migrate: the owner waited for the worker's invalidateStart");
  await reach(counts, 1, 1);
  check((await answer(worker, 'sum')).sum === pattern, 'migrate: invalidateEnd came, and the worker reads the same bytes at the new place');
  await seg.remove();
  check(Atomics.load(counts, 0) === 2, "remove: the owner waited for the worker's invalidateStart");
  await reach(counts, 1, 2);
  check((await answer(worker, 'sum')).code === 'ERR_XPMEM_REMOVED', "remove: invalidateEnd came, and the worker's next section fails with ERR_XPMEM_REMOVED");
  worker.postMessage('bye');
  await exited;
  await domain.settled();
  check(domain.stats().spaces === 1, 'the worker detached and ended, and the domain reaped its space');
}

/** A piscina pool sums a segment in place while it migrates; its tasks' errors come back whole. */
async function poolSteps(domain: Domain, removed: number): Promise<void> {
  const pool = createPool(domain, { filename: new URL('../fixtures/pool-task.js', import.meta.url), minThreads: 2, maxThreads: 2 });
  const n = 1 << 16;
  const seg = domain.space.make(n * 8, { name: 'sum' });
  {
    using att = seg.attach();
    att.write(Float64Array, (v) => {
      for (let i = 0; i < n; i++) v[i] = i;
    });
  }
  const slices = Array.from({ length: 8 }, (_, k) => pool.run({ op: 'sum', segId: seg.id, offset: (k * n) / 8, length: n / 8 }) as Promise<number>);
  await seg.migrate();
  const total = (await Promise.all(slices)).reduce((a, b) => a + b, 0);
  check(total === (n * (n - 1)) / 2, 'a pool summed a segment in place in 8 tasks on 2 workers, migrated midway');
  const gone = await pool.run({ op: 'removed', segId: removed }, { name: 'fail' }).catch((e: unknown) => e);
  check(gone instanceof XpmemError && gone.code === 'ERR_XPMEM_NO_SEGMENT' && gone.segId === removed, "a task's XpmemError reached pool.run() with its class, code and segId");
  const own = (await pool.run({ op: 'task-error' }, { name: 'fail' }).catch((e: unknown) => e)) as Error & { code?: string };
  check(own.name === 'TaskError' && own.code === 'E_TASK' && (own.cause as { step?: number }).step === 3, "a task's own error reached pool.run() with its name, code and cause");
  await seg.remove();
  await pool.close();
  await domain.settled();
  check(domain.stats().spaces === 1, 'the pool closed, and the domain reaped its workers');
}

/**
 * Why shared domains are refused in this run, or undefined: a runtime that loads no V8 addon,
 * or an addon pointed (XPMEM_THREADS_PREBUILD) at a folder that does not exist.
 */
function refusal(): string | undefined {
  if (process.versions.bun !== undefined || process.versions.deno !== undefined) return runtime().split(' ')[0]!;
  const dir = process.env.XPMEM_THREADS_PREBUILD;
  return dir !== undefined && !existsSync(dir) ? 'the native addon did not load' : undefined;
}

/** A shared domain: made, written and closed on Node (its /dev/shm file comes and goes); refused where the addon cannot load. */
async function sharedSteps(): Promise<void> {
  const name = `smoke-${process.pid}`;
  const why = refusal();
  if (why !== undefined) {
    const refused = await Domain.create({ shared: name }).catch((e: unknown) => e);
    check(refused instanceof XpmemError && refused.code === 'ERR_XPMEM_UNSUPPORTED' && refused.message.includes(why), `a shared domain is refused with ERR_XPMEM_UNSUPPORTED: ${why}`);
    return;
  }
  const domain = await Domain.create({ shared: name, arenaBytes: 1 << 20, maxArenaBytes: 1 << 20 });
  const file = `/dev/shm/xpmem-threads.${name}`;
  const made = existsSync(file);
  domain.space
    .make(4096)
    .attach()
    .write((v) => {
      v[0] = 7;
    });
  await domain.close();
  check(made && !existsSync(file), `a shared domain lived in ${file} until it closed`);
}

try {
  console.log(`runtime smoke on ${runtime()}`);
  await sharedSteps();
  const domain = await Domain.create({ arenaBytes: 4 << 20, deadlineMs: 10_000 });
  const bytes = 64 << 10;
  const seg = domain.space.make(bytes, { name: 'smoke' });
  {
    using att = seg.attach();
    att.write((v) => {
      for (let i = 0; i < bytes; i++) v[i] = i & 0xff;
    });
  }
  check(domain.stats().segments === 1, `made segment ${seg.id} and wrote it`);
  await notifierSteps(domain, seg, bytes);
  await poolSteps(domain, seg.id);
  const report = domain.check();
  await domain.close();
  check(report.ok, 'domain.check(): consistent, and the domain closed');
  console.log('runtime smoke: passed');
  deadline.unref(); // the program must now end by itself: what still holds it fails at the deadline
} catch (error) {
  fail(error);
}
