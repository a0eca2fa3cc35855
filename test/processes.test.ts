/**
 * Shared domains: one domain across Node processes (child_process.fork), with the same verbs,
 * notifiers, VM operations and reaping as across threads; SIGKILL at the worst moments.
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { closeSync, existsSync, linkSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../src/sync/native.js';
import { holderDied, joinerOf } from '../src/sync/robust.js';
import { threadId } from 'node:worker_threads';
import { departed } from '../src/workers/process.js';
import { joinMm } from '../src/workers/join.js';
import { ControlBlock } from '../src/control/control.js';
import { seize } from '../src/sync/mutex.js';
import { spaceNow } from '../src/workers/reap.js';
import { reapMidway } from './fixtures/reap-midway.js';
import { afterAll, describe, expect, it } from 'vitest';
import { Domain, type Segment, type Tracing } from '../src/index.js';
import type { ReapMessage, SlowMessage } from '../src/diagnostics.js';
import { agents, bounded, expectCode, Gates, noneInFlight, numbered, removeShmFiles, segSlot, spaceSlot, until } from './helpers.js';
import {
  H_JOINER_OWNER,
  H_JOINER_START,
  H_JOINER_THREAD,
  H_MAGIC,
  H_MUTEX,
  H_MUTEX_WAITERS,
  SP_EVENTS,
  SP_HELD,
  SP_PID,
  SP_PSTART,
  SP_REAPER,
  SP_STATE,
  SP_TID,
  SP_TRACED,
  SP_TSTART,
  SPACE_DEAD,
  capacitiesOf,
  layoutFor,
  slotBase,
} from '../src/layout.js';
import { ShmGates } from './fixtures/shm-gates.js';
import { thisProcess } from '../src/sync/robust.js';

const AGENT = new URL('../dist/test/fixtures/process-agent.js', import.meta.url);
let count = 0;
const gates = ShmGates.create();

/** A fresh domain name for one test. */
function fresh(): string {
  return `test-${process.pid}-${++count}`;
}

afterAll(() => {
  gates.remove();
  removeShmFiles([`xpmem-threads.test-${process.pid}-`]);
});

/** A forked process that opened the domain, driven by commands (test/fixtures/process-agent.ts). */
class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<unknown>;
  space = -1;
  #id = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  constructor(name: string, how: 'create' | 'open' | 'die-after-join', deadlineMs?: number, files?: number) {
    const args = how !== 'open' ? [how] : deadlineMs === undefined ? [] : [how, String(deadlineMs)];
    // With `files`, its file descriptors are limited to that many (prlimit runs node).
    const limit = files === undefined ? {} : { execPath: 'prlimit', execArgv: [`--nofile=${files}`, process.execPath] };
    this.process = fork(AGENT, [name, gates.path, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...limit });
    this.exited = once(this.process, 'exit');
    this.process.on('message', (m: { id?: number; ok?: boolean; value?: unknown; code?: string; message?: string }) => {
      if (m.id === undefined) return;
      const p = this.#pending.get(m.id)!;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(Object.assign(new Error(m.message), { code: m.code }));
    });
  }

  /** Forks a child that opens domain `name` (with `deadlineMs`, if given; `files` file descriptors at most, if given), or creates it; resolves once it has joined. */
  static async start(name: string, create = false, deadlineMs?: number, files?: number): Promise<Child> {
    const child = new Child(name, create ? 'create' : 'open', deadlineMs, files);
    const [ready] = (await bounded(once(child.process, 'message'), 'the child to join')) as [{ space: number }];
    child.space = ready.space;
    return child;
  }

  /** Runs a command in the child (bounded); rejects with its error, code kept. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    return bounded(
      new Promise<T>((resolve, reject) => {
        this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        this.process.send({ id, op, ...args });
      }),
      `child command ${op}`,
    );
  }

  /** Sends a command whose answer may never come (the child blocks in it, or is killed). */
  send(op: string, args: Record<string, unknown> = {}): void {
    void this.call(op, args).catch(() => {});
  }

  /** SIGKILL, and its exit. */
  async kill(): Promise<void> {
    this.process.kill('SIGKILL');
    await bounded(this.exited, 'the killed child to exit');
  }
}

/** Resolves with the reap of process `pid`'s spaces (xpmem:reap in this thread), bounded. */
function reapOf(pid: number): Promise<ReapMessage> {
  return bounded(
    new Promise<ReapMessage>((resolve) => {
      const on = (m: unknown): void => {
        if ((m as ReapMessage).pid !== pid) return;
        unsubscribe('xpmem:reap', on);
        resolve(m as ReapMessage);
      };
      subscribe('xpmem:reap', on);
    }),
    `the reap of process ${pid}`,
  );
}

/** The creator's side of a test: a shared domain, small and with short deadlines. */
function shared(name: string, deadlineMs = 5_000, slowMs?: number): Promise<Domain> {
  return Domain.create({ shared: name, arenaBytes: 1 << 20, maxArenaBytes: 16 << 20, deadlineMs, ...(slowMs && { slowMs }) });
}

/**
 * A fresh shared domain of this process, a segment of it, and a child process that opened the
 * domain and attached the segment with `mode`.
 */
async function attached(mode: 'ro' | 'rw', slowMs?: number): Promise<{ name: string; d: Domain; seg: Segment; child: Child; att: number }> {
  const name = fresh();
  const d = await shared(name, 5_000, slowMs);
  const seg = d.space.make(4096);
  const child = await Child.start(name);
  return { name, d, seg, child, att: await child.call<number>('attach', { segId: seg.id, mode }) };
}

/** Int32 0 and 1 of segment `segId`, read in one section through a fresh attachment of `d`'s space. */
function peekBoth(d: Domain, segId: number): number[] {
  return d.space
    .get(segId, 'ro')
    .attach()
    .read(Int32Array, (v) => [v[0]!, v[1]!]);
}

/** Int32 `index` of segment `segId`, read through a fresh attachment of `d`'s space. */
function peek(d: Domain, segId: number, index: number): number | undefined {
  return d.space
    .get(segId, 'ro')
    .attach()
    .read(Int32Array, (v) => v[index]);
}

/** Runs `call`, an expression giving a Domain, in a fresh process and closes what it gives: 'done', or the code of the error it threw. */
function outcomeIn(call: string): string {
  const code = `import { Domain } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};
    try { await (await ${call}).close(); console.log('done'); } catch (error) { console.log(error.code); }`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 }).trim();
}

/** Closes `d` once nothing is in flight and its invariants hold. */
/**
 * attached('ro') with a range notifier in the child, then (after `prepare`, if given) a trace of
 * this domain that recorded one migrate of the segment, the child's callbacks ended.
 */
async function tracedMigrate(prepare?: (child: Child) => Promise<void>): Promise<{ d: Domain; child: Child; tracing: Tracing }> {
  const { d, seg, child, att } = await attached('ro');
  const [starts, ends] = [gates.take(), gates.take()];
  await child.call('notifier', { att, starts, ends });
  await prepare?.(child);
  const tracing = d.trace();
  await seg.migrate();
  await gates.until(ends);
  return { d, child, tracing };
}

/** How many events named `name` (not metadata) process `pid` recorded in `events`. */
function recorded(events: readonly { name: string; pid: number; ph: string }[], pid: number, name: string): number {
  return events.filter((e) => e.pid === pid && e.name === name && e.ph !== 'M').length;
}

async function finish(d: Domain): Promise<void> {
  await d.settled();
  await noneInFlight(d);
  expect(d.check().errors).toEqual([]);
  await d.close();
}

describe('shared domains: processes', () => {
  it('exports and attaches across processes in both directions, zero copy; a process that leaves takes its workers with it', async () => {
    const { d, seg, child, att } = await attached('rw');
    await child.call('write', { att, index: 3, value: 0x5eed });
    expect(peek(d, seg.id, 3)).toBe(0x5eed);
    const theirs = await child.call<number>('make', { bytes: 4096 });
    const mine = d.space.get(theirs, 'rw').attach();
    mine.write(Int32Array, (v) => {
      v[7] = 77;
    });
    const back = await child.call('attach', { segId: theirs, mode: 'ro' });
    expect(await child.call('read', { att: back, index: 7 })).toBe(77);
    expect(d.maps().filter((r) => r.kind === 'segment' && r.segId === theirs)[0]!.space).toBe(child.space);
    const worker = await child.call<number>('spawn');
    expect(d.stats().spaces).toBe(3);
    await child.call('close'); // leaves with its own space and its worker's
    await until(() => d.stats().spaces === 1, 'the leaver’s spaces, its worker’s among them, to be reaped');
    expect(d.maps().some((r) => r.space === child.space || r.space === worker)).toBe(false);
    await expectCode(() => mine.read(() => {}), 'ERR_XPMEM_REMOVED'); // the leaver's segment went with it
    await child.kill();
    await finish(d);
  });

  it('the owner waits for an invalidateStart sleeping in another process; after the remove, that process sees ERR_XPMEM_REMOVED', async () => {
    const { d, seg, child, att } = await attached('rw');
    const [starts, ends, flag, gate] = [gates.take(), gates.take(), gates.take(), gates.take()];
    await child.call('notifier', { att, starts, ends, flag, gate });
    let removed = false;
    const removing = seg.remove().then(() => {
      removed = true;
    });
    await gates.until(flag); // the child's invalidateStart sleeps now
    expect(removed).toBe(false);
    expect(d.stats().invalidationsInFlight).toBe(1);
    gates.open(gate);
    await bounded(removing, 'the remove, once the start returned');
    expect(Atomics.load(gates.words, starts)).toBe(1);
    await gates.until(ends);
    await expectCode(() => child.call('read', { att, index: 0 }), 'ERR_XPMEM_REMOVED');
    await child.kill();
    await finish(d);
  });

  it('xpmem:slow names the process of a space whose invalidateStart sleeps, and what it runs', async () => {
    const { d, seg, child, att } = await attached('ro', 100);
    const [starts, ends, flag, gate] = [gates.take(), gates.take(), gates.take(), gates.take()];
    await child.call('notifier', { att, starts, ends, flag, gate });
    const reported = bounded(
      new Promise<SlowMessage>((resolve) => {
        const on = (m: unknown): void => {
          unsubscribe('xpmem:slow', on);
          resolve(m as SlowMessage);
        };
        subscribe('xpmem:slow', on);
      }),
      'an xpmem:slow report',
    );
    const migrating = seg.migrate();
    const message = await reported;
    expect(message).toMatchObject({ operation: 'migrate', segId: seg.id, waitingFor: 'invalidateStart' });
    expect(message.spaces).toEqual([
      expect.objectContaining({ space: child.space, threadId: 0, pid: child.process.pid, callback: expect.objectContaining({ name: 'invalidateStart', segId: seg.id }) }),
    ]);
    gates.open(gate);
    await migrating;
    await child.kill();
    await finish(d);
  });

  it('a trace records in every process; stop() gathers them all: each other process hands its events over', async () => {
    let worker = 0;
    const { d, child, tracing } = await tracedMigrate(async (c) => {
      worker = await c.call<number>('spawn'); // a worker of the child, in the trace too
    });
    await child.call('workerMigrates'); // the child's worker records an operation of its own
    const { traceEvents } = await tracing.stop({ deadlineMs: 10_000 });
    const pid = child.process.pid!;
    expect(traceEvents.find((e) => e.name === 'migrate' && e.ph === 'X')?.pid).toBe(process.pid);
    expect(recorded(traceEvents, pid, 'invalidateStart')).toBeGreaterThan(0);
    expect(recorded(traceEvents, pid, 'invalidateEnd')).toBeGreaterThan(0);
    const threads = traceEvents.filter((e) => e.name === 'thread_name' && e.pid === pid);
    expect(threads.map((e) => e.args?.name).sort()).toEqual(['idle-worker', 'main']);
    expect(traceEvents.filter((e) => e.pid === pid && e.name === 'migrate' && e.ph === 'X').map((e) => e.tid)).toEqual([threads.find((e) => e.args?.name === 'idle-worker')!.tid]);
    expect(traceEvents.filter((e) => e.name === 'events not gathered' || e.name === 'events lost')).toEqual([]);
    expect(
      traceEvents
        .filter((e) => e.name === 'process_name')
        .map((e) => e.pid)
        .sort(),
    ).toEqual([process.pid, pid].sort());
    expect(readdirSync('/dev/shm').filter((f) => f.includes('+trace-'))).toEqual([]);
    // This process's spaces no longer show as recording in it: its own watcher hands nothing over later.
    const words = new Int32Array(d.handle().control);
    expect(Atomics.load(words, slotBase(layoutFor(capacitiesOf(words)).spaces, spaceSlot(d, d.space.id)) + SP_TRACED)).toBe(0);
    expect(worker).toBeGreaterThan(0);
    await child.kill();
    await finish(d);
  });

  it('a process that leaves while a trace records hands its events over as it goes', async () => {
    const { d, child, tracing } = await tracedMigrate();
    await child.call('close');
    await d.settled(); // its space is reaped: it no longer shows as recording
    const { traceEvents } = await tracing.stop({ deadlineMs: 10_000 });
    const pid = child.process.pid!;
    expect(recorded(traceEvents, pid, 'invalidateStart')).toBeGreaterThan(0);
    expect(traceEvents.filter((e) => e.name === 'events not gathered' || e.name === 'events lost')).toEqual([]);
    expect(readdirSync('/dev/shm').filter((f) => f.includes('+trace-'))).toEqual([]);
    await child.kill();
    await finish(d);
  });

  it('a process that exits without leaving while a trace records hands its events over as it exits, with those of its worker that exited before', async () => {
    let worker = -1;
    const { d, child, tracing } = await tracedMigrate(async (c) => {
      worker = await c.call<number>('spawn');
    });
    await child.call('workerMigrates'); // the worker records too
    await child.call('endWorker'); // and exits: its process collects no trace
    const pid = child.process.pid!;
    const reaped = reapOf(pid);
    child.send('exit');
    await bounded(child.exited, 'the child to exit');
    await reaped;
    const { traceEvents } = await tracing.stop({ deadlineMs: 10_000 });
    expect(recorded(traceEvents, pid, 'invalidateStart')).toBeGreaterThan(0);
    const workerTid = traceEvents.find((e) => e.pid === pid && e.name === 'migrate')?.tid;
    expect(workerTid).toBeDefined();
    expect(workerTid).not.toBe(0);
    expect(traceEvents.filter((e) => e.name === 'events not gathered' || e.name === 'events lost')).toEqual([]);
    expect(readdirSync('/dev/shm').filter((f) => f.includes('+trace-'))).toEqual([]);
    expect(worker).toBeGreaterThan(0);
    await finish(d);
  });

  it('a process whose event loop is blocked when a trace stops is named in it, not waited for past the deadline', async () => {
    const { d, child, tracing } = await tracedMigrate();
    const [flag, gate] = [gates.take(), gates.take()];
    const blocked = child.call('block', { flag, gate });
    await gates.until(flag);
    const { traceEvents } = await tracing.stop({ deadlineMs: 300 });
    gates.open(gate);
    await blocked;
    const pid = child.process.pid!;
    expect(traceEvents.filter((e) => e.name === 'events not gathered').map((e) => [e.pid, e.args?.why])).toEqual([
      [pid, 'the process did not hand its events over within 300 ms (its event loop busy or blocked)'],
    ]);
    expect(traceEvents.filter((e) => e.pid === pid && e.name === 'invalidateStart')).toEqual([]);
    await child.kill();
    await finish(d);
    expect(readdirSync('/dev/shm').filter((f) => f.includes('+trace-'))).toEqual([]);
  });

  it("XPMEM_TRACE in the creator: its close() writes a trace with the other processes' events, gathered before the domain ends", async () => {
    const file = `/dev/shm/xpmem-test-trace-${process.pid}-${++count}.json`;
    process.env.XPMEM_TRACE = file;
    const name = fresh();
    let d: Domain;
    try {
      d = await shared(name);
    } finally {
      delete process.env.XPMEM_TRACE;
    }
    try {
      const seg = d.space.make(4096);
      const child = await Child.start(name);
      const att = await child.call<number>('attach', { segId: seg.id, mode: 'ro' });
      const [starts, ends] = [gates.take(), gates.take()];
      await child.call('notifier', { att, starts, ends });
      await seg.migrate();
      await gates.until(ends);
      await d.settled();
      await noneInFlight(d);
      await d.close();
      const { traceEvents } = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: { name: string; pid: number; ph: string }[] };
      const pid = child.process.pid!;
      expect(recorded(traceEvents, pid, 'invalidateStart')).toBeGreaterThan(0);
      expect(traceEvents.filter((e) => e.name === 'events not gathered')).toEqual([]);
      await child.kill();
    } finally {
      rmSync(file, { force: true });
    }
  });

  it("a closing creator removes the trace hand-over files of its domain only, not another domain's whose name extends its own", async () => {
    const name = fresh();
    const d = await shared(name);
    const other = await shared(`${name}.trace-1-2`);
    const base = `/dev/shm/xpmem-threads.${name}`;
    writeFileSync(`${base}+trace-7-8`, '{}');
    writeFileSync(`${base}+trace-7-8.claim`, '');
    await d.close();
    expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`xpmem-threads.${name}`))).toEqual([`xpmem-threads.${name}.trace-1-2`]);
    await other.close();
  });

  it('a migrate loop under writers in two processes loses no increment', async () => {
    const name = fresh();
    const d = await shared(name);
    const seg = d.space.make(4096);
    const children = await Promise.all([Child.start(name), Child.start(name)]);
    const [started, stop] = [children.map(() => gates.take()), gates.take()];
    const writing = await Promise.all(children.map((c) => c.call('attach', { segId: seg.id, mode: 'rw' })));
    const done = children.map((c, i) => c.call<number>('add', { att: writing[i], index: i, stop, started: started[i] }));
    await Promise.all(started.map((g) => gates.until(g)));
    const counters = (): number[] => peekBoth(d, seg.id);
    const offsets = new Set<number>();
    const first = counters();
    for (let m = 0; m < 100; m++) {
      await seg.migrate(); // every one while both write: they write until the stop gate, opened after the last
      offsets.add(d.maps().find((r) => r.kind === 'segment')!.offset);
    }
    const last = counters();
    gates.open(stop);
    const made = await Promise.all(done);
    expect(offsets.size).toBeGreaterThan(1);
    expect(last.map((v, i) => v > first[i]!)).toEqual([true, true]); // both wrote across the migrations
    expect(counters()).toEqual(made);
    await Promise.all(children.map((c) => c.kill()));
    await finish(d);
  });

  it('SIGKILL right after its join commits, into a slot reaped before: the process is reaped (no claim of the slot outlives its last member)', async () => {
    const name = fresh();
    const d = await shared(name);
    const first = await Child.start(name);
    const reapedFirst = reapOf(first.process.pid!);
    await first.kill();
    await reapedFirst; // reaped here: the claim was this process's
    const second = new Child(name, 'die-after-join'); // takes the slot the first left
    const reapedSecond = reapOf(second.process.pid!);
    await bounded(second.exited, 'the joiner to kill itself');
    await reapedSecond;
    await finish(d);
  });

  it("a joiner clears the held words its slot's last member left: an operation on that segment waits for no section of it", async () => {
    const name = fresh();
    const d = await shared(name, 2_000);
    const seg = d.space.make(4096);
    const first = await Child.start(name);
    const slot = spaceSlot(d, first.space);
    const reapedFirst = reapOf(first.process.pid!);
    await first.kill();
    await reapedFirst;
    // White box: a hold on the segment left in the free slot's first held word, as a thread
    // still running when its space was reaped publishes at its next section entry.
    const words = new Int32Array(d.handle().control);
    const held = slotBase(layoutFor(capacitiesOf(words)).spaces, slot) + SP_HELD;
    Atomics.store(words, held, segSlot(d, seg.id) + 1);
    const second = await Child.start(name);
    expect(spaceSlot(d, second.space)).toBe(slot); // it took that slot
    await seg.migrate(); // ERR_XPMEM_TIMEOUT were the stale hold still there
    await second.kill();
    await finish(d);
  });

  it("a killed creator's leftover is taken over with the swap directory it made, and staging files of creators that died are removed, each never published with the swap directory its creator made", async () => {
    const name = fresh();
    const file = `/dev/shm/xpmem-threads.${name}`;
    const creator = await Child.start(name, true);
    const head = readFileSync(file).subarray(0, 4096);
    const swapDirOf = (f: string): string => readFileSync(f).toString('utf8', 64, 64 + readFileSync(f).readUInt32LE(7 * 4)); // the descriptor's swap dir
    const swapDir = swapDirOf(file);
    expect(existsSync(swapDir)).toBe(true);
    const dead = spawnSync('true').pid!; // a process that ran and is gone
    const staged = [`${file}+new-${dead}-5eed`, `${file}+new-${process.pid}-5eed`]; // a killed creator's, and a running one's
    const lookalike = await shared(`${name}.new-${dead}-5eed`); // a live domain whose file looks like an old staging name
    for (const f of staged) writeFileSync(f, '');
    // A killed creator's staging file whole, never published, with the swap dir it made; and one it published (a second name of a live domain's file).
    const unpublished = `${file}+new-${dead}-beef`;
    const ownDir = mkdtempSync(join(tmpdir(), 'xpmem-swap-'));
    const descriptor = Buffer.from(head);
    descriptor.writeUInt32LE(descriptor.write(ownDir, 64, 'utf8'), 7 * 4);
    descriptor.writeUInt32LE(1, 8 * 4); // the creator made it
    writeFileSync(unpublished, descriptor, { mode: 0o600 });
    truncateSync(unpublished, statSync(file).size);
    const published = `${file}+new-${dead}-cafe`;
    linkSync(`${file}.new-${dead}-5eed`, published);
    await creator.kill();
    const d = await shared(name); // takes the leftover over
    expect({
      swapDir: existsSync(swapDir),
      staged: [...staged, unpublished, published].map((f) => existsSync(f)),
      ownDir: existsSync(ownDir),
      lookalike: [existsSync(`${file}.new-${dead}-5eed`), existsSync(swapDirOf(`${file}.new-${dead}-5eed`))],
    }).toEqual({
      swapDir: false,
      staged: [false, true, false, false],
      ownDir: false,
      lookalike: [true, true],
    });
    rmSync(staged[1]!);
    await lookalike.close();
    await finish(d);
  });

  it("a takeover decides under the leftover's lock: while another process holds it, Domain.create of that name waits, up to its deadline, so two creators never both replace it", async () => {
    const name = fresh();
    await (await Child.start(name, true)).kill(); // a leftover
    const fd = openSync(`/dev/shm/xpmem-threads.${name}`, 'r+');
    const create = `Domain.create({ shared: ${JSON.stringify(name)}, maxArenaBytes: 1 << 20, deadlineMs: 200 })`;
    try {
      expect(native().lock(fd, 1000)).toBe(true); // as another creator taking it over, deciding
      expect(outcomeIn(create)).toBe('ERR_XPMEM_TIMEOUT');
      native().unlock(fd);
      expect(outcomeIn(create)).toBe('done');
    } finally {
      closeSync(fd);
    }
  });

  it('the creator is a process like the others: killed, it is reaped by the others, which go on, and the domain lives while one of them runs', async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const segId = await creator.call<number>('make', { bytes: 4096 });
    const d = await Domain.open(name);
    const att = d.space.get(segId, 'ro').attach();
    const reaped = reapOf(creator.process.pid!);
    await creator.kill();
    await reaped;
    await expectCode(() => att.read(Int32Array, (v) => v[0]), 'ERR_XPMEM_REMOVED');
    const other = await Child.start(name); // it still opens
    await expectCode(() => shared(name), 'ERR_XPMEM_EXISTS'); // in use: not a leftover
    const seg = d.space.make(4096);
    const otherAtt = await other.call<number>('attach', { segId: seg.id, mode: 'rw' });
    await other.call('write', { att: otherAtt, index: 0, value: 7 });
    expect(peek(d, seg.id, 0)).toBe(7);
    await other.call('close');
    await finish(d); // an opener's close: it leaves, and the file stays, a leftover
    await other.kill();
  });

  it('Domain.open looks at the members and joins under the lock a takeover decides under: while another process holds it, the open waits, up to its deadline', async () => {
    const name = fresh();
    const d = await shared(name);
    const open = `Domain.open(${JSON.stringify(name)}, { deadlineMs: 200 })`;
    const fd = openSync(`/dev/shm/xpmem-threads.${name}`, 'r+');
    try {
      expect(native().lock(fd, 1000)).toBe(true); // as a process taking the name over, deciding
      expect(outcomeIn(open)).toBe('ERR_XPMEM_TIMEOUT');
      native().unlock(fd);
      expect(outcomeIn(open)).toBe('done');
    } finally {
      closeSync(fd);
    }
    await finish(d);
  });

  it("a closing creator removes its domain's name only while it names its own file: a file that took the name over stays, with its trace hand-overs", async () => {
    const name = fresh();
    const d = await shared(name);
    const other = await shared(`${name}-next`);
    const [path, next] = [`/dev/shm/xpmem-threads.${name}`, `/dev/shm/xpmem-threads.${name}-next`];
    rmSync(path);
    linkSync(next, path); // as a takeover publishes its file under the name
    const handOver = `${path}+trace-7-8`;
    writeFileSync(handOver, '{}');
    await d.close();
    expect({ named: existsSync(path) && statSync(path).ino === statSync(next).ino, handOver: existsSync(handOver) }).toEqual({ named: true, handOver: true });
    rmSync(path);
    rmSync(handOver);
    await other.close();
  });

  it('a process is its pid and its start time: of two members on one pid, the one that died is reaped and not the one that runs; a joiner holding the mutex is judged by the start it published', async () => {
    const d = await shared(fresh());
    const { words, layout, cb } = joinMm(d.handle()).mm;
    // A joiner's lock publishes its process's start time while it holds the mutex; its unlock takes it back.
    const during = cb.transact(joinerOf(threadId, true), () => Atomics.load(words, H_JOINER_START));
    expect([during, Atomics.load(words, H_JOINER_START)]).toEqual([thisProcess().start, 0]);
    const workers = [0, 1].map(() => d.spawn(new URL('../dist/test/fixtures/idle-worker.js', import.meta.url)));
    const spaces = await Promise.all(workers.map(async (w) => ((await bounded(once(w, 'message'), 'a worker to join')) as [{ joined: number }])[0].joined));
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await once(other, 'spawn');
      const pid = other.pid!;
      const start = Number(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[19]) % 2 ** 31;
      // The workers' spaces, white box, recorded as two processes on the sleep's pid: the sleep, then one that died before it started.
      // Restored before this thread's event loop turns: no watcher of this domain runs in between (no other process joined it).
      const bases = spaces.map((id) => slotBase(layout.spaces, spaceSlot(d, id)));
      const fields = [SP_PID, SP_PSTART, SP_TID];
      const saved = bases.map((base) => fields.map((f) => Atomics.load(words, base + f)));
      bases.forEach((base, i) => {
        Atomics.store(words, base + SP_PID, pid);
        Atomics.store(words, base + SP_PSTART, start - i);
        Atomics.store(words, base + SP_TID, 0); // as the sleep's main thread: no kernel thread of this process named
      });
      const gone = departed(words, layout).flatMap((p) => p.spaces.map((space) => space.slot));
      bases.forEach((base, i) => {
        for (const [k, f] of fields.entries()) Atomics.store(words, base + f, saved[i]![k]!);
      });
      expect(gone).toEqual([spaceSlot(d, spaces[1]!)]);
      // A thread of process `pid` joining, as joinerOf() names it, holding the mutex with each start published: one that died, the sleep, none yet.
      const joiner = -(2 + (pid & 0x3fffff) * 256);
      Atomics.store(words, H_MUTEX, joiner);
      Atomics.store(words, H_JOINER_THREAD, 0); // the sleep's main thread
      Atomics.store(words, H_JOINER_OWNER, joiner);
      const verdicts = [start - 1, start, 0].map((published) => {
        Atomics.store(words, H_JOINER_START, published);
        return holderDied(words, layout, joiner);
      });
      expect(verdicts).toEqual([true, false, false]);
      // A worker of this process joining, holding the mutex with its thread published in one word (its tid, its start's low 9 bits): the worker that runs, a tid no thread has, the worker's tid with another start.
      const base = slotBase(layout.spaces, spaceSlot(d, spaces[0]!));
      const [tid, tstart] = [Atomics.load(words, base + SP_TID), Atomics.load(words, base + SP_TSTART)];
      const mine = joinerOf(workers[0]!.threadId, true);
      Atomics.store(words, H_MUTEX, mine);
      Atomics.store(words, H_JOINER_OWNER, mine);
      Atomics.store(words, H_JOINER_START, thisProcess().start);
      const threads = [(tid << 9) | (tstart & 511), 0x3fffff << 9, (tid << 9) | ((tstart + 1) & 511)].map((thread) => {
        Atomics.store(words, H_JOINER_THREAD, thread);
        return holderDied(words, layout, mine);
      });
      // What the joiner published says nothing of another holder with its pid, one that seized the mutex from it: judged by its pid alone, it runs.
      Atomics.store(words, H_MUTEX, joinerOf(workers[1]!.threadId, true));
      threads.push(holderDied(words, layout, joinerOf(workers[1]!.threadId, true)));
      // A seize of a holder that is gone already fails, and leaves what the holder now published as it was.
      Atomics.store(words, H_MUTEX, mine);
      const published = (): number[] => [H_JOINER_OWNER, H_JOINER_START, H_JOINER_THREAD].map((f) => Atomics.load(words, f));
      const before = published();
      expect(seize(words, layout, joinerOf(workers[1]!.threadId, true), spaceSlot(d, d.space.id))).toBe(false);
      expect(published()).toEqual(before);
      for (const f of [H_JOINER_OWNER, H_JOINER_START, H_JOINER_THREAD, H_MUTEX]) Atomics.store(words, f, 0);
      expect(threads).toEqual([false, true, true, false]);
    } finally {
      other.kill('SIGKILL');
    }
    for (const w of workers) w.postMessage('end');
    await Promise.all(workers.map((w) => bounded(once(w, 'exit'), 'a worker to exit')));
    await finish(d);
  });

  it('SIGKILL inside a write section: the migrate waiting for it goes on once the process is reaped', async () => {
    const { d, seg, child, att } = await attached('rw', 60_000); // no slow report wakes the migrate: the reap must
    const [flag, gate] = [gates.take(), gates.take()];
    child.send('hold', { att, flag, gate });
    await gates.until(flag);
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const migrating = seg.migrate();
    await new Promise(setImmediate);
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before); // it waits for the section
    const reaped = reapOf(child.process.pid!);
    await child.kill();
    await reaped;
    await bounded(migrating, 'the migrate, once the holder is reaped');
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
    await finish(d);
  });

  it('SIGKILL while holding the domain mutex, as a space or while joining: the mutex is seized and the survivors go on', async () => {
    for (const joiner of [false, true]) {
      const name = fresh();
      const d = await shared(name);
      const seg = d.space.make(4096);
      const child = await Child.start(name);
      const [flag, gate] = [gates.take(), gates.take()];
      child.send('mutex', { flag, gate, joiner });
      await gates.until(flag);
      const migrating = seg.migrate(); // needs the mutex: waits without blocking this thread
      const reaped = reapOf(child.process.pid!);
      await child.kill();
      await reaped;
      await bounded(migrating, `the migrate, once the mutex is seized (joiner: ${joiner})`);
      d.space.make(64).removeSync();
      await finish(d);
    }
  });

  it('a process that cannot look at the others (out of file descriptors) takes none of them for dead', async () => {
    const { name, d, child } = await attached('ro');
    const looker = await Child.start(name, false, undefined, 128);
    expect(await looker.call('departedWithoutFds')).toEqual({ code: 'EMFILE', departed: [] }); // this process and the other child run
    await d.settled();
    expect(d.maps().filter((r) => r.kind === 'attachment')).toHaveLength(1); // the child's, never reaped
    for (const c of [looker, child]) await c.kill();
    await finish(d);
  });

  it('a death every surviving process sees is reaped once: the space table and free lists stay whole', async () => {
    const name = fresh();
    const d = await shared(name);
    const survivors = await Promise.all([Child.start(name), Child.start(name), Child.start(name)]);
    const reapsHere = new Map<number, number>();
    const count = (m: unknown): void => {
      const { pid } = m as ReapMessage;
      reapsHere.set(pid, (reapsHere.get(pid) ?? 0) + 1);
    };
    subscribe('xpmem:reap', count);
    for (let round = 0; round < 8; round++) {
      const doomed = await Child.start(name);
      const pid = doomed.process.pid!;
      const segs = await Promise.all([0, 1, 2].map(() => doomed.call<number>('make', { bytes: 4096 })));
      for (const s of survivors) await s.call('attach', { segId: segs[0], mode: 'ro' });
      await doomed.kill();
      await until(() => d.maps().every((r) => r.space !== doomed.space), 'the dead process’s spaces to be reaped');
      await d.settled();
      const elsewhere = await Promise.all(survivors.map((s) => s.call<number>('reapsOf', { pid })));
      expect({ round, reaps: (reapsHere.get(pid) ?? 0) + elsewhere.reduce((a, b) => a + b, 0) }).toEqual({ round, reaps: 1 }); // one space, one reap, by whichever process claimed it
      expect(d.check().errors).toEqual([]);
    }
    unsubscribe('xpmem:reap', count);
    await Promise.all(survivors.map((s) => s.kill()));
    await until(() => d.maps().every((r) => r.space === d.space.id), 'the survivors to be reaped');
    await finish(d);
  });

  it('a reaper killed midway: its claims are released with its own reap, and another process reaps what it left', async () => {
    const name = fresh();
    const d = await shared(name);
    const [reaper, doomed] = await Promise.all([Child.start(name), Child.start(name)]);
    const segId = await doomed.call<number>('make', { bytes: 4096 });
    const mine = d.space.get(segId, 'ro').attach();
    // White box: the reaper process reaps the doomed space as if its process had died, and is
    // killed right after the reap's first steps (the space dead, its sections dropped, claimed).
    const reaperPid = reaper.process.pid!;
    const reaped = reapOf(reaperPid);
    reaper.send('reapThenDie', { space: doomed.space });
    await bounded(reaper.exited, 'the reaper to die midway');
    await reaped; // this process's watcher reaps the reaper, releasing its claim
    await until(() => d.maps().every((r) => r.space === d.space.id), "the doomed space's reap, resumed");
    await expectCode(() => mine.read(() => {}), 'ERR_XPMEM_REMOVED');
    await doomed.kill();
    await finish(d);
  });

  it('a reap that fails after its first steps lets its claim go, and a watcher resumes it', async () => {
    const name = fresh();
    const d = await shared(name);
    const doomed = await Child.start(name);
    const segId = await doomed.call<number>('make', { bytes: 4096 });
    const mine = d.space.get(segId, 'ro').attach();
    const { mm } = joinMm(d.handle());
    const { words, layout } = mm;
    const base = slotBase(layout.spaces, spaceSlot(d, doomed.space));
    const failing = (): never => {
      throw new Error('dropping its users failed');
    };
    await expect(reapMidway(mm, spaceNow(words, layout, spaceSlot(d, doomed.space)), failing)).rejects.toThrow('dropping its users failed');
    expect([Atomics.load(words, base + SP_STATE), Atomics.load(words, base + SP_REAPER)]).toEqual([SPACE_DEAD, 0]);
    await until(() => d.maps().every((r) => r.space === d.space.id), 'a watcher to resume the reap'); // this process's or the doomed one's
    await expectCode(() => mine.read(() => {}), 'ERR_XPMEM_REMOVED');
    await doomed.kill();
    await finish(d);
  });

  it('SIGKILL inside an invalidateStart: the remove waiting for it goes on once the process is reaped', async () => {
    const { d, seg, child, att } = await attached('ro');
    const [flag, gate] = [gates.take(), gates.take()];
    await child.call('notifier', { att, starts: gates.take(), ends: gates.take(), flag, gate });
    const removing = seg.remove();
    await gates.until(flag);
    const reaped = reapOf(child.process.pid!);
    await child.kill();
    await reaped;
    await bounded(removing, 'the remove, once the sleeping process is reaped');
    await finish(d);
  });

  it('a synchronous operation of the only process left watching goes on when the process it waits for dies inside a section or a callback: its blocked thread looks for deaths itself', async () => {
    for (const where of ['section', 'callback'] as const) {
      const name = fresh();
      const d = await shared(name, 20_000); // a wait for the dead alone would end here, ERR_XPMEM_TIMEOUT
      const seg = d.space.make(4096);
      const child = await Child.start(name);
      const att = await child.call<number>('attach', { segId: seg.id, mode: where === 'section' ? 'rw' : 'ro' });
      const reaped = reapOf(child.process.pid!);
      if (where === 'section') {
        const flag = gates.take();
        child.send('hold', { att, flag, gate: gates.take(), die: true });
        await gates.until(flag);
        // No turn of this event loop from here: the child dies in its section before or during the migrate, and this thread alone can see it.
        const before = d.maps().find((r) => r.kind === 'segment')!.offset;
        seg.migrateSync();
        expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
      } else {
        const starts = gates.take();
        await child.call('notifier', { att, starts, ends: gates.take(), die: true });
        seg.removeSync(); // the child dies in its invalidateStart
        expect(Atomics.load(gates.words, starts)).toBe(1);
      }
      await bounded(child.exited, 'the child to die');
      await reaped; // the rest of the reap, by the watcher, once this loop turns
      await finish(d);
    }
  });

  it("an opener's close() leaves at once while a reap it runs is held up by another process: the reap stops, its claim let go, and the processes that stay finish it", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const [attacher, owner, leaver] = [await Child.start(name), await Child.start(name), await Child.start(name)];
    const segId = await owner.call<number>('make', { bytes: 4096 });
    const att = await attacher.call<number>('attach', { segId, mode: 'ro' });
    await attacher.call('notifier', { att, starts: gates.take(), ends: gates.take() });
    // The creator's and the attacher's event loops blocked: only the leaver's watcher runs, and the attacher answers no callback.
    const [blocked, unblock] = [[gates.take(), gates.take()], gates.take()];
    for (const [i, child] of [creator, attacher].entries()) child.send('block', { flag: blocked[i], gate: unblock });
    for (const flag of blocked) await gates.until(flag);
    await owner.kill();
    await bounded(
      (async () => {
        while (!(await leaver.call<boolean>('reaping'))); // its release of the dead owner's segment waits for the attacher
      })(),
      "the leaver's reap",
    );
    await leaver.call('close');
    gates.open(unblock);
    expect(await creator.call('settledCheck')).toEqual([]);
    await creator.call('close');
    for (const child of [attacher, leaver, creator]) await child.kill();
  });

  it('a join() of the domain in a thread whose close() is leaving it is ERR_XPMEM_CLOSED, not a second membership', async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    const handle = d.handle();
    const closing = d.close(); // nothing in flight: it leaves from now on
    expect(() => joinMm(handle)).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_CLOSED' }));
    await closing;
    expect(await creator.call('settledCheck')).toEqual([]);
    await creator.kill();
  });

  it('a Domain whose process left the domain takes the mutex as its space no more: detach, release and unregister are no-ops, maps(), stats() and check() ERR_XPMEM_CLOSED', async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    const segId = await creator.call<number>('make', { bytes: 4096 });
    const access = d.space.get(segId, 'ro');
    const att = access.attach();
    const notifier = att.notifier({ invalidateStart() {} });
    await d.close(); // other processes reap its space from now on: a mutex held as that space is taken away mid-transaction
    const transact = ControlBlock.prototype.transact;
    let taken = 0;
    ControlBlock.prototype.transact = function (this: ControlBlock, ...args: Parameters<typeof transact>) {
      taken++;
      return transact.apply(this, args);
    } as typeof transact;
    try {
      att.detach();
      access.release();
      await notifier.unregister();
      for (const look of [() => d.maps(), () => d.stats(), () => d.check()]) expect(look).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_CLOSED' }));
    } finally {
      ControlBlock.prototype.transact = transact;
    }
    expect(taken).toBe(0);
    expect(await creator.call('settledCheck')).toEqual([]);
    await creator.kill();
  });

  it("a mapping's refresh() once its process left the domain is ERR_XPMEM_CLOSED and takes no event of its old slot, which may be another's", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    const words = new Int32Array(d.handle().control);
    const events = slotBase(layoutFor(capacitiesOf(words)).spaces, spaceSlot(d, d.space.id)) + SP_EVENTS;
    const segId = await creator.call<number>('make', { bytes: 4096 });
    const mapping = d.space.get(segId, 'ro').attach().map();
    await d.close();
    expect(await creator.call('settledCheck')).toEqual([]); // its space reaped: the slot is free for the next joiner
    Atomics.store(words, events, 1); // white box: as an invalidator posts to that next member
    expect(() => mapping.refresh()).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_CLOSED' }));
    expect(Atomics.load(words, events)).toBe(1);
    Atomics.store(words, events, 0);
    await creator.kill();
  });

  it('an async invalidateStart still pending when its process left the domain writes nothing of its slot or its record when it settles: their reaper acked for it', async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    const words = new Int32Array(d.handle().control);
    const layout = layoutFor(capacitiesOf(words));
    const segId = await creator.call<number>('make', { bytes: 4096 });
    const slot = spaceSlot(d, d.space.id);
    let settle!: () => void;
    let started = false;
    d.space
      .get(segId, 'ro')
      .attach()
      .notifier({
        invalidateStart: () => {
          started = true;
          return new Promise<void>((resolve) => (settle = resolve));
        },
      });
    const migrated = creator.call('migrate', { segId });
    await until(() => started, 'its invalidateStart to run');
    await d.close(); // its callback's promise is no call of it: it leaves, and the creator reaps it, acking the start for it
    await migrated;
    expect(await creator.call('settledCheck')).toEqual([]);
    const { base, stride, capacity } = layout.invalidations;
    const watched = (): number[] => [...words.subarray(slotBase(layout.spaces, slot), slotBase(layout.spaces, slot) + SP_HELD), ...words.subarray(base, base + stride * capacity)];
    const before = watched();
    settle();
    await new Promise(setImmediate);
    await new Promise(setImmediate);
    expect(watched()).toEqual(before);
    await creator.kill();
  });

  it("an opener's close() whose marking fails may be called again, and leaves then; what onClose() registered runs once", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    let ended = 0;
    d.onClose(async () => {
      ended++;
    });
    const transact = ControlBlock.prototype.transact;
    ControlBlock.prototype.transact = (() => {
      throw Object.assign(new Error('the mutex held past the deadline'), { code: 'ERR_XPMEM_TIMEOUT' }); // white box: as markLeft's transaction would
    }) as typeof transact;
    try {
      await expectCode(() => d.close(), 'ERR_XPMEM_TIMEOUT');
    } finally {
      ControlBlock.prototype.transact = transact;
    }
    await d.close();
    expect(ended).toBe(1);
    expect(await creator.call('settledCheck')).toEqual([]); // its space left, and reaped
    await creator.kill();
  });

  it("an opener's second close() resolves with the first, once the process has left", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    let release!: () => void;
    d.onClose(() => new Promise<void>((resolve) => (release = resolve)));
    const first = d.close();
    let second = false;
    const closing = d.close().then(() => (second = true));
    await new Promise(setImmediate);
    expect(second).toBe(false); // its pools (here, an onClose) still end
    release();
    await Promise.all([first, closing]);
    await expectCode(() => d.space.make(64), 'ERR_XPMEM_CLOSED');
    await creator.kill();
  });

  it("an opener's close() lets an operation of its own thread in flight end before its space is left, and lets nothing start once it leaves", async () => {
    const name = fresh();
    const d = await shared(name);
    const [owner, attacher] = [await Child.start(name), await Child.start(name)];
    const segId = await owner.call<number>('make', { bytes: 4096 });
    const att = await attacher.call<number>('attach', { segId, mode: 'rw' });
    const [starts, ends, flag, gate, closing] = [gates.take(), gates.take(), gates.take(), gates.take(), gates.take()];
    await attacher.call('notifier', { att, starts, ends, flag, gate });
    const result = owner.call('closeDuring', { segId, flag, closing });
    await gates.until(closing); // its close() was called while its migrate waits for the attacher's invalidateStart
    gates.open(gate);
    expect(await result).toEqual({ order: ['migrated', 'closed'], during: 'made', after: 'ERR_XPMEM_CLOSED' }); // a call while it waits is in no one's way
    await until(() => !d.maps().some((r) => r.kind === 'segment'), 'the space it left reaped, with its segment'); // by either watcher
    await expectCode(() => attacher.call('write', { att, index: 0, value: 1 }), 'ERR_XPMEM_REMOVED');
    await finish(d);
    for (const child of [owner, attacher]) await child.kill();
  });

  it("an opener's close() lets a domain.compact() of its own thread in flight end, every move of it, before its space is left", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    const d = await Domain.open(name);
    const attacher = await Child.start(name);
    const [low, lower, a, b] = [0, 1, 2, 3].map(() => d.space.make(4096));
    const [flagA, gateA, flagB, gateB] = [gates.take(), gates.take(), gates.take(), gates.take()];
    for (const [seg, flag, gate] of [
      [a, flagA, gateA],
      [b, flagB, gateB],
    ] as const) {
      const att = await attacher.call<number>('attach', { segId: seg!.id, mode: 'ro' });
      await attacher.call('notifier', { att, starts: gates.take(), ends: gates.take(), flag, gate });
    }
    low!.removeSync();
    lower!.removeSync(); // holes below both: compact moves b, then a, each waiting for the attacher's invalidateStart
    const compacting = d.compact();
    await gates.until(flagB);
    let closed = false;
    const closing = d.close().then(() => {
      closed = true;
    });
    gates.open(gateB);
    await gates.until(flagA); // its second move waits in turn
    await new Promise(setImmediate);
    expect(closed).toBe(false);
    gates.open(gateA);
    expect(await compacting).toMatchObject({ moved: 2, skipped: 0 });
    await closing;
    expect(await creator.call('settledCheck')).toEqual([]);
    for (const child of [attacher, creator]) await child.kill();
  });

  it("an opener's close() that its own section in flight outlasts rejects with ERR_XPMEM_TIMEOUT and changes nothing; it closes once the section ended", async () => {
    const name = fresh();
    const d = await shared(name);
    const seg = d.space.make(4096);
    const child = await Child.start(name, false, 300);
    const att = await child.call<number>('attach', { segId: seg.id, mode: 'rw' });
    const [flag, gate] = [gates.take(), gates.take()];
    const holding = child.call('holdAsync', { att, flag, gate });
    await gates.until(flag);
    await expectCode(() => child.call('close'), 'ERR_XPMEM_TIMEOUT');
    expect(await child.call<number>('make', { bytes: 64 })).toEqual(expect.any(Number)); // still a member: calls go on
    await d.settled(); // a space marked left would be reaped by now
    expect(d.maps().filter((r) => r.kind === 'attachment')).toHaveLength(1);
    gates.open(gate);
    await holding;
    const reaped = reapOf(child.process.pid!);
    await child.call('close');
    await reaped;
    expect(d.maps().filter((r) => r.kind === 'attachment')).toEqual([]);
    await finish(d);
    await child.kill();
  });

  it('a process that opened the domain runs a pool on it, and its close() ends the pool, also once the creator closed the domain', async () => {
    for (const creatorFirst of [false, true]) {
      const name = fresh();
      const d = await shared(name);
      const n = 1024;
      const seg = numbered(d, n);
      const child = await Child.start(name);
      expect(await child.call('pool', { segId: seg.id, length: n })).toBe((n * (n - 1)) / 2);
      if (creatorFirst) await d.close();
      await child.call('close');
      expect({ creatorFirst, threads: await child.call('poolThreads') }).toEqual({ creatorFirst, threads: 0 });
      if (!creatorFirst) await finish(d);
      await child.kill();
    }
  });

  it('a worker thread that opened the domain itself, watched by no Domain of its process, is reaped once it ends: a migrate waiting on its section goes on', async () => {
    const { d, seg, child } = await attached('ro', 60_000); // no slow report wakes the migrate: the reap must
    const flag = gates.take();
    await child.call('selfJoin', { segId: seg.id, flag });
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    const migrating = seg.migrate();
    await new Promise(setImmediate);
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).toBe(before); // it waits for the section
    await child.call('terminateWorker');
    await bounded(migrating, 'the migrate, once the ended worker is reaped');
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
    await finish(d);
    await child.kill();
  });

  it('a synchronous operation goes on when the process it waits for dies and another process, whose reap of it waits for the mutex, then blocks its event loop: no claim outlives a wait for the mutex', async () => {
    const name = fresh();
    const d = await shared(name, 20_000); // a wait that finds the stop steps held would end here, ERR_XPMEM_TIMEOUT
    const seg = d.space.make(4096);
    const [dying, seer, holder] = [await Child.start(name), await Child.start(name), await Child.start(name)];
    const att = await dying.call<number>('attach', { segId: seg.id, mode: 'rw' });
    const [inside, held, release, blocked, unblock] = Array.from({ length: 5 }, () => gates.take());
    dying.send('hold', { att, flag: inside, gate: gates.take() });
    await gates.until(inside);
    holder.send('mutex', { flag: held, gate: release }); // a live process holds the domain mutex, its event loop blocked
    await gates.until(held);
    const words = new Int32Array(d.handle().control);
    // From here this thread's event loop does not turn: its watcher does not see the death.
    dying.process.kill('SIGKILL');
    const end = performance.now() + 15_000;
    while (Atomics.load(words, H_MUTEX_WAITERS) === 0 && performance.now() < end); // the seer's watcher saw it: its reap waits for the mutex
    expect(Atomics.load(words, H_MUTEX_WAITERS)).toBeGreaterThan(0);
    seer.send('block', { flag: blocked, gate: unblock }); // and then its event loop is busy
    gates.block(blocked);
    gates.open(release);
    const before = d.maps().find((r) => r.kind === 'segment')!.offset;
    seg.migrateSync();
    expect(d.maps().find((r) => r.kind === 'segment')!.offset).not.toBe(before);
    gates.open(unblock);
    await finish(d);
    for (const child of [seer, holder]) await child.kill();
  });

  it('a worker thread that opened the domain itself and ended holding the domain mutex, as its space or as a joiner: a waiter takes the mutex from it, as from a dead process', async () => {
    for (const joiner of [false, true]) {
      const { d, child } = await attached('ro');
      const [flag, exit, blocked, unblock] = [gates.take(), gates.take(), gates.take(), gates.take()];
      await child.call('selfJoin', { flag, mutex: true, joiner, exit });
      child.send('block', { flag: blocked, gate: unblock }); // its process's watcher cannot see the worker end
      await gates.until(blocked);
      expect(Atomics.load(new Int32Array(d.handle().control), H_MUTEX)).not.toBe(0); // held, by a worker that runs
      gates.open(exit);
      d.space.make(64); // blocks on the mutex, this thread's watcher with it: only the mutex's own look at its holder can end the wait
      gates.open(unblock);
      await finish(d);
      await child.kill();
    }
  });

  it("a dead owner's segment on which the reaping thread holds an async section is released once that section ends, not abandoned", async () => {
    const name = fresh();
    const d = await shared(name);
    const child = await Child.start(name);
    const segId = await child.call<number>('make', { bytes: 4096 });
    let end!: () => void;
    const section = d.space
      .get(segId, 'rw')
      .attach()
      .writeAsync(() => new Promise<void>((resolve) => (end = resolve)));
    const reaped = reapOf(child.process.pid!);
    await child.kill();
    await expectCode(() => d.settled({ deadlineMs: 300 }), 'ERR_XPMEM_TIMEOUT'); // the release waits for this thread's section
    end();
    await section;
    expect((await reaped).segments).toBe(1);
    await finish(d);
  });

  it('SIGKILL of an invalidator midway: its window is closed, its record ended, its segment released, and a thread of another process goes on', async () => {
    const name = fresh();
    const d = await shared(name);
    const child = await Child.start(name);
    const segId = await child.call<number>('make', { bytes: 4096 });
    const threadGates = new Gates();
    const [watcher] = await agents(d, threadGates, 1);
    const watched = await watcher!.call('attach', { access: await watcher!.call('get', { segId }) });
    const gate = threadGates.take();
    await watcher!.call('notifier', { att: watched, how: 'block', gate, tag: 1, release: true });
    child.send('migrate', { segId });
    await watcher!.until((e) => e.event === 'start', 'the thread in the child’s invalidateStart');
    const reaped = reapOf(child.process.pid!);
    await child.kill();
    threadGates.open(gate);
    await reaped;
    await watcher!.until((e) => e.event === 'end', 'the end of the dead invalidator’s record');
    await watcher!.until((e) => e.event === 'release', 'the release of the dead owner’s segment');
    await watcher!.worker.terminate();
    await finish(d);
  });

  it("a killed creator's leftover is refused by open and taken over by create; a live domain's name is ERR_XPMEM_EXISTS", async () => {
    const name = fresh();
    const creator = await Child.start(name, true);
    await expectCode(() => shared(name), 'ERR_XPMEM_EXISTS');
    const joined = await Domain.open(name);
    await joined.close();
    await creator.kill();
    await expectCode(() => Domain.open(name), 'ERR_XPMEM_NO_DOMAIN');
    const d = await shared(name);
    const seg = d.space.make(4096);
    const child = await Child.start(name);
    const att = await child.call('attach', { segId: seg.id, mode: 'rw' });
    await child.call('write', { att, index: 0, value: 9 });
    expect(peek(d, seg.id, 0)).toBe(9);
    await child.kill();
    await finish(d);
  });

  it('memory never handed out is not touched: a 64 MiB segment takes file pages only where it is written, and reads zero', async () => {
    const name = fresh();
    const d = await Domain.create({ shared: name, arenaBytes: 1 << 20, maxArenaBytes: 256 << 20 });
    const file = `/dev/shm/xpmem-threads.${name}`;
    const before = statSync(file).blocks * 512;
    const big = d.space.make(64 << 20);
    const att = big.attach();
    expect(statSync(file).blocks * 512 - before).toBeLessThan(1 << 20); // make() zeroed nothing: the file's pages were never touched
    att.write((v) => {
      v[(32 << 20) + 5] = 1;
    });
    expect(att.read((v) => v[5] === 0 && v[(32 << 20) + 5] === 1 && v[(64 << 20) - 1] === 0)).toBe(true);
    att.detach();
    await big.remove();
    const again = d.space.make(64 << 20); // the same range, now used: zeroed
    expect(again.attach().read((v) => v[(32 << 20) + 5])).toBe(0);
    await again.remove();
    await finish(d);
  });

  it('the file is private (0600); bad names, unknown names, foreign files and other layout versions are refused with typed errors', async () => {
    const name = fresh();
    const d = await shared(name);
    expect(statSync(`/dev/shm/xpmem-threads.${name}`).mode & 0o777).toBe(0o600);
    for (const bad of ['../x', '', '.hidden', 'a/b', 'x'.repeat(201)]) {
      await expectCode(() => Domain.create({ shared: bad }), 'ERR_INVALID_ARG_VALUE');
      await expectCode(() => Domain.open(bad), 'ERR_INVALID_ARG_VALUE');
    }
    await expectCode(() => Domain.open(42 as unknown as string), 'ERR_INVALID_ARG_TYPE');
    await expectCode(() => Domain.open(fresh()), 'ERR_XPMEM_NO_DOMAIN');
    await expectCode(() => Domain.open(name, { deadline: 5 } as never), 'ERR_INVALID_ARG_VALUE');
    const older = fresh();
    const head = Buffer.alloc(4096 * 2);
    head.writeUInt32LE(0x58504d53, 0); // the descriptor's magic
    head.writeUInt32LE(1, 4); // layout version 1
    head.writeUInt32LE(process.pid, 16); // its creator runs: this process
    head.writeUInt32LE(thisProcess().start, 20);
    writeFileSync(`/dev/shm/xpmem-threads.${older}`, head, { mode: 0o600 });
    await expectCode(() => Domain.open(older), 'ERR_XPMEM_INCOMPATIBLE');
    await expectCode(() => shared(older), 'ERR_XPMEM_EXISTS');
    head.writeUInt32LE(0, 16); // no creator runs any more: a leftover
    writeFileSync(`/dev/shm/xpmem-threads.${older}`, head, { mode: 0o600 });
    await (await shared(older)).close();
    const foreign = fresh();
    writeFileSync(`/dev/shm/xpmem-threads.${foreign}`, 'not a domain', { mode: 0o600 });
    await expectCode(() => Domain.open(foreign), 'ERR_XPMEM_INCOMPATIBLE');
    rmSync(`/dev/shm/xpmem-threads.${foreign}`);
    writeFileSync(`/dev/shm/xpmem-threads.${foreign}`, head, { mode: 0o644 });
    await expectCode(() => Domain.open(foreign), 'ERR_XPMEM_PERMISSION');
    rmSync(`/dev/shm/xpmem-threads.${foreign}`);
    await d.close();
  });

  it("a file whose descriptor or control block is not a domain's is refused with ERR_XPMEM_INCOMPATIBLE saying which: a copy of a live domain's file, one magic word changed", async () => {
    const name = fresh();
    const d = await shared(name);
    const whole = readFileSync(`/dev/shm/xpmem-threads.${name}`);
    const refusals: { code: string; message: string }[] = [];
    for (const at of [0, 4096 + H_MAGIC * 4]) {
      const copy = fresh();
      const bytes = Buffer.from(whole);
      bytes.writeUInt32LE(0, at); // the descriptor's magic word, then the control block's
      writeFileSync(`/dev/shm/xpmem-threads.${copy}`, bytes, { mode: 0o600 });
      refusals.push(
        await Domain.open(copy).then(
          () => ({ code: 'opened', message: '' }),
          (error: { code: string; message: string }) => error,
        ),
      );
      rmSync(`/dev/shm/xpmem-threads.${copy}`);
    }
    expect(refusals.map((r) => r.code)).toEqual(['ERR_XPMEM_INCOMPATIBLE', 'ERR_XPMEM_INCOMPATIBLE']);
    expect(refusals[0]!.message).toMatch(/is not a shared domain of xpmem-threads \(no descriptor\): remove /);
    expect(refusals[1]!.message).toMatch(/is damaged \(no control block after its descriptor\): remove /);
    await d.close();
  });

  // A private /dev/shm, in a mount namespace of its own: root only.
  const privateShm = process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0;
  /** Runs module `code` (Domain imported) in a process whose /dev/shm is a tmpfs of `size` of its own; resolves with what it printed and the signal that ended it. */
  function inPrivateShm(size: string, code: string): { signal: NodeJS.Signals | null; out: string } {
    const run = spawnSync(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        `mount -t tmpfs -o size=${size} tmpfs /dev/shm && exec "$0" --input-type=module -e "$1"`,
        process.execPath,
        `import { Domain } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};\n${code}`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    return { signal: run.signal, out: run.stdout.trim() };
  }

  it.runIf(privateShm)('a foreign file whose first page is a hole of a full /dev/shm is refused with ERR_XPMEM_INCOMPATIBLE, not a fault', () => {
    const code = `
      import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
      const fd = openSync('/dev/shm/xpmem-threads.hole', 'w+', 0o600);
      ftruncateSync(fd, 1 << 20); // sparse: its first page holds no memory yet
      closeSync(fd);
      const filler = openSync('/dev/shm/filler', 'w');
      try { for (;;) writeSync(filler, Buffer.alloc(4096, 1)); } catch {} // until ENOSPC
      const refused = await Domain.open('hole').catch((e) => e);
      console.log(refused.code);`;
    expect(inPrivateShm('64k', code)).toEqual({ signal: null, out: 'ERR_XPMEM_INCOMPATIBLE' });
  });

  it.runIf(privateShm)(
    "a shared domain that could grow past all of /dev/shm is refused with ERR_XPMEM_NO_MEMORY, where its writes would fault: in a container's 64 MiB, the default maxArenaBytes (1 GiB) is, 16 MiB is not and can be written whole, and a killed creator's leftover that fills most of the rest is taken over",
    () => {
      const leftover = `import { Domain } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};
        const d = await Domain.create({ shared: 'left', arenaBytes: 40 << 20, maxArenaBytes: 40 << 20 });
        d.space.get(d.space.make(40 << 20).id).attach().write(Uint8Array, (v) => { v.fill(1); });
        process.kill(process.pid, 'SIGKILL');`;
      const code = `
      import { spawnSync } from 'node:child_process';
      const refused = await Domain.create({ shared: 'big' }).catch((e) => e);
      const d = await Domain.create({ shared: 'fits', arenaBytes: 16 << 20, maxArenaBytes: 16 << 20 });
      const seg = d.space.make(16 << 20);
      d.space.get(seg.id).attach().write(Uint8Array, (v) => {
        v.fill(1);
      });
      await d.close();
      spawnSync(process.execPath, ['--input-type=module', '-e', ${JSON.stringify(leftover)}]);
      const taken = await Domain.create({ shared: 'left', arenaBytes: 40 << 20, maxArenaBytes: 40 << 20 }).then((d) => d.close().then(() => 'taken over'), (e) => e.code);
      console.log(refused.code, /lower options.maxArenaBytes/.test(refused.message), 'written', taken);`;
      expect(inPrivateShm('64m', code)).toEqual({ signal: null, out: 'ERR_XPMEM_NO_MEMORY true written taken over' });
    },
  );

  it.runIf(privateShm)('a /dev/shm of no set size (a tmpfs of size 0, which statfs calls 0 blocks) takes a shared domain of the default size', () => {
    expect(inPrivateShm('0', `await (await Domain.create({ shared: 'any' })).close(); console.log('created');`)).toEqual({ signal: null, out: 'created' });
  });

  it("the creator's close ends the domain for every process: their calls fail with ERR_XPMEM_CLOSED and the name is free", async () => {
    const { name, d, child, att } = await attached('rw');
    await expectCode(() => Domain.open(name), 'ERR_XPMEM_EXISTS'); // this thread is in it already
    await d.close();
    await expectCode(() => child.call('read', { att, index: 0 }), 'ERR_XPMEM_CLOSED');
    await expectCode(() => child.call('make', { bytes: 64 }), 'ERR_XPMEM_CLOSED');
    await expectCode(() => Domain.open(name), 'ERR_XPMEM_NO_DOMAIN');
    await child.kill();
  });
});
