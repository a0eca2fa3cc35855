// The main entry: create a domain, spawn or watch workers, and every public type.
export { Domain, type DomainOptions } from './domain.js';
export type { DomainStats, MapRow } from './observe.js';
export type { CompactReport } from './vm/compact.js';
export type { InvalidateMessage, FaultMessage, ReclaimMessage, ReapMessage } from './diagnostics.js';
export { Space } from './segment/space.js';
export { Segment, type MakeOptions, type Permit } from './segment/segment.js';
export { Access, type AttachOptions } from './segment/access.js';
export { Attachment, type Section } from './segment/attachment.js';
export { Mapping } from './segment/mapping.js';
export { Notifier } from './notifier/notifier.js';
export type { Range, NotifierCallbacks, CallbackResult } from './notifier/range.js';
export type { InvalidateEvent, Capacities } from './layout.js';
export type { CheckReport } from './control/check.js';
export type { DomainHandle } from './control/control.js';
export type { WaitOptions } from './sync/futex.js';
export type { ViewType } from './segment/view.js';
export { XpmemError, type XpmemErrorAbout, type XpmemErrorCode } from './errors.js';
export { join } from './workers/join.js';
