/**
 * The runtime smoke test's attacher (runtime-smoke.ts spawns it with domain.spawn): it attaches
 * the segment `workerData.segId` with a notifier that counts its starts and ends in words 0 and
 * 1 of `workerData.counts`, and answers each message: 'sum' with the sum of the segment's bytes,
 * read in one section (or the code of the error the section failed with), 'bye' by detaching
 * and letting its thread end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { joinFromWorkerData } from '../../src/worker.js';

const port = parentPort!;
const counts = new Int32Array(workerData.counts as SharedArrayBuffer);
const att = joinFromWorkerData().attach(workerData.segId as number, 'rw');

/** A callback that counts itself in word `word` of `counts` and wakes whoever waits on it. */
function counter(word: number): () => void {
  return () => {
    Atomics.add(counts, word, 1);
    Atomics.notify(counts, word);
  };
}

/** Answers one message of the owner. */
function serve(ask: string): void {
  if (ask === 'bye') {
    att.detach();
    port.off('message', serve); // nothing else holds the thread
    return;
  }
  try {
    port.postMessage({ sum: att.read((v) => v.reduce((a, b) => a + b, 0)) });
  } catch (error) {
    port.postMessage({ code: (error as { code?: unknown }).code });
  }
}

att.notifier({ invalidateStart: counter(0), invalidateEnd: counter(1) });
port.on('message', serve);
port.postMessage({ ready: true });
