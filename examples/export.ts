/**
 * The exporter (XPMEM's sample "export" program): makes a segment, writes a pattern into it and
 * announces its id; then, told by the demo, migrates, protects and finally removes it while
 * attachers in other workers hold attachments with sleeping notifiers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinFromWorkerData } from '../src/worker.js';
import { narrator, now } from './narrate.js';

const { t0, bytes } = workerData as { t0: number; bytes: number };
const say = narrator('exporter', t0);
const space = joinFromWorkerData();

const seg = space.make(bytes, { permit: 'rw', name: 'pattern' });
const mine = space.get(seg.id, 'rw').attach();
mine.write((v) => {
  for (let i = 8; i < v.length; i++) v[i] = (i * 7) & 0xff;
});
say(`made segment ${seg.id}: ${bytes >> 20} MiB, permit rw, bytes 0-7 hold the attachers' write counts, the rest the pattern (i * 7) & 0xff`);
parentPort!.postMessage({ segId: seg.id });

/** Runs one VM operation and narrates how long the owner waited for the attachers. */
async function timed(what: string, op: () => Promise<void>): Promise<void> {
  say(`${what}: starting (attachers' invalidateStart runs first)`);
  const t = now();
  await op();
  say(`${what}: done in ${(now() - t).toFixed(1)} ms (the owner waited for every sleeping callback)`);
}

const steps: Record<string, () => Promise<void>> = {
  migrate: async () => {
    await timed('migrate', () => seg.migrate());
    const counts = mine.read(Int32Array, (v) => [v[0], v[1]]);
    const intact = mine.read((v) => {
      for (let i = 8; i < v.length; i++) if (v[i] !== ((i * 7) & 0xff)) return false;
      return true;
    });
    say(`after migrate: pattern ${intact ? 'intact' : 'BROKEN'} at the new address; attachers' write counts so far: ${counts.join(', ')}`);
  },
  protect: () => timed('protect ro', () => seg.protect('ro')),
  remove: () => timed('remove', () => seg.remove()),
};

parentPort!.on('message', (step: string) => {
  void steps[step]!().then(() => parentPort!.postMessage({ done: step }));
});
