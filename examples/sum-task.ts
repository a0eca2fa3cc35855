/**
 * The parallel-sum task, in three forms: `segment` sums a slice of an xpmem segment in place
 * (the worker joined its domain at start: createPool), `shared` sums a slice of a plain
 * SharedArrayBuffer passed in workerData, `cloned` sums the copy it was sent.
 */
import { workerData } from 'node:worker_threads';
import { join } from '../src/worker.js';

/** One slice: elements [from, to) of a Float64 array. */
export type SumTask = { kind: 'segment'; segId: number; from: number; to: number } | { kind: 'shared'; from: number; to: number } | { kind: 'cloned'; values: Float64Array };

function total(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
}

export default function sum(task: SumTask): number {
  if (task.kind === 'cloned') return total(task.values);
  if (task.kind === 'shared') return total(new Float64Array(workerData.shared as SharedArrayBuffer, task.from * 8, task.to - task.from));
  const slice = join(workerData.xpmem)
    .get(task.segId, 'ro')
    .attach({ offset: task.from * 8, length: (task.to - task.from) * 8 });
  return slice.read(Float64Array, total); // the task scope detaches it when the task returns
}
