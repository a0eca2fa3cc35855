/** Test harness: agents (scriptable worker spaces), bounded waits on real events, gates. */
import type { Worker } from 'node:worker_threads';
import { Domain, type DomainOptions } from '../src/index.js';
import { capacitiesOf, layoutFor, SP_HELD, slotBase, slotOf } from '../src/layout.js';

/** Every wait in tests is bounded by this (ms); the suite never sleeps to synchronize. */
export const BOUND = 15_000;

const AGENT = new URL('../build/test/fixtures/agent.js', import.meta.url);

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
 * appends codes to with one Atomics.add, giving a total order of what happened where.
 */
export class Gates {
  readonly buffer = new SharedArrayBuffer(64 * 4);
  readonly logBuffer = new SharedArrayBuffer(4096 * 4);
  readonly #words = new Int32Array(this.buffer);
  readonly #log = new Int32Array(this.logBuffer);
  #next = 1;

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
    Atomics.notify(this.#words, gate);
  }
}

/** A worker space driven by commands. */
export class Agent {
  readonly worker: Worker;
  readonly events: AgentEvent[] = [];
  readonly exited: Promise<number>;
  #id = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #watchers: (() => void)[] = [];

  constructor(worker: Worker) {
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.on('message', (m: { id?: number; ok?: boolean; value?: unknown; code?: string; message?: string } & AgentEvent) => {
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
    worker.on('error', (e) => {
      throw e;
    });
  }

  /** Runs one command in the agent within `ms`; rejects with the agent's error (code preserved). */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}, ms = BOUND): Promise<T> {
    const id = ++this.#id;
    return bounded(
      new Promise<T>((resolve, reject) => {
        this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        this.worker.postMessage({ id, op, ...args });
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

/** The slot of space `spaceId` in `d`'s space table. */
export function spaceSlot(d: Domain, spaceId: number): number {
  return slotOf(layoutFor(capacitiesOf(new Int32Array(d.handle().control))).spaces, spaceId);
}

/** The slot of segment `segId` in `d`'s segment table (what held words name, plus one). */
export function segSlot(d: Domain, segId: number): number {
  return slotOf(layoutFor(capacitiesOf(new Int32Array(d.handle().control))).segments, segId);
}

/** Spawns `n` agents on `domain` and waits until each has joined. */
export async function agents(domain: Domain, gates: Gates, n: number): Promise<Agent[]> {
  const list = Array.from({ length: n }, () => new Agent(domain.spawn(AGENT, { workerData: { gates: gates.buffer, log: gates.logBuffer } })));
  await Promise.all(list.map((a) => a.until((e) => e.event === 'ready', 'agent ready')));
  return list;
}

/** A domain for one test, small deadlines so failure paths finish fast. */
export function domain(opts: DomainOptions = {}): Promise<Domain> {
  return Domain.create({ arenaBytes: 1 << 20, deadlineMs: 5_000, ...opts });
}

/** Terminates agents, waits for their reaps, checks the invariants, closes. */
export async function teardown(d: Domain, list: Agent[]): Promise<void> {
  await Promise.all(list.map((a) => a.worker.terminate()));
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
