// The worker entry: join the domain whose handle the spawner passed.
import { workerData } from 'node:worker_threads';
import { invalidArgType } from './errors.js';
import { join } from './workers/join.js';
import type { Space } from './segment/space.js';

export { join } from './workers/join.js';
export { XpmemError, type XpmemErrorAbout, type XpmemErrorCode } from './errors.js';
// The types a worker or pool task handles (their classes come from the main entry).
export type { Space } from './segment/space.js';
export type { KeepOptions } from './segment/scope.js';
export type { Segment, MakeOptions, Permit } from './segment/segment.js';
export type { Access, AttachOptions } from './segment/access.js';
export type { Attachment, Section } from './segment/attachment.js';
export type { Mapping } from './segment/mapping.js';
export type { Notifier } from './notifier/notifier.js';
export type { Range, NotifierCallbacks, CallbackResult } from './notifier/range.js';
export type { ViewType } from './segment/view.js';
export type { SyncResult } from './segment/result.js';
export type { WaitOptions } from './sync/futex.js';
export type { InvalidateEvent } from './layout.js';
export type { DomainHandle } from './control/control.js';

/** Joins with the handle domain.spawn() put at workerData.xpmem. */
export function joinFromWorkerData(): Space {
  const handle = (workerData as { xpmem?: unknown } | null)?.xpmem;
  if (handle === undefined) throw invalidArgType('workerData.xpmem', 'a domain handle (start the worker with domain.spawn)', handle);
  return join(handle as Parameters<typeof join>[0]);
}
