/**
 * Shared domains as users meet them: one domain this process creates (Domain.create({ shared }))
 * and Node processes it forks open (Domain.open), each an attacher process
 * (fixtures/process-attacher.ts, lib/processes.ts) driven over its IPC channel (advanced
 * serialization). Figures:
 *
 * - a read section of a 4 KiB attachment in a process that opened the domain, against the same
 *   section in that process's own thread on a threads-only domain (both timed in that process,
 *   interleaved);
 * - invalidations (await seg.protect()) with 1 attacher process that holds a range notifier and
 *   is parked (idle event loop), 2 ms apart (p50, p90) and back to back, against a process.send
 *   round trip to that process taken the same way in the same run (interleaved), and beside the
 *   floor of a wake-up across processes: a futex wake of a word in the arena that the process
 *   awaits (the addon's async wait), answered the same way;
 * - a parallel sum of SUM_MIB of Float64 in the shared domain over 4 attacher processes, each
 *   attaching its quarter and summing it in place, against sending the quarters by structured
 *   clone over IPC to those 4 processes, which sum them, and against 4 worker threads of a
 *   threads-only domain summing their quarters in place;
 * - death to going on: an await seg.migrate() waiting on a read section that an attacher process
 *   holds, from that process's SIGKILL to the migrate's end (the watchers' period plus the
 *   reap), against the same with an attacher worker thread of a threads-only domain ended by
 *   worker.terminate() (its 'exit' event starts the reap), interleaved, a fresh attacher each;
 * - Domain.open + get + attach of an OPEN_MIB segment, timed inside a freshly forked process,
 *   against Python's multiprocessing.shared_memory attaching a block of that size in a fresh
 *   python3 process, timed inside it (no python3: the 1 ms goal stands in as the baseline), and
 *   the same open again in that process after its close() left the domain (its second open).
 *
 * BENCH_PROCESSES_SUM_MIB and BENCH_PROCESSES_OPEN_MIB change the two sizes (default 256 and
 * 1024). Every process is killed at the end (and at exit), the domain closed: its /dev/shm file
 * goes, and so does Python's block.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { Domain, type Segment } from '../../src/index.js';
import { type Attacher, Attachers, BOUND_MS, type Ready } from '../lib/attachers.js';
import { bounded } from '../lib/bounded.js';
import { flips } from '../lib/flip.js';
import { measure, repeatAsync, TIME_MS, timing, type Task, type Timing } from '../lib/measure.js';
import { attacherProcess } from '../lib/processes.js';
import { arenaWords, futex, ring, ringAnswered } from '../lib/wake.js';
import { STOP } from '../fixtures/protocol.js';
import { atLeast, atMost, bandwidth, ns, p90, row, valueAtMost, type Row } from '../lib/rows.js';
import { spaced } from '../lib/spaced.js';
import type { Suite } from '../lib/suite.js';

const MIB = 2 ** 20;
const SUM_BYTES = Number(process.env.BENCH_PROCESSES_SUM_MIB ?? 256) * MIB;
const OPEN_BYTES = Number(process.env.BENCH_PROCESSES_OPEN_MIB ?? 1024) * MIB;
const PARTS = 4;
/** Samples per spaced figure (as the cold suite takes them); BENCH_TIME_MS scales them. */
const SAMPLES = Math.max(40, Math.round(0.4 * TIME_MS));
const ROUND_TRIPS = 64;
/** Samples of each parallel sum in place, of each cloned one (seconds each), and of each open (a fresh process each). */
const SUM_SAMPLES = 12;
const CLONED_SAMPLES = 4;
const OPEN_SAMPLES = 8;
/** Samples of each death figure (a fresh attacher each). */
const DEATH_SAMPLES = 12;
const PY_BLOCK = `xpmem-bench-py-${process.pid}`;
const RTT = 'process.send round trip to that process (advanced serialization)';
const FLOOR = 'futex wake-up round trip to that process, a word of the arena it awaits with the addon (the floor of a wake-up across processes)';

const run = promisify(execFile);

/** The Python side of the open figure: a block created by one python3, attached in others. */
const PY_CREATE = `
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=int(sys.argv[2]))
print('ready', flush=True)
sys.stdin.read()
shm.close()
shm.unlink()
`;
/**
 * Attaching times only SharedMemory(name=...): shm_open, fstat, mmap and the resource tracker's
 * registration. The tracker is started first, untimed (a helper process each python3 starts on
 * its first SharedMemory), and the block is unregistered after, else that tracker unlinks it
 * when this process exits (Python before 3.13 tracks attached blocks too).
 */
const PY_ATTACH = `
import sys, time
from multiprocessing import resource_tracker, shared_memory
resource_tracker.ensure_running()
t0 = time.perf_counter()
shm = shared_memory.SharedMemory(name=sys.argv[1])
ms = (time.perf_counter() - t0) * 1e3
resource_tracker.unregister(shm._name, 'shared_memory')
shm.close()
print(ms)
`;

/** A segment of `bytes` holding Float64 0, 1, 2, ... */
function numbers(domain: Domain, bytes: number): Segment {
  const seg = domain.space.make(bytes);
  const att = domain.space.get(seg.id, 'rw').attach();
  att.write(Float64Array, (v) => {
    for (let i = 0; i < v.length; i++) v[i] = i;
  });
  att.detach();
  return seg;
}

/** The sum of 0 .. n-1 (exact below 2^53). */
const expected = (bytes: number): number => ((bytes / 8) * (bytes / 8 - 1)) / 2;

/** A task: one parallel sum per sample, each attacher given its part by `part`; checks the total. */
function parallelSum(name: string, crew: readonly Attacher[], part: (a: Attacher, k: number) => Promise<unknown>): Task {
  return {
    name,
    batch: 1,
    async: true,
    run: async () => {
      const sum = (await Promise.all(crew.map(part))).reduce((a: number, b) => a + (b as number), 0);
      if (sum !== expected(SUM_BYTES)) throw new Error(`${name}: sum ${sum}, expected ${expected(SUM_BYTES)}`);
    },
  };
}

/** Part k of PARTS of a segment, summed in place by the attacher. */
function inPlace(seg: Segment): (a: Attacher, k: number) => Promise<unknown> {
  const length = SUM_BYTES / PARTS;
  return (a, k) => a.call('sum', { segId: seg.id, offset: k * length, length });
}

/**
 * Times a fresh attacher process's open + get + attach of `segId` (what it reports), then lets it
 * leave; keeps the part of each that loading the addon took (ns) in `addon`, and the time of its
 * second open + get + attach, after a close (ns), in `reopen`.
 */
function opens(name: string, segId: number, addon: number[], reopen: number[]): Task {
  return {
    name: 'open',
    batch: 1,
    async: true,
    run: async () => {
      const a = attacherProcess(name, { open: segId });
      try {
        const { openMs, addonMs, reopenMs } = (await a.ready) as Ready & { openMs: number; addonMs: number; reopenMs: number };
        addon.push(addonMs * 1e6);
        reopen.push(reopenMs * 1e6);
        await a.call('leave');
        return { overriddenDuration: openMs };
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * One death: a fresh attacher from `attacher` attaches `seg` and holds a read section of it; a
 * migrate of `seg` starts, waiting on that section, and the attacher is ended (SIGKILL, or
 * worker.terminate()). Times the end to the migrate's end.
 */
function death(name: string, seg: Segment, attacher: () => Attacher): Task {
  return {
    name,
    batch: 1,
    async: true,
    run: async () => {
      const a = attacher();
      await a.ready;
      await a.call('attach', { segId: seg.id });
      await a.call('hold');
      const migrating = seg.migrate();
      const t0 = performance.now();
      const ended = a.end();
      await migrating;
      const ms = performance.now() - t0;
      await ended;
      return { overriddenDuration: ms };
    },
  };
}

/** Python's attach of block `name` in a fresh python3, as it times it. */
function pythonAttaches(name: string): Task {
  return {
    name: 'python',
    batch: 1,
    async: true,
    run: async () => {
      const { stdout } = await run('python3', ['-c', PY_ATTACH, name], { timeout: BOUND_MS });
      return { overriddenDuration: Number(stdout) };
    },
  };
}

/** A python3 holding a block of `bytes` named `name` until stop() (its stdin closes: it unlinks the block). */
async function pythonBlock(name: string, bytes: number): Promise<{ stop: () => Promise<void> }> {
  const py = spawn('python3', ['-c', PY_CREATE, name, String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(py, 'exit');
  const stop = async (): Promise<void> => {
    py.stdin.end();
    await bounded(exited, 'python3 exit', BOUND_MS).finally(() => rmSync(`/dev/shm/${name}`, { force: true }));
  };
  try {
    await bounded(once(py.stdout, 'data'), 'python3 creating its block', BOUND_MS);
  } catch (error) {
    py.kill('SIGKILL');
    await stop();
    throw error;
  }
  return { stop };
}

/** Open + attach here and in Python, interleaved (without python3, the open alone), the addon's part of the open, and the open again after a close. */
async function openFigures(name: string, segId: number): Promise<{ open: Timing; addon: Timing; reopen: Timing; python?: Timing }> {
  const addon: number[] = [];
  const reopen: number[] = [];
  const python = spawnSync('python3', ['--version']).error === undefined;
  const block = python ? await pythonBlock(PY_BLOCK, OPEN_BYTES) : undefined;
  try {
    const t = await measure([opens(name, segId, addon, reopen), ...(python ? [pythonAttaches(PY_BLOCK)] : [])], { samples: OPEN_SAMPLES, warmups: 0 });
    return { open: t.get('open')!, addon: timing('addon', addon), reopen: timing('reopen', reopen), ...(python ? { python: t.get('python')! } : {}) };
  } finally {
    await block?.stop();
  }
}

/**
 * Invalidations of `seg` (whose one attacher is `first`, parked) against round trips to it, 2 ms
 * apart and back to back, beside futex wake-up round trips to it over `words` (it echoes them).
 */
async function invalidations(seg: Segment, first: Attacher, words: Int32Array): Promise<{ apart: Map<string, Timing>; backToBack: Map<string, Timing> }> {
  let ro = false;
  const flip = (): Promise<void> => seg.protect((ro = !ro) ? 'ro' : 'rw');
  const ping = (): Promise<void> => first.ping();
  const wake = (): Promise<void> => ringAnswered(words, futex);
  Atomics.store(words, STOP, 0);
  await first.call('echo');
  try {
    const apart = await measure([spaced('inv', 2, flip), spaced('rtt', 2, ping), spaced('wake', 2, wake)], { samples: SAMPLES });
    const backToBack = await measure([flips('inv', seg, ROUND_TRIPS), repeatAsync('rtt', ROUND_TRIPS, ping), repeatAsync('wake', ROUND_TRIPS, wake)]);
    return { apart, backToBack };
  } finally {
    Atomics.store(words, STOP, 1);
    ring(words, futex, 0);
  }
}

/**
 * The parallel sums: in place by the processes of `crew` (segment `seg`) and by the worker threads
 * of `workers` (segment `local`), interleaved; then in place by `crew` again beside `quarters`
 * (the same numbers) cloned to it (each of those sums takes seconds: fewer samples, no warm-up).
 */
async function sums(
  crew: readonly Attacher[],
  seg: Segment,
  quarters: readonly Float64Array[],
  workers: readonly Attacher[],
  local: Segment,
): Promise<{ inPlace: Map<string, Timing>; cloned: Map<string, Timing> }> {
  const inPlaceSums = await measure([parallelSum('processes', crew, inPlace(seg)), parallelSum('workers', workers, inPlace(local))], { samples: SUM_SAMPLES });
  const cloned = await measure([parallelSum('processes', crew, inPlace(seg)), parallelSum('cloned', crew, (a, k) => a.call('total', { values: quarters[k]! }))], {
    samples: CLONED_SAMPLES,
    warmups: 0, // both tasks ran already (the processes' sum just above; a clone goes to fresh memory each time)
  });
  return { inPlace: inPlaceSums, cloned };
}

/** The PARTS quarters of segment `seg`'s numbers, as copies of this thread's own. */
function copies(domain: Domain, seg: Segment): Float64Array[] {
  const att = domain.space.get(seg.id, 'ro').attach();
  try {
    return att.read(Float64Array, (v) => Array.from({ length: PARTS }, (_, k) => v.slice((k * v.length) / PARTS, ((k + 1) * v.length) / PARTS)));
  } finally {
    att.detach();
  }
}

/** The p50 and p90 rows of the invalidations 2 ms apart, and of the wake-up floor, against the round trips taken the same way. */
function apartRows(apart: Map<string, Timing>): Row[] {
  const what = 'invalidation 2 ms apart, 1 attacher process with a range notifier, parked (idle event loop): await seg.protect()';
  const [inv, rtt, wake] = [apart.get('inv')!, apart.get('rtt')!, apart.get('wake')!];
  return [
    row('processes', `${what}, p50`, ns(inv), `${RTT}, 2 ms apart, p50`, ns(rtt), atMost(1)),
    row('processes', `${what}, p90`, p90(inv), `${RTT}, 2 ms apart, p90`, p90(rtt)),
    row('processes', `${FLOOR}, 2 ms apart, p50`, ns(wake), `${RTT}, 2 ms apart, p50`, ns(rtt)),
    row('processes', `${FLOOR}, 2 ms apart, p90`, p90(wake), `${RTT}, 2 ms apart, p90`, p90(rtt)),
  ];
}

/** The p50 and p90 rows of the deaths, each against the same with an attacher worker thread; the goal (about 100 ms) on the p90. */
function deathRows(deaths: Map<string, Timing>): Row[] {
  const what = 'death to going on: await seg.migrate() waiting on a read section of an attacher process, from its SIGKILL to the end of the migrate';
  const thread = 'the same with an attacher worker thread of a threads-only domain ended by worker.terminate()';
  const [killed, terminated] = [deaths.get('process')!, deaths.get('thread')!];
  return [
    row('processes', `${what}, p50`, ns(killed), `${thread}, p50`, ns(terminated)),
    row('processes', `${what}, p90`, p90(killed), `${thread}, p90`, p90(terminated), valueAtMost(100e6, '<= 100 ms')),
  ];
}

export const processes: Suite = {
  name: 'processes',
  title: 'shared domains across processes: a joined section, invalidations, a 4-process sum, a death, open + attach',
  boundMs: 180_000,
  async run() {
    const name = `bench-${process.pid}`;
    const arenaBytes = SUM_BYTES + OPEN_BYTES + MIB;
    const domain = await Domain.create({ shared: name, arenaBytes, maxArenaBytes: arenaBytes });
    const threads = await Domain.create({ arenaBytes: SUM_BYTES + MIB, maxArenaBytes: SUM_BYTES + MIB });
    const workers = new Attachers(threads);
    const wordsSeg = domain.space.make(4096);
    const crew: Attacher[] = [attacherProcess(name, { words: wordsSeg.id })];
    try {
      const first = crew[0]!;
      await first.ready;
      const small = domain.space.make(4096);
      const sections = (await first.call('sections', { segId: small.id })) as Record<'joined' | 'own', Timing>;
      await first.call('attach', { segId: small.id, notifier: true });
      const { apart, backToBack } = await invalidations(small, first, arenaWords(domain, wordsSeg.id));

      crew.push(...Array.from({ length: PARTS - 1 }, () => attacherProcess(name)));
      await Promise.all(crew.map((a) => a.ready));
      await workers.spawn(PARTS);
      const seg = numbers(domain, SUM_BYTES);
      const summed = await sums(crew, seg, copies(domain, seg), workers.list, numbers(threads, SUM_BYTES));

      const open = await openFigures(name, domain.space.make(OPEN_BYTES).id);
      const deaths = await measure([death('process', domain.space.make(4096), () => attacherProcess(name)), death('thread', threads.space.make(4096), () => workers.one())], {
        samples: DEATH_SAMPLES,
        warmups: 0,
      });

      const gbs = (t: Map<string, Timing>, task: string) => bandwidth(t.get(task)!, SUM_BYTES);
      const openFigure = `Domain.open + get + attach of a ${OPEN_BYTES / MIB} MiB segment, timed inside the joining process (fresh, forked; addon load included)`;
      const py = `Python multiprocessing.shared_memory.SharedMemory(name=...) of a ${OPEN_BYTES / MIB} MiB block, timed inside a fresh python3`;
      return {
        rows: [
          row(
            'processes',
            'section in a joined process: att.read(fn) of a 4 KiB attachment of the shared domain, in a process that Domain.open()ed it',
            ns(sections.joined),
            "the same section on a threads-only domain in that process's own thread (both timed there, interleaved)",
            ns(sections.own),
            atMost(1.1),
          ),
          ...apartRows(apart),
          row(
            'processes',
            'invalidation back to back, 1 attacher process with a range notifier, idle between them: await seg.protect()',
            ns(backToBack.get('inv')!),
            `${RTT}, back to back`,
            ns(backToBack.get('rtt')!),
            atMost(0.2),
          ),
          row('processes', `${FLOOR}, back to back`, ns(backToBack.get('wake')!), `${RTT}, back to back`, ns(backToBack.get('rtt')!)),
          row(
            'processes',
            `parallel sum of ${SUM_BYTES / MIB} MiB over ${PARTS} processes that opened the domain, each attaching its quarter and summing it in place (beside the cloned sums, ${CLONED_SAMPLES} samples each)`,
            gbs(summed.cloned, 'processes'),
            `the quarters sent by structured clone over IPC (process.send, advanced serialization) to the same ${PARTS} processes, which sum them`,
            gbs(summed.cloned, 'cloned'),
            atLeast(5, '>= 5x faster'),
          ),
          row(
            'processes',
            `parallel sum of ${SUM_BYTES / MIB} MiB over ${PARTS} processes that opened the domain, each its quarter in place (beside the worker threads)`,
            gbs(summed.inPlace, 'processes'),
            `the same sum over ${PARTS} worker threads of a threads-only domain, each its quarter in place`,
            gbs(summed.inPlace, 'workers'),
            atLeast(0.9),
          ),
          ...deathRows(deaths),
          open.python === undefined
            ? row('processes', openFigure, ns(open.open), '1 ms, the goal (python3 missing: its baseline skipped)', { value: 1e6, unit: 'ns/op', rme: 0 }, valueAtMost(1e6, '<= 1 ms'))
            : row('processes', openFigure, ns(open.open), py, ns(open.python), valueAtMost(1e6, '<= 1 ms')),
          row('processes', 'of which loading the native addon (finding its file, dlopen), in the first Domain.open of a process', ns(open.addon), 'the open + get + attach above', ns(open.open)),
          row(
            'processes',
            `Domain.open + get + attach of the ${OPEN_BYTES / MIB} MiB segment again in that process, after its close() (its second open: the addon loaded, the code run once)`,
            ns(open.reopen),
            open.python === undefined ? 'the first open + get + attach above' : py,
            open.python === undefined ? ns(open.open) : ns(open.python),
          ),
        ],
        curves: [],
      };
    } finally {
      await bounded(Promise.all(crew.map((a) => a.end())), 'attacher processes exit', BOUND_MS);
      await workers.retire();
      await bounded(domain.settled(), 'reaping attacher processes', BOUND_MS);
      await Promise.all([domain.close(), threads.close()]);
    }
  },
};
