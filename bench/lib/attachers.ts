/**
 * Attacher workers for the benchmarks (bench/fixtures/attacher.ts), spawned with domain.spawn
 * and sharing a few words with this thread (fixtures/protocol.ts). Spawning waits for each
 * one's ready message, commands wait for their answer, a blocking ring waits at most BOUND_MS
 * and retiring waits for the domain's reaps, each bounded. Pings and awaited rings are not
 * bounded one by one (a timer each would be part of the round trip they measure): the suite's
 * bound covers them. Attacher processes (lib/processes.ts) are driven through the same class.
 */
import type { EventEmitter } from 'node:events';
import type { Domain } from '../../src/index.js';
import { ANSWERS, STOP, WORDS, type Command } from '../fixtures/protocol.js';
import { bounded } from './bounded.js';
import { atomics, ring, ringAnswered } from './wake.js';

export const BOUND_MS = 20_000;

const FIXTURE = new URL('../fixtures/attacher.js', import.meta.url);

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  message?: string;
}

/** What an attacher sends when it has joined: its space, and whatever else its fixture reports. */
export interface Ready {
  readonly ready: number;
  readonly [key: string]: unknown;
}

/** One attacher: a worker (spawned by Attachers) or a forked process, driven the same way. */
export class Attacher {
  readonly ready: Promise<Ready>;
  /** Sends one message to the attacher. */
  readonly post: (m: unknown) => void;
  /** Ends the attacher (terminate, or kill); resolves once it is gone. */
  readonly end: () => Promise<unknown>;
  #id = 0;
  #pong: (() => void) | undefined;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  /** `peer`: the Worker or ChildProcess, for its messages and errors; `post` sends it one. */
  constructor(peer: EventEmitter, post: (m: unknown) => void, end: () => Promise<unknown>) {
    this.post = post;
    this.end = end;
    this.ready = bounded(
      new Promise<Ready>((resolve, reject) => {
        peer.on('message', (m: number | Reply | Ready) => {
          if (typeof m === 'number') this.#pong?.();
          else if ('ready' in m) resolve(m);
          else this.#answer(m);
        });
        peer.once('error', (error) => {
          reject(error);
          for (const p of this.#pending.values()) p.reject(error);
        });
      }),
      'attacher ready',
      BOUND_MS,
    );
  }

  /** One message round trip (postMessage, or process.send). */
  ping(): Promise<void> {
    return new Promise((resolve) => {
      this.#pong = resolve;
      this.post(0);
    });
  }

  /** Runs a fixture command; resolves with its value. */
  call(op: Command['op'], args: Omit<Command, 'id' | 'op'> = {}): Promise<unknown> {
    const id = ++this.#id;
    return bounded(
      new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        this.post({ id, op, ...args } satisfies Command);
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

/** An attacher worker of `domain` (fixtures/attacher.ts) sharing `words` with this thread. */
function workerAttacher(domain: Domain, words: SharedArrayBuffer): Attacher {
  const worker = domain.spawn(FIXTURE, { workerData: { words } });
  return new Attacher(
    worker,
    (m) => worker.postMessage(m),
    () => worker.terminate(),
  );
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
    const more = Array.from({ length: n - this.list.length }, () => workerAttacher(this.#domain, this.words.buffer as SharedArrayBuffer));
    this.list.push(...more);
    await Promise.all(more.map((a) => a.ready));
    return more;
  }

  /** A new attacher apart from the list: its owner awaits its ready and ends it. */
  one(): Attacher {
    return workerAttacher(this.#domain, this.words.buffer as SharedArrayBuffer);
  }

  /** Lets busy and echo loops run (until stop()). */
  go(): void {
    Atomics.store(this.words, STOP, 0);
  }

  /** Ends busy and echo loops. */
  stop(): void {
    Atomics.store(this.words, STOP, 1);
    ring(this.words, atomics, 0);
  }

  /** One ring answered by `echoes` echoing attachers, waiting with Atomics.waitAsync. */
  ring(echoes = 1): Promise<void> {
    return ringAnswered(this.words, atomics, echoes);
  }

  /**
   * One ring answered by an echoing attacher, blocking in Atomics.wait (at most BOUND_MS each
   * sleep); with `spinMs`, first spinning that long on the answer word (a waker that spins).
   */
  ringSync(spinMs = 0): void {
    const all = ring(this.words, atomics, 1);
    for (const until = performance.now() + spinMs; Atomics.load(this.words, ANSWERS) < all && performance.now() < until; );
    for (let seen = Atomics.load(this.words, ANSWERS); seen < all; seen = Atomics.load(this.words, ANSWERS)) {
      if (Atomics.wait(this.words, ANSWERS, seen, BOUND_MS) === 'timed-out') throw new Error(`no answer to a ring within ${BOUND_MS} ms`);
    }
  }

  /** Terminates every attacher and waits until the domain has reaped their spaces. */
  async retire(): Promise<void> {
    await bounded(Promise.all(this.list.map((a) => a.end())), 'attacher exits', BOUND_MS);
    await bounded(this.#domain.settled(), 'reaping attachers', BOUND_MS);
  }
}
