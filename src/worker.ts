// The worker entry: join the domain whose handle the spawner passed.
import { workerData } from 'node:worker_threads';
import { invalidArgType } from './errors.js';
import { join } from './workers/join.js';
import type { Space } from './segment/space.js';

export { join } from './workers/join.js';
export { XpmemError, type XpmemErrorCode } from './errors.js';
export type { Space } from './segment/space.js';

/** Joins with the handle domain.spawn() put at workerData.xpmem. */
export function joinFromWorkerData(): Space {
  const handle = (workerData as { xpmem?: unknown } | null)?.xpmem;
  if (handle === undefined) throw invalidArgType('workerData.xpmem', 'a domain handle (start the worker with domain.spawn)', handle);
  return join(handle as Parameters<typeof join>[0]);
}
