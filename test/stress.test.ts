/**
 * Lost-write stress: writers increment counters in write sections (one sync, one async) until
 * told to stop, while the owner runs rounds of VM operations under them: migrate, resize,
 * protect, swap-out (the writers fault it back in) and compaction (a filler made and removed
 * below opens a hole). Every operation runs between the writers' start and their stop, and every
 * increment must survive. STRESS=long: at least 10 million increments.
 *
 * The same with the writers in two other processes of a shared domain (host processes, each
 * running the agent as a worker, helpers.ts hosts()), the owner in this one: a short run in CI,
 * at least 10 million increments with STRESS=long.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { agents, BOUND, bounded, cleanUpProcesses, domain, Gates, hosts, sharedName, teardown, until } from './helpers.js';

const LONG = process.env.STRESS === 'long';
/** Rounds of the five operations in CI (writers in threads, in processes); the long run goes on until the writers made INCREMENTS. */
const ROUNDS = 60;
const PROCESS_ROUNDS = 20;
const INCREMENTS = 10_000_000;
/** Increments per run of a writer's loop. */
const BATCH = 100;
/** Bound of the whole run (the long one takes about a minute on a busy 2-core machine). */
const LIMIT = LONG ? 20 * BOUND : BOUND;

/**
 * Writers in threads of this process, or (`processes`) in two host processes that opened this
 * test's shared domain; `rounds` of the five operations, or until INCREMENTS with STRESS=long.
 */
async function lostWrites(processes: boolean, rounds: number): Promise<void> {
  const name = sharedName();
  const d = await domain({ deadlineMs: 30_000, arenaBytes: 4 << 20, ...(processes ? { shared: name, maxArenaBytes: 16 << 20 } : {}) });
  const gates = new Gates(processes);
  try {
    const words = new Int32Array(gates.buffer);
    const writers = processes ? await hosts(name, gates, 2) : await agents(d, gates, 2);
    const seg = d.space.make(4096);
    const atts = await Promise.all(writers.map(async (w) => w.call('attach', { access: await w.call('get', { segId: seg.id }), range: { offset: 0, length: 64 } })));
    const stop = gates.take();
    const progress = writers.map(() => gates.take());
    const running = writers.map((w, i) =>
      w.call<{ runs: number; code?: string }>(
        'loop',
        {
          body: { op: i === 0 ? 'increment' : 'incrementAsync', att: atts[i], index: i, times: BATCH },
          progress: progress[i],
          stop,
        },
        LIMIT + BOUND,
      ),
    );
    for (const r of running) r.catch(() => {}); // awaited below: a failure before that leaves no unhandled rejection
    await until(() => progress.every((p) => Atomics.load(words, p) > 0), 'both writers to start');
    const sizes = [4096, 8192, 128, 65536];
    const kinds: Record<string, number> = {};
    const mix: [string, () => Promise<unknown>][] = [
      ['migrate', () => seg.migrate()],
      ['resize', () => seg.resize(sizes[(kinds.resize ?? 0) % sizes.length]!)],
      ['protect', () => seg.protect('rw')], // a full invalidation that changes nothing: writers keep going
      ['swap', () => seg.swapOut()],
      [
        'compact',
        async () => {
          await d.space.make(64 * 1024).remove();
          return d.compact();
        },
      ],
    ];
    const atFirst = progress.map((p) => Atomics.load(words, p));
    // At least `rounds`, and on until each writer has written while they ran (a loaded machine may hold a writer back for a while).
    const wrote = (): boolean => progress.every((p, i) => Atomics.load(words, p) > atFirst[i]!);
    const done = (round: number): boolean => (LONG ? progress.every((p) => Atomics.load(words, p) * BATCH >= INCREMENTS / 2) : round >= rounds && wrote());
    let ops = 0;
    for (let round = 0; !done(round); round++) {
      for (const [kind, op] of mix) {
        await new Promise((resolve) => setImmediate(resolve)); // let the writers' answers in
        await op();
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        ops++;
      }
    }
    const atLast = progress.map((p) => Atomics.load(words, p));
    gates.open(stop);
    const results = await bounded(Promise.all(running), 'the writers to stop', LIMIT + BOUND);
    for (const r of results) expect(r.code, `a writer failed after ${ops} VM operations`).toBeUndefined();
    const counts = d.space
      .get(seg.id, 'ro')
      .attach({ offset: 0, length: 64 })
      .read(Int32Array, (v) => [v[0], v[1]]);
    expect(counts).toEqual(results.map((r) => r.runs * BATCH)); // no increment lost
    for (let i = 0; i < 2; i++) expect(atLast[i], 'each writer kept writing while the operations ran').toBeGreaterThan(atFirst[i]!);
    expect(d.stats().faults).toBeGreaterThan(0);
    if (LONG) console.log(`stress${processes ? ' (writers in processes)' : ''}: ${counts[0]! + counts[1]!} increments, ${ops} VM operations`, kinds, d.stats());
    await teardown(d, writers);
  } finally {
    gates.remove();
  }
}

afterAll(cleanUpProcesses);

describe('no lost write across VM operations', () => {
  const size = (rounds: number): string => (LONG ? 'at least 10 million' : String(5 * rounds));
  it(`increments survive ${size(ROUNDS)} migrate, resize, protect, swap and compaction windows`, () => lostWrites(false, ROUNDS), LIMIT + 2 * BOUND);

  it(`writers in two processes: increments survive ${size(PROCESS_ROUNDS)} migrate, resize, protect, swap and compaction windows`, () => lostWrites(true, PROCESS_ROUNDS), LIMIT + 2 * BOUND);
});
