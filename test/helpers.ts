/**
 * Test harness: agents (scriptable worker spaces, as threads of this process or each in a host
 * process of its own), bounded waits on real events, gates.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Domain, type DomainOptions, type Segment } from '../src/index.js';
import { capacitiesOf, layoutFor, SP_HELD, slotBase, slotOf, VERSION } from '../src/layout.js';
import { withFile } from '../src/control/shm.js';
import { notify, waitAsync } from '../src/sync/futex.js';
import { freshShmPath, mapShm } from './fixtures/shm-gates.js';

/** Every wait in tests is bounded by this (ms); the suite never sleeps to synchronize. */
export const BOUND = 15_000;

/** The folder holding this Node's headers (include/node), for node-gyp's nodedir and for g++: the one beside its executable, as a registry runtime and the machine's node both have it. */
export function nodeDir(): string {
  const beside = join(dirname(process.execPath), '..');
  return existsSync(join(beside, 'include', 'node', 'node.h')) ? beside : '/usr';
}

const AGENT = new URL('../dist/test/fixtures/agent.js', import.meta.url);
const HOST = new URL('../dist/test/fixtures/agent-host.js', import.meta.url);

export interface AgentEvent {
  event: string;
  tag?: unknown;
  segId?: number;
  offset?: number;
  length?: number;
  type?: string;
  blockable?: boolean;
}

/**
 * Gates: words the test opens to release blocked callbacks or sections; and a log every thread
 * appends codes to with one Atomics.add, giving a total order of what happened where. Gates for
 * host processes (`new Gates(true)`) live in two /dev/shm files the hosts map (`paths`), and
 * their waits and wakes reach every process (the library's futex wrappers).
 */
export class Gates {
  readonly buffer: SharedArrayBuffer;
  readonly logBuffer: SharedArrayBuffer;
  /** The files of gates shared with host processes: remove() them at the end. */
  readonly paths: { gates: string; log: string } | undefined;
  readonly #words: Int32Array;
  readonly #log: Int32Array;
  #next = 1;

  constructor(processes = false) {
    const [words, log] = [64 * 4, 4096 * 4];
    this.paths = processes ? { gates: freshShmPath('gates'), log: freshShmPath('log') } : undefined;
    this.buffer = this.paths === undefined ? new SharedArrayBuffer(words) : mapShm(this.paths.gates, words);
    this.logBuffer = this.paths === undefined ? new SharedArrayBuffer(log) : mapShm(this.paths.log, log);
    this.#words = new Int32Array(this.buffer);
    this.#log = new Int32Array(this.logBuffer);
  }

  /** Appends a code to the log (main thread side). */
  note(code: number): void {
    this.#log[Atomics.add(this.#log, 0, 1) + 1] = code;
  }

  /** The log so far, in order. */
  get log(): number[] {
    return Array.from(this.#log.subarray(1, 1 + Atomics.load(this.#log, 0)));
  }

  take(): number {
    return this.#next++;
  }

  open(gate: number): void {
    Atomics.store(this.#words, gate, 1);
    notify(this.#words, gate);
  }

  /** Resolves once word `i` is at least `value`, woken by its notifies (bounded). */
  reached(i: number, value: number): Promise<void> {
    return bounded(
      (async () => {
        for (let v = Atomics.load(this.#words, i); v < value; v = Atomics.load(this.#words, i)) await waitAsync(this.#words, i, v, Infinity);
      })(),
      `progress ${value} on word ${i}`,
    );
  }

  /** Removes the files of gates shared with host processes (their mappings stay valid). */
  remove(): void {
    for (const path of Object.values(this.paths ?? {})) rmSync(path, { force: true });
  }
}

/**
 * A worker space driven by commands: a thread of this process (agents()), or the worker of a host
 * process that relays commands, answers and events over IPC (hosts(), fixtures/agent-host.ts).
 */
export class Agent {
  /** The worker thread, or the host process. */
  readonly port: Worker | ChildProcess;
  readonly events: AgentEvent[] = [];
  readonly exited: Promise<number>;
  #id = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #watchers: (() => void)[] = [];

  constructor(port: Worker | ChildProcess) {
    this.port = port;
    this.exited = new Promise((resolve) => port.once('exit', resolve));
    port.on('message', (m: { id?: number; ok?: boolean; value?: unknown; code?: string; message?: string } & AgentEvent) => {
      if (m.id !== undefined) {
        const p = this.#pending.get(m.id)!;
        this.#pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(Object.assign(new Error(m.message), { code: m.code }));
        return;
      }
      this.events.push(m);
      for (const w of this.#watchers.splice(0)) w();
    });
    port.on('error', (e) => {
      throw e;
    });
  }

  /** The worker thread of an agent of this process. */
  get worker(): Worker {
    if (!(this.port instanceof Worker)) throw new Error('an agent in a host process has no worker here: kill() it');
    return this.port;
  }

  /** Ends the agent: terminates its thread, or SIGKILLs its host process (the worker dies with it); resolves once it exited. */
  async kill(): Promise<void> {
    if (this.port instanceof Worker) {
      await this.port.terminate();
      return;
    }
    this.port.kill('SIGKILL');
    await bounded(this.exited, 'the killed host process to exit');
  }

  /** Runs one command in the agent within `ms`; rejects with the agent's error (code preserved). */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}, ms = BOUND): Promise<T> {
    const id = ++this.#id;
    return bounded(
      new Promise<T>((resolve, reject) => {
        this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        const port = this.port;
        if (port instanceof Worker) port.postMessage({ id, op, ...args });
        else if (!port.connected) reject(new Error(`agent command ${op}: its host process is gone`));
        else port.send({ id, op, ...args }, (error: Error | null) => error && reject(error));
      }),
      `agent command ${op}`,
      ms,
    );
  }

  /** Sends a command without waiting for its answer (the agent may block in it). */
  send(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    return this.call(op, args);
  }

  /** Resolves when an event matching `pred` has arrived (bounded). */
  async until(pred: (e: AgentEvent) => boolean, what = 'event'): Promise<AgentEvent> {
    return bounded(
      (async () => {
        for (;;) {
          const found = this.events.find(pred);
          if (found) return found;
          await new Promise<void>((resolve) => this.#watchers.push(resolve));
        }
      })(),
      what,
    );
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }
}

/** Rejects if `p` does not settle within BOUND ms. */
export function bounded<T>(p: Promise<T>, what: string, ms = BOUND): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]);
}

/** Resolves once `cond()` holds, looking once per event-loop turn (bounded). */
export function until(cond: () => boolean, what: string, ms = BOUND): Promise<void> {
  return bounded(
    (async () => {
      while (!cond()) await new Promise((resolve) => setImmediate(resolve));
    })(),
    what,
    ms,
  );
}

/** The held-section words of space `spaceId` in `d` (white box: what drains and grants see). */
export function heldWords(d: Domain, spaceId: number): number[] {
  const words = new Int32Array(d.handle().control);
  const layout = layoutFor(capacitiesOf(words));
  const base = slotBase(layout.spaces, spaceSlot(d, spaceId)) + SP_HELD;
  return Array.from({ length: layout.caps.depth }, (_, i) => Atomics.load(words, base + i));
}

/** A segment of `d`'s space holding Float64 0, 1, ..., n - 1. */
export function numbered(d: Domain, n: number): Segment {
  const seg = d.space.make(n * 8);
  d.space
    .get(seg.id)
    .attach()
    .write(Float64Array, (v) => {
      for (let i = 0; i < n; i++) v[i] = i;
    });
  return seg;
}

/** The slot of space `spaceId` in `d`'s space table. */
export function spaceSlot(d: Domain, spaceId: number): number {
  return slotOf(layoutFor(capacitiesOf(new Int32Array(d.handle().control))).spaces, spaceId);
}

/** The slot of segment `segId` in `d`'s segment table (what held words name, plus one). */
export function segSlot(d: Domain, segId: number): number {
  return slotOf(layoutFor(capacitiesOf(new Int32Array(d.handle().control))).segments, segId);
}

/** Spawns `n` agents on `domain` and waits until each has joined. */
export function agents(domain: Domain, gates: Gates, n: number): Promise<Agent[]> {
  return ready(Array.from({ length: n }, () => new Agent(domain.spawn(AGENT, { workerData: { gates: gates.buffer, log: gates.logBuffer } }))));
}

/** Host processes this test file forked and that still run (killHosts() ends them). */
const forked = new Set<Agent>();
let names = 0;

/** A fresh name for a shared domain of this test file (cleanUpProcesses() removes what its creator left). */
export function sharedName(): string {
  return `campaign-${process.pid}-${++names}`;
}

/**
 * Forks `n` host processes that open shared domain `name` and each spawn an agent there (as a
 * worker of their own, on gates made with `new Gates(true)`); waits until each agent has joined.
 */
export function hosts(name: string, gates: Gates, n: number): Promise<Agent[]> {
  const { paths } = gates;
  if (paths === undefined) throw new Error('host processes need gates in shared memory: new Gates(true)');
  return ready(
    Array.from({ length: n }, () => {
      const host = new Agent(fork(HOST, [name, paths.gates, paths.log], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
      forked.add(host);
      void host.exited.then(() => forked.delete(host));
      return host;
    }),
  );
}

/** Waits until every agent of `list` has joined its domain. */
async function ready(list: Agent[]): Promise<Agent[]> {
  await Promise.all(list.map((a) => a.until((e) => e.event === 'ready', 'agent ready')));
  return list;
}

/**
 * After a test file's host processes (afterAll, failed or not): SIGKILLs those still running and
 * removes every /dev/shm file this file made (gates, logs, tallies, shared domains left behind).
 */
export async function cleanUpProcesses(): Promise<void> {
  await Promise.all([...forked].map((host) => host.kill()));
  removeShmFiles([`xpmem-threads.campaign-${process.pid}-`, ...['gates', 'log', 'tally'].map((kind) => `xpmem-test-${kind}-${process.pid}-`)]);
}

/**
 * Removes the /dev/shm files whose names start with one of `prefixes`, with the swap directory
 * the creator of each domain file among them made: a creator the test killed leaves both.
 */
export function removeShmFiles(prefixes: readonly string[]): void {
  for (const f of readdirSync('/dev/shm')) {
    if (!prefixes.some((prefix) => f.startsWith(prefix))) continue;
    const path = `/dev/shm/${f}`;
    if (f.startsWith('xpmem-threads.') && !f.includes('+')) {
      try {
        const { version, ownSwapDir, swapDir } = withFile(path, f.slice('xpmem-threads.'.length), (_, descriptor) => descriptor);
        if (version === VERSION && ownSwapDir) rmSync(swapDir, { recursive: true, force: true });
      } catch {
        // not a domain file this version reads: the file alone
      }
    }
    rmSync(path, { force: true });
  }
}

/** A domain for one test, small deadlines so failure paths finish fast. */
export function domain(opts: DomainOptions = {}): Promise<Domain> {
  return Domain.create({ arenaBytes: 1 << 20, deadlineMs: 5_000, ...opts });
}

/** Terminates agents, waits for their reaps, checks the invariants, closes. */
export async function teardown(d: Domain, list: Agent[]): Promise<void> {
  await Promise.all(list.map((a) => a.kill()));
  await d.settled();
  await noneInFlight(d);
  const report = d.check();
  await d.close();
  if (!report.ok) throw new Error(`domain.check() failed:\n${report.errors.join('\n')}`);
}

/** Resolves once no invalidation record is in flight: every target, the reaped ones too, acked every end (bounded). */
export function noneInFlight(d: Domain): Promise<void> {
  return until(() => d.stats().invalidationsInFlight === 0, 'every invalidation record to be acked');
}

/** Asserts `fn` throws (or rejects) with `code`. */
export async function expectCode(fn: () => unknown, code: string): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if ((error as { code?: string }).code === code) return;
    throw new Error(`expected ${code}, got ${(error as { code?: string }).code}: ${(error as Error).message}`);
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}
