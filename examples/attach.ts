/**
 * An attacher (XPMEM's sample "attach" program): gets a permit on the exporter's segment,
 * attaches it, verifies the pattern, registers a notifier whose invalidateStart sleeps, then
 * reads and writes in sections until the segment is removed under it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinFromWorkerData, XpmemError } from '../src/worker.js';
import { narrator, sleepBlocking } from './narrate.js';

const { t0, segId, index, sleepMs } = workerData as { t0: number; segId: number; index: number; sleepMs: number };
const say = narrator(`attacher${index}`, t0);
const space = joinFromWorkerData();

const att = space.get(segId, 'rw').attach();
const intact = att.read((v) => {
  for (let i = 8; i < v.length; i++) if (v[i] !== ((i * 7) & 0xff)) return false;
  return true;
});
say(`got a rw permit, attached ${att.length >> 20} MiB; pattern ${intact ? 'verified' : 'WRONG'}`);

// One attacher sleeps by blocking its thread, the other by awaiting: the owner waits for both.
att.notifier({
  invalidateStart: (range) => {
    say(`invalidateStart (${range.event}): dropping my views, sleeping ${sleepMs} ms`);
    if (index === 0) return sleepBlocking(sleepMs);
    return new Promise<void>((resolve) => setTimeout(resolve, sleepMs));
  },
  invalidateEnd: (range) => say(`invalidateEnd (${range.event}): ${range.event === 'remove' ? 'the range is gone for good' : 'the range may be used again'}`),
});

/** Counts in the segment (an Int32 per attacher at the start) must always equal ours: no lost write. */
let writes = 0;
let lost = 0;
let readOnly = false;
for (let sections = 1; ; sections++) {
  try {
    if (readOnly) await att.readAsync((v) => v[8]);
    else {
      await att.writeAsync((v) => {
        const counts = new Int32Array(v.buffer, v.byteOffset, 2);
        if (counts[index]! !== writes) lost++;
        counts[index] = ++writes;
      });
    }
  } catch (error) {
    const code = error instanceof XpmemError ? error.code : undefined;
    if (code === 'ERR_XPMEM_PERMISSION' && !readOnly) {
      say(`write refused with ${code} after ${writes} writes (${lost} lost): the owner made it read-only; reading on`);
      readOnly = true;
      continue;
    }
    if (code !== 'ERR_XPMEM_REMOVED') throw error;
    say(`section refused with ${code} after ${sections - 1} sections: the memory was revoked; detaching`);
    att.detach();
    break;
  }
  if (sections === 1) parentPort!.postMessage({ ready: index });
  await new Promise((resolve) => setImmediate(resolve)); // stay responsive between sections
}
