/**
 * Fault injection with real workers: a victim space is terminated (worker.terminate()) at a
 * random point of its work, as owner or as attacher: inside sections, inside its notifier
 * callbacks (plain, blocking, awaiting), while allocating, migrating, swapping or reclaiming.
 * After each fault: every survivor's call finishes or fails with a typed error within its bound,
 * domain.check() passes, and once the victim is reaped the arena holds exactly what the
 * survivors own. 50 faults in CI; 500 with STRESS=long.
 *
 * The same with victim and survivor each in a host process of a shared domain (helpers.ts
 * hosts()), main in this one: the victim's process is killed with SIGKILL; the others go on, and
 * `await domain.settled()` (which waits for the reaps of processes already gone) leaves a clean
 * domain. 6 faults in CI (each scenario once: a host process takes most of a second to start);
 * 240 with STRESS=long.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Agent, agents, BOUND, bounded, cleanUpProcesses, domain, Gates, hosts, noneInFlight, sharedName } from './helpers.js';
import type { Domain } from '../src/index.js';

const LONG = process.env.STRESS === 'long';
const FAULTS = LONG ? 500 : 50;
const PROCESS_FAULTS = LONG ? 240 : 6;
const KIB64 = 64 * 1024;

/** A deterministic generator: fault `i` always does the same thing. */
function generator(seed: number): (n: number) => number {
  let s = seed * 2654435761 + 1;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s >>> 8) % n;
  };
}

/**
 * What a survivor's call may come to: success, or ERR_XPMEM_REMOVED (the dead owner's segment
 * was released, or main removed its own under it). A timeout, a deadlock or anything else means
 * the death was not handled: a survivor waited on the dead, or its call failed for nothing.
 */
function explained(code: unknown): void {
  if (code !== undefined) expect(code).toBe('ERR_XPMEM_REMOVED');
}

/** What a survivor's call came to: its error code (or a loop's), undefined on success. Settles, never rejects. */
function settle(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    (value) => (value as { code?: unknown } | undefined)?.code,
    (error: { code?: unknown }) => error.code ?? String(error),
  );
}

interface Scene {
  d: Domain;
  gates: Gates;
  victim: Agent;
  survivor: Agent;
  /** Pick a number below n. */
  pick: (n: number) => number;
}

/**
 * Each scenario sets the victim to work, waits until it is at a random point of that work, and
 * returns the survivors' calls still in flight, each through settle() as soon as it starts
 * (they must settle, typed, after the kill).
 */
type Scenario = (s: Scene) => Promise<Promise<unknown>[]>;

/** The victim loops `body` until it has run a random number of times (at most `most`); it dies inside. */
async function victimWorks(s: Scene, body: Record<string, unknown>, most: number): Promise<void> {
  const progress = s.gates.take();
  void s.victim.send('loop', { body, progress, stop: s.gates.take() }).catch(() => {});
  await s.gates.reached(progress, 1 + s.pick(most));
}

/** A survivor's loop of `body`, until its stop gate opens or it fails (settled). */
function survivorWorks(s: Scene, body: Record<string, unknown>): Promise<unknown> {
  return settle(s.survivor.send('loop', { body, progress: s.gates.take(), stop: s.gates.take() }));
}

/** The victim attaches main's segment and loops `body` (a command on that attachment). */
async function victimLoop(s: Scene, body: Record<string, unknown>, segId: number): Promise<void> {
  const att = await s.victim.call('attach', { access: await s.victim.call('get', { segId }), range: { offset: 0, length: 64 } });
  await victimWorks(s, { ...body, att }, 40);
}

const scenarios: Record<string, Scenario> = {
  /** Attacher killed inside a loop of write sections while main migrates under it. */
  'attacher in sections': async (s) => {
    const seg = s.d.space.make(4096);
    await victimLoop(s, { op: 'increment', index: 0, times: 10 }, seg.id);
    return [
      settle(
        (async () => {
          for (let i = 0; i < 3; i++) await seg.migrate();
        })(),
      ),
      settle(seg.remove()),
    ];
  },
  /** Attacher killed inside its invalidateStart callback (plain, blocking or awaiting). */
  'attacher in a callback': async (s) => {
    const seg = s.d.space.make(4096);
    const att = await s.victim.call('attach', { access: await s.victim.call('get', { segId: seg.id }), range: {} });
    const how = ['plain', 'block', 'async'][s.pick(3)]!;
    await s.victim.call('notifier', { att, how, gate: s.gates.take(), tag: 7 });
    const migrating = settle(seg.migrate());
    await s.victim.until((e) => e.event === 'start', 'the victim is in its callback');
    return [migrating, settle(seg.protect('ro')), settle(seg.remove())];
  },
  /** Owner killed while allocating and freeing in a loop; a survivor attached to its segment keeps writing. */
  'owner allocating': async (s) => {
    const own = await s.victim.call<number>('make', { bytes: 4096 });
    const att = await s.survivor.call('attach', { access: await s.survivor.call('get', { segId: own }), range: { offset: 0, length: 64 } });
    const writes = survivorWorks(s, { op: 'increment', att, index: 1, times: 5 });
    await victimWorks(s, { op: 'makeRemove', bytes: 4096 * (1 + s.pick(16)) }, 40);
    return [writes]; // ends with ERR_XPMEM_REMOVED once the dead owner's segment is released
  },
  /** Owner killed while migrating its segment under a writing attacher. */
  'owner migrating': async (s) => {
    const own = await s.victim.call<number>('make', { bytes: 4096 });
    const att = await s.survivor.call('attach', { access: await s.survivor.call('get', { segId: own }), range: { offset: 0, length: 64 } });
    const writes = survivorWorks(s, { op: 'increment', att, index: 1, times: 5 });
    await victimWorks(s, { op: 'migrate', segId: own }, 40);
    return [writes];
  },
  /** Owner killed while swapping its segment out; the attacher faults it back in each time. */
  'owner swapping': async (s) => {
    const own = await s.victim.call<number>('make', { bytes: KIB64 });
    const att = await s.survivor.call('attach', { access: await s.survivor.call('get', { segId: own }), range: {} });
    const reads = survivorWorks(s, { op: 'sum', att });
    await victimWorks(s, { op: 'swapOut', segId: own }, 20);
    return [reads];
  },
  /** Killed while reclaiming: its allocations under memoryLimit swap out main's segments, which a survivor reads. */
  reclaimer: async (s) => {
    const mains = Array.from({ length: 3 }, () => s.d.space.make(KIB64));
    const atts = await Promise.all(mains.map(async (m) => s.survivor.call('attach', { access: await s.survivor.call('get', { segId: m.id }), range: { offset: 0, length: 64 } })));
    const writes = survivorWorks(s, { op: 'incrementEach', atts, index: 2, rounds: 1 });
    await victimWorks(s, { op: 'makeRemove', bytes: KIB64 }, 20);
    return [
      writes,
      settle(
        (async () => {
          for (const m of mains) await m.remove();
        })(),
      ),
    ];
  },
};

/** Opens every gate, so survivors' loops and blocked callbacks finish. */
function openAll(gates: Gates): void {
  const words = new Int32Array(gates.buffer);
  for (let i = 1; i < words.length; i++) gates.open(i);
}

/**
 * Fault `f`: scenario `name` on a fresh domain, its victim and survivor agent threads, or
 * (`processes`) host processes of a shared domain, the victim's killed with SIGKILL.
 */
async function fault(f: number, name: string, processes: boolean): Promise<void> {
  const shared = sharedName();
  const d = await domain({ memoryLimit: 4 * KIB64 + 8192, arenaBytes: 2 << 20, deadlineMs: 3_000, ...(processes ? { shared, maxArenaBytes: 16 << 20 } : {}) });
  const gates = new Gates(processes);
  const list: Agent[] = [];
  try {
    list.push(...(processes ? await hosts(shared, gates, 2) : await agents(d, gates, 2)));
    const [victim, survivor] = list as [Agent, Agent];
    const scene: Scene = { d, gates, victim, survivor, pick: generator(f) };
    const inFlight = await scenarios[name]!(scene);
    await victim.kill();
    await d.settled();
    openAll(gates); // survivors stop their loops; the victim is gone
    const codes = await Promise.all(inFlight.map((p, i) => bounded(p, `${name} (fault ${f}): survivor call ${i}`)));
    codes.forEach(explained);
    expect(d.check().errors, `${name} (fault ${f})`).toEqual([]);
    await survivor.kill();
    await d.settled();
    await noneInFlight(d);
    expect(d.stats().residentBytes, `${name} (fault ${f}): memory left after every reap (survivors: ${codes.join(', ')})\n${d.formatMaps()}`).toBe(0);
    expect(d.check().errors).toEqual([]);
  } finally {
    openAll(gates);
    await Promise.all(list.map((a) => a.kill()));
    await d.close();
    gates.remove();
  }
}

/** `faults` faults, the scenarios in turn, each of which must survive. */
async function campaign(faults: number, processes: boolean): Promise<void> {
  const names = Object.keys(scenarios);
  const survived: Record<string, number> = {};
  for (let f = 0; f < faults; f++) {
    const name = names[f % names.length]!;
    await fault(f, name, processes);
    survived[name] = (survived[name] ?? 0) + 1;
  }
  expect(Object.values(survived).reduce((a, b) => a + b, 0)).toBe(faults);
}

afterAll(cleanUpProcesses);

describe('fault injection', () => {
  it(`${FAULTS} workers terminated at random points leave no hang, a consistent domain and no leaked memory`, () => campaign(FAULTS, false), FAULTS * BOUND);

  it(`${PROCESS_FAULTS} processes killed (SIGKILL) at random points leave no hang, a consistent domain and no leaked memory`, () => campaign(PROCESS_FAULTS, true), PROCESS_FAULTS * BOUND);
});
