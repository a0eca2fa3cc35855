/**
 * Attacher workers for the benchmarks (bench/fixtures/attacher.ts), spawned with domain.spawn
 * and sharing a few words with this thread (fixtures/protocol.ts). Spawning waits for each
 * one's ready message, commands wait for their answer, a blocking ring waits at most BOUND_MS
 * and retiring waits for the domain's reaps, each bounded. Pings and awaited rings are not
 * bounded one by one (a timer each would be part of the round trip they measure): the suite's
 * bound covers them.
 */
import type { Worker } from 'node:worker_threads';
import type { Domain } from '../../src/index.js';
import { ANSWERS, RING, STOP, WORDS, type Command } from '../fixtures/protocol.js';
import { bounded } from './bounded.js';

export const BOUND_MS = 20_000;

const FIXTURE = new URL('../fixtures/attacher.js', import.meta.url);

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  message?: string;
}

/** One attacher worker. */
export class Attacher {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  #id = 0;
  #pong: (() => void) | undefined;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(domain: Domain, words: SharedArrayBuffer) {
    this.worker = domain.spawn(FIXTURE, { workerData: { words } });
    this.ready = bounded(
      new Promise<void>((resolve, reject) => {
        this.worker.on('message', (m: number | Reply | { ready: number }) => {
          if (typeof m === 'number') this.#pong?.();
          else if ('ready' in m) resolve();
          else this.#answer(m);
        });
        this.worker.once('error', (error) => {
          reject(error);
          for (const p of this.#pending.values()) p.reject(error);
        });
      }),
      'attacher ready',
      BOUND_MS,
    );
  }

  /** One postMessage round trip. */
  ping(): Promise<void> {
    return new Promise((resolve) => {
      this.#pong = resolve;
      this.worker.postMessage(0);
    });
  }

  /** Runs a fixture command; resolves with its value. */
  call(op: Command['op'], args: Omit<Command, 'id' | 'op'> = {}): Promise<unknown> {
    const id = ++this.#id;
    return bounded(
      new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        this.worker.postMessage({ id, op, ...args } satisfies Command);
      }),
      `attacher command ${op}`,
      BOUND_MS,
    );
  }

  #answer(m: Reply): void {
    const p = this.#pending.get(m.id);
    if (p === undefined) return;
    this.#pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.message));
  }
}

/** The attachers of one domain and the words they share with this thread. */
export class Attachers {
  readonly list: Attacher[] = [];
  readonly words = new Int32Array(new SharedArrayBuffer(WORDS * 4));
  readonly #domain: Domain;

  constructor(domain: Domain) {
    this.#domain = domain;
  }

  /** Spawns attachers until there are `n`, waiting until each has joined; returns the new ones. */
  async spawn(n: number): Promise<Attacher[]> {
    const more = Array.from({ length: n - this.list.length }, () => new Attacher(this.#domain, this.words.buffer as SharedArrayBuffer));
    this.list.push(...more);
    await Promise.all(more.map((a) => a.ready));
    return more;
  }

  /** Lets busy and echo loops run (until stop()). */
  go(): void {
    Atomics.store(this.words, STOP, 0);
  }

  /** Ends busy and echo loops. */
  stop(): void {
    Atomics.store(this.words, STOP, 1);
    this.#ring(0);
  }

  /** One ring answered by `echoes` echoing attachers, waiting with Atomics.waitAsync. */
  async ring(echoes = 1): Promise<void> {
    const all = this.#ring(echoes);
    for (let seen = Atomics.load(this.words, ANSWERS); seen < all; seen = Atomics.load(this.words, ANSWERS)) {
      const w = Atomics.waitAsync(this.words, ANSWERS, seen);
      if (w.async) await w.value;
    }
  }

  /**
   * One ring answered by an echoing attacher, blocking in Atomics.wait (at most BOUND_MS each
   * sleep); with `spinMs`, first spinning that long on the answer word (a waker that spins).
   */
  ringSync(spinMs = 0): void {
    const all = this.#ring(1);
    for (const until = performance.now() + spinMs; Atomics.load(this.words, ANSWERS) < all && performance.now() < until; );
    for (let seen = Atomics.load(this.words, ANSWERS); seen < all; seen = Atomics.load(this.words, ANSWERS)) {
      if (Atomics.wait(this.words, ANSWERS, seen, BOUND_MS) === 'timed-out') throw new Error(`no answer to a ring within ${BOUND_MS} ms`);
    }
  }

  /** Rings; returns the answer count that `echoes` answers reach (each echo answers a ring once). */
  #ring(echoes: number): number {
    const all = Atomics.load(this.words, ANSWERS) + echoes;
    Atomics.add(this.words, RING, 1);
    Atomics.notify(this.words, RING);
    return all;
  }

  /** Terminates every attacher and waits until the domain has reaped their spaces. */
  async retire(): Promise<void> {
    await bounded(Promise.all(this.list.map((a) => a.worker.terminate())), 'attacher exits', BOUND_MS);
    await bounded(this.#domain.settled(), 'reaping attachers', BOUND_MS);
  }
}
