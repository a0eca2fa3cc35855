/**
 * Traces (domain.trace(), XPMEM_TRACE) of real runs with workers, checked as a trace viewer
 * reads them: well-formed events, a named track per thread, spans that nest on each track, and
 * flows from each operation to the callbacks it caused in other threads. And xpmem:slow: what
 * an operation that waits past slowMs says about the spaces it waits for.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Domain, Segment, SlowMessage, Trace, TraceEvent } from '../src/index.js';
import { type Agent, agents, bounded, domain, Gates, noneInFlight, teardown, until } from './helpers.js';

const KIB64 = 64 * 1024;
const TRACE_RUN = new URL('../dist/test/fixtures/trace-run.js', import.meta.url);
const OPERATIONS = new Set(['remove', 'release', 'migrate', 'resize', 'protect', 'swapOut', 'swapIn', 'compact', 'reclaim', 'fault']);
const CALLBACKS = new Set(['invalidateStart', 'invalidateEnd', 'release', 'referenced']);

type Complete = TraceEvent & { readonly dur: number };

const track = (e: TraceEvent): string => `${e.pid}:${e.tid}`;
const inside = (ts: number, span: Complete): boolean => span.ts <= ts && ts <= span.ts + span.dur;

/** The innermost complete span of track `key` enclosing `ts`, among `spans`. */
function enclosing(spans: readonly Complete[], key: string, ts: number): Complete | undefined {
  return spans.filter((s) => track(s) === key && inside(ts, s)).sort((a, b) => a.dur - b.dur)[0];
}

/**
 * Checks `trace` as a viewer reads it and returns its complete spans and flows: every event well
 * formed, every track named, spans nested on each track, async spans paired, and each flow from
 * a span of an operation to a span of a callback in another thread, no earlier than it; a start's
 * callback lies inside its operation's time. Throws on the first violation.
 */
function validate(trace: Trace, { flows: checkFlows } = { flows: true }): { spans: Complete[]; flows: { from: Complete; to: Complete; name: string }[] } {
  const events = trace.traceEvents;
  for (const e of events) {
    expect(['X', 'b', 'e', 's', 'f', 'i', 'M']).toContain(e.ph);
    expect(typeof e.name).toBe('string');
    expect(Number.isFinite(e.ts)).toBe(true);
    expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    if (e.ph === 'X') expect(e.dur).toBeGreaterThanOrEqual(0);
  }
  const named = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map(track));
  const processes = new Set(events.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => e.pid));
  for (const e of events.filter((e) => e.ph !== 'M')) {
    expect(named, `track ${track(e)} is named`).toContain(track(e));
    expect(processes, `process ${e.pid} is named`).toContain(e.pid);
  }
  const spans = events.filter((e): e is Complete => e.ph === 'X');
  for (const key of new Set(spans.map(track))) {
    const open: Complete[] = [];
    for (const s of spans.filter((s) => track(s) === key).sort((a, b) => a.ts - b.ts || b.dur - a.dur)) {
      while (open.length > 0 && open.at(-1)!.ts + open.at(-1)!.dur <= s.ts) open.pop();
      const parent = open.at(-1);
      if (parent !== undefined) expect(s.ts + s.dur, `${s.name} nests in ${parent.name} on ${key}`).toBeLessThanOrEqual(parent.ts + parent.dur);
      open.push(s);
    }
  }
  const begun = new Map(events.filter((e) => e.ph === 'b').map((e) => [`${e.pid}:${e.id}`, e]));
  for (const e of events.filter((e) => e.ph === 'e')) {
    const b = begun.get(`${e.pid}:${e.id}`);
    expect(b?.name).toBe(e.name);
    expect(e.ts).toBeGreaterThanOrEqual(b!.ts);
    begun.delete(`${e.pid}:${e.id}`);
  }
  expect([...begun.keys()]).toEqual([]);
  if (!checkFlows) return { spans, flows: [] };
  const starts = new Map(events.filter((e) => e.ph === 's').map((e) => [e.id, e]));
  const flows = events
    .filter((e) => e.ph === 'f')
    .map((f) => {
      const s = starts.get(f.id);
      expect(s, `flow ${f.id} starts`).toBeDefined();
      starts.delete(f.id);
      const op = spans.filter((x) => track(x) === track(s!) && inside(s!.ts, x) && OPERATIONS.has(x.name))[0];
      const to = enclosing(spans, track(f), f.ts);
      expect(op, `flow ${f.id} leaves an operation`).toBeDefined();
      expect(CALLBACKS.has(to?.name ?? ''), `flow ${f.id} reaches a callback`).toBe(true);
      expect(track(to!), `flow ${f.id} reaches another thread`).not.toBe(track(op!));
      expect(f.ts).toBeGreaterThanOrEqual(s!.ts);
      if (to!.name === 'invalidateStart') expect(to!.ts >= op!.ts && to!.ts + to!.dur <= op!.ts + op!.dur, `${f.id}: the start lies inside its operation`).toBe(true);
      return { from: op!, to: to!, name: f.name };
    });
  expect([...starts.keys()], 'every flow ends').toEqual([]);
  return { spans, flows };
}

/** Runs the built trace-run fixture with XPMEM_TRACE=`file`, ending as `how` says; resolves with its exit code and output. */
function traceRun(file: string, how: 'close' | 'end' | 'exit'): Promise<{ code: number; out: string }> {
  let out = '';
  return bounded(
    new Promise((resolve) => {
      const child = spawn(process.execPath, [TRACE_RUN.pathname, how], { env: { ...process.env, XPMEM_TRACE: file }, stdio: ['ignore', 'pipe', 'inherit'] });
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      child.once('close', (code) => resolve({ code: code ?? -1, out }));
    }),
    `trace-run ${how}`,
  );
}

/** Resolves with the next `xpmem:slow` message that `pick` accepts, after `then` ran on it (in the publishing call). */
function nextSlow(pick: (m: SlowMessage) => boolean, then: (m: SlowMessage) => void = () => {}): Promise<SlowMessage> {
  return bounded(
    new Promise((resolve) => {
      const on = (m: unknown): void => {
        if (!pick(m as SlowMessage)) return;
        unsubscribe('xpmem:slow', on);
        then(m as SlowMessage);
        resolve(m as SlowMessage);
      };
      subscribe('xpmem:slow', on);
    }),
    'an xpmem:slow message',
  );
}

describe('trace', () => {
  it('a trace of a run with workers: named tracks, nested spans, a flow from each operation to every callback it caused', async () => {
    const d = await domain();
    const gates = new Gates();
    const crew = await agents(d, gates, 3);
    const seg = d.space.make(4096);
    const [plain, settling, leaving] = crew as [(typeof crew)[0], (typeof crew)[0], (typeof crew)[0]];
    for (const [agent, how] of [
      [plain, { how: 'plain' }],
      [settling, { how: 'plain', endHow: 'slow', endGate: 1 }],
      [leaving, { how: 'plain' }],
    ] as const) {
      const att = await agent.call('attach', { access: await agent.call('get', { segId: seg.id }) });
      await agent.call('notifier', { att, tag: 1, ...how });
    }
    const tracing = d.trace();
    await seg.migrate();
    seg.migrateSync();
    await seg.protect('ro');
    await Promise.all(crew.map((a) => a.until(() => a.count('end') === 3, 'three ends')));
    await until(() => gates.log.filter((code) => code === 16).length === 9, 'every end settled (the slow ones 1 ms later)'); // tag 1, code 6: end-done
    await leaving.call('space'); // its last end acked
    const left = leaving.worker.threadId;
    void leaving.send('exit');
    await leaving.exited;
    const trace = await tracing.stop();
    const { spans, flows } = validate(JSON.parse(JSON.stringify(trace)) as Trace);

    const ops = spans.filter((s) => OPERATIONS.has(s.name));
    expect(ops.map((s) => s.name)).toEqual(['migrate', 'migrate', 'protect']);
    for (const op of ops) {
      expect(op.tid).toBe(0);
      expect(op.args).toMatchObject({ segId: seg.id, bytes: 4096, event: op.name, targets: expect.any(Array) });
      expect((op.args!.targets as unknown[]).length).toBe(3);
      const phases = spans.filter((s) => s.tid === 0 && s.ts >= op.ts && s.ts + s.dur <= op.ts + op.dur && s !== op).map((s) => s.name);
      expect(phases).toEqual(expect.arrayContaining(['hold-off', 'waiting for starts', 'change']));
    }
    for (const agent of crew) {
      const tid = agent === leaving ? left : agent.worker.threadId;
      expect(trace.traceEvents).toContainEqual(expect.objectContaining({ ph: 'M', name: 'thread_name', tid, args: { name: `worker ${tid}` } }));
      const mine = flows.filter((f) => f.to.tid === tid);
      expect(mine.map((f) => f.name).sort()).toEqual([...Array(3).fill('invalidateEnd'), ...Array(3).fill('invalidateStart')]);
      for (const f of mine) expect(f.to.args).toMatchObject({ segId: seg.id, event: f.from.name, blockable: expect.any(Boolean) });
    }
    expect(trace.traceEvents.filter((e) => e.ph === 'b' && e.tid === settling.worker.threadId).map((e) => e.name)).toEqual(Array(3).fill('invalidateEnd'));
    expect(trace.traceEvents).toContainEqual(expect.objectContaining({ ph: 'M', name: 'thread_name', tid: 0, args: { name: 'main' } }));
    expect(trace.traceEvents).toContainEqual(expect.objectContaining({ ph: 'M', name: 'process_name', pid: process.pid }));
    await teardown(d, [plain, settling]);
  });

  it('operations that overlap in one thread stay nested on its track: the one ending under another is an async span', async () => {
    const d = await domain();
    const gates = new Gates();
    const [agent] = await agents(d, gates, 1);
    const [first, second] = [d.space.make(64), d.space.make(64)];
    const gate = { [first.id]: gates.take(), [second.id]: gates.take() };
    for (const seg of [first, second]) {
      const att = await agent!.call('attach', { access: await agent!.call('get', { segId: seg.id }) });
      await agent!.call('notifier', { att, how: 'async', gate: gate[seg.id], tag: 1 });
    }
    const tracing = d.trace();
    const early = first.migrate(); // waits for its start: the second begins inside it
    const late = second.migrate();
    await agent!.until((e) => e.event === 'start' && e.segId === second.id, 'the second start');
    gates.open(gate[first.id]!);
    await early; // ends while the second still waits for its start
    gates.open(gate[second.id]!);
    await late;
    const trace = await tracing.stop();
    const { spans } = validate(trace, { flows: false });
    const apart = trace.traceEvents.filter((e) => e.ph === 'b' && e.name === 'migrate');
    expect([...spans.filter((s) => s.name === 'migrate'), ...apart].map((e) => e.args!.segId)).toEqual([second.id, first.id]);
    await teardown(d, [agent!]);
  });

  it('a reap and a reclaim in a trace: the release a reaper runs reaches a release callback, and the reclaim clock asks in a referenced span', async () => {
    const d = await domain({ memoryLimit: 3 * KIB64 + 4096 });
    const [owner, watcher] = (await agents(d, new Gates(), 2)) as [Agent, Agent];
    const tracing = d.trace();
    const owned = await owner.call<number>('make', { bytes: 64 });
    const released = await watcher.call('attach', { access: await watcher.call('get', { segId: owned }) });
    await watcher.call('notifier', { att: released, how: 'plain', tag: 1, release: true });
    const [, aged] = [d.space.make(KIB64), d.space.make(KIB64), d.space.make(KIB64)];
    const asked = await watcher.call('attach', { access: await watcher.call('get', { segId: aged!.id, mode: 'ro' }), range: {} });
    await watcher.call('notifier', { att: asked, how: 'plain', tag: 2, referenced: false });
    d.space.make(KIB64); // reclaims: the clock asks the watcher about `aged` and swaps out a victim
    await watcher.until((e) => e.event === 'referenced', 'referenced() asked');
    await owner.worker.terminate();
    await d.settled(); // the reaper removed the dead owner's segment: 'release'
    await noneInFlight(d); // every target ran what the operations caused
    const trace = await tracing.stop();
    const { spans, flows } = validate(trace);
    expect(spans.filter((s) => s.tid === 0 && OPERATIONS.has(s.name)).map((s) => s.name)).toEqual(expect.arrayContaining(['reclaim', 'release']));
    const mine = (s: Complete): boolean => s.tid === watcher.worker.threadId;
    expect(spans.filter(mine).map((s) => s.name)).toEqual(expect.arrayContaining(['referenced', 'release']));
    expect(flows).toContainEqual(
      expect.objectContaining({
        from: expect.objectContaining({ name: 'release', args: expect.objectContaining({ segId: owned }) }),
        to: expect.objectContaining({ name: 'release', tid: watcher.worker.threadId }),
      }),
    );
    await teardown(d, [watcher]);
  });

  it('XPMEM_TRACE writes the trace of a whole run when the domain closes or the process ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-trace-'));
    try {
      for (const how of ['close', 'end', 'exit'] as const) {
        const file = join(dir, `${how}.json`);
        expect(await traceRun(file, how)).toEqual({ code: 0, out: how === 'close' ? 'written at close\n' : '' });
        const trace = JSON.parse(readFileSync(file, 'utf8')) as Trace;
        const { spans, flows } = validate(trace, { flows: how !== 'exit' }); // at exit, the flows' ends are in the worker
        expect(spans.filter((s) => s.name === 'migrate')).toHaveLength(3);
        if (how === 'exit') {
          // The worker still runs: nothing could ask it for its events, and the trace says so.
          expect(trace.traceEvents).toContainEqual(expect.objectContaining({ ph: 'i', name: 'events lost', args: expect.objectContaining({ why: 'the process exited first' }) }));
          continue;
        }
        expect(trace.traceEvents).toContainEqual(expect.objectContaining({ ph: 'M', name: 'thread_name', args: { name: 'cache' } }));
        expect(flows.filter((f) => f.name === 'invalidateStart')).toHaveLength(3);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second trace of a domain while one records is ERR_XPMEM_BUSY; a trace holds only what ran while it recorded, and says when a buffer filled', async () => {
    const d = await domain();
    const seg = d.space.make(64);
    await seg.migrate();
    const tracing = d.trace();
    expect(() => d.trace()).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_BUSY' }));
    await seg.migrate();
    const trace = await tracing.stop();
    expect(trace.traceEvents.filter((e) => e.ph === 'X' && e.name === 'migrate')).toHaveLength(1);
    const again = d.trace({ maxEvents: 2 });
    await seg.migrate();
    expect((await again.stop()).traceEvents).toContainEqual(expect.objectContaining({ ph: 'i', name: 'trace buffer full', args: { dropped: expect.any(Number) } }));
    await d.close();
  });
});

/** A domain reporting operations slow after `slowMs`, an agent that attached a segment of `bytes` of the main thread, and a gate. */
async function oneAttacher(slowMs: number, bytes: number): Promise<{ d: Domain; gates: Gates; agent: Agent; seg: Segment; att: unknown; gate: number }> {
  const d = await domain({ slowMs });
  const gates = new Gates();
  const [agent] = await agents(d, gates, 1);
  const seg = d.space.make(bytes);
  const att = await agent!.call('attach', { access: await agent!.call('get', { segId: seg.id }) });
  return { d, gates, agent: agent!, seg, att, gate: gates.take() };
}

describe('xpmem:slow', () => {
  it('reports an operation waiting past slowMs while its target still runs a blocking invalidateStart', async () => {
    const { d, gates, agent, seg, att, gate } = await oneAttacher(200, 4096);
    await agent.call('notifier', { att, how: 'block', gate, tag: 1 });
    const space = await agent.call<number>('space');
    const slow = nextSlow((m) => m.segId === seg.id);
    const migrated = seg.migrate();
    const m = await slow;
    expect(m).toMatchObject({
      operation: 'migrate',
      segId: seg.id,
      event: 'migrate',
      waitingFor: 'invalidateStart',
      spaces: [{ space, threadId: agent.worker.threadId, callback: { name: 'invalidateStart', segId: seg.id, ms: expect.any(Number) } }],
    });
    expect(m.waitedMs).toBeGreaterThanOrEqual(200);
    expect(m.spaces[0]!.doing).toMatch(new RegExp(`^invalidateStart of segment ${seg.id} for \\d`));
    gates.open(gate); // the callback returns only now
    await migrated;
    await teardown(d, [agent]);
  });

  it('reports a blocking drain with the space that holds the section', async () => {
    const { d, gates, agent: holder, seg, att, gate } = await oneAttacher(50, 64);
    const held = holder.send('hold', { att, gate, tag: 1 });
    await holder.until((e) => e.event === 'holding');
    const slow = nextSlow(
      (m) => m.waitingFor === 'drain',
      () => gates.open(gate), // this thread blocks in migrateSync: the report itself lets the section go
    );
    seg.migrateSync();
    const m = await slow;
    expect(m).toMatchObject({ operation: 'migrate', segId: seg.id, spaces: [{ space: await holder.call<number>('space'), threadId: holder.worker.threadId }] });
    expect(m.spaces[0]!.doing).toMatch(/^holds a section on the segment/);
    await held;
    await teardown(d, [holder]);
  });
});
