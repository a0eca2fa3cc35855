/**
 * What a section's callback may return. Not a view of the arena: it would outlive the section.
 * From a synchronous section (read, write), not a promise or any thenable either: the section
 * ended when the callback returned, at its first `await`, so what the callback does after it
 * runs outside the section, where the segment may move, shrink or go.
 */
import { xpmemError } from '../errors.js';

/**
 * What a synchronous section's callback may return: anything but a promise (any `PromiseLike`).
 * An async callback belongs in readAsync() or writeAsync(), whose section lasts until it settles.
 */
export type SyncResult<T> = T extends PromiseLike<unknown> ? never : T;

/**
 * Refuses what a synchronous section's callback returned when it is a thenable
 * (ERR_XPMEM_ASYNC_CALLBACK) or a view of `arena` (ERR_XPMEM_VIEW_ESCAPE). The refused promise
 * keeps running; its outcome is dropped, so a later rejection is not reported as unhandled.
 */
export function checkSyncResult(result: object, arena: SharedArrayBuffer, segId: number): void {
  if (typeof (result as { then?: unknown }).then === 'function') {
    Promise.resolve(result).catch(() => {}); // the caller is told by the error below
    throw xpmemError(
      'ERR_XPMEM_ASYNC_CALLBACK',
      `a synchronous section of segment ${segId} got a promise from its callback: the section ended at the callback's first await, and what it did after that ran outside the section; use readAsync() or writeAsync(), whose section lasts until the promise settles`,
      { segId },
    );
  }
  checkEscape(result, arena, segId);
}

/**
 * Refuses a section's result that is a view of the arena (ERR_XPMEM_VIEW_ESCAPE): it would
 * outlive the section, and once the segment moves or goes, reading it sees (and writing it
 * corrupts) whatever the arena holds there next. Only the result itself is checked, not what it
 * contains.
 */
export function checkEscape(result: object, arena: SharedArrayBuffer, segId: number): void {
  if (ArrayBuffer.isView(result) && result.buffer === arena) {
    throw xpmemError(
      'ERR_XPMEM_VIEW_ESCAPE',
      `a section of segment ${segId} returned a view of the segment, valid inside the section only; return a copy (view.slice()) or a value (an arrow like v => v.fill(0) returns its view: give it a block body)`,
      { segId },
    );
  }
}
