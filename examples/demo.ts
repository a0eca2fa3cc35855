/**
 * The demo: an exporter and two attachers in real workers. The exporter makes a segment; the
 * attachers attach it and keep writing while the exporter migrates it, makes it read-only and
 * finally removes it, each time waiting for the attachers' sleeping invalidateStart callbacks.
 * Run with `npm run demo`.
 */
import type { Worker } from 'node:worker_threads';
import { Domain } from '../src/index.js';
import { narrator, now } from './narrate.js';

const SLEEP_MS = 150;
const t0 = now();
const say = narrator('demo', t0);

/** Prints the lines a worker narrates and resolves messages carrying `key`. */
function listen(worker: Worker): <T>(key: string) => Promise<T> {
  const waiting = new Map<string, (value: unknown) => void>();
  worker.on('message', (m: Record<string, unknown>) => {
    if (typeof m.line === 'string') console.log(m.line);
    for (const [key, resolve] of waiting)
      if (key in m) {
        waiting.delete(key);
        resolve(m[key]);
      }
  });
  worker.on('error', (error) => {
    console.error(error);
    process.exitCode = 1;
  });
  return <T>(key: string) => new Promise<T>((resolve) => waiting.set(key, resolve as (value: unknown) => void));
}

const domain = await Domain.create({ arenaBytes: 32 << 20 });
say('created a domain: a control block and a 32 MiB arena every joined thread can see');
say('a SharedArrayBuffer cannot be taken back from a worker once shared; a segment of this arena can');

const exporter = domain.spawn(new URL('./export.js', import.meta.url), { workerData: { t0, bytes: 8 << 20 } });
const fromExporter = listen(exporter);
const segId = await fromExporter<number>('segId');

const attachers = [0, 1].map((index) => domain.spawn(new URL('./attach.js', import.meta.url), { workerData: { t0, segId, index, sleepMs: SLEEP_MS } }));
const exited = Promise.all(attachers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
await Promise.all(attachers.map((w) => listen(w)('ready')));
say(`both attachers are writing in sections; their invalidateStart sleeps ${SLEEP_MS} ms (one blocks its thread, one awaits)`);
for (const row of domain.maps()) say(`  map: space ${row.space} ${row.kind.padEnd(10)} segment ${row.segId} offset ${row.offset} length ${row.length} ${row.mode}`);

for (const [step, story] of [
  ['migrate', 'the exporter moves the segment to another place in the arena, under the attachers'],
  ['protect', 'the exporter makes the segment read-only for everyone'],
  ['remove', 'the exporter revokes the segment: every attachment loses it'],
] as const) {
  say(`--- ${step}: ${story}`);
  exporter.postMessage(step);
  await fromExporter('done');
  const row = domain.maps().find((r) => r.kind === 'segment' && r.segId === segId);
  say(row === undefined ? 'the segment is gone from the maps' : `the segment now lies at arena offset ${row.offset}, protection ${row.mode}`);
}

await exited;
say('the attachers exited; terminating the exporter, whose space the domain reaps');
await exporter.terminate();
await domain.settled();
const stats = domain.stats();
say(`domain.check(): ${domain.check().ok ? 'consistent' : 'BROKEN'}; ${stats.segments} segments left, ${stats.freeBytes >> 20} of ${stats.arenaBytes >> 20} MiB free again`);
await domain.close();
