/** The range and callback shapes notifiers see (mmu_notifier_range and mmu_notifier_ops). */
import type { InvalidateEvent } from '../layout.js';

/** What a notifier callback is told about one invalidation. */
export interface Range {
  /** The segment being invalidated. */
  readonly segId: number;
  /** First invalidated byte, relative to the segment. */
  readonly offset: number;
  /** Invalidated bytes. */
  readonly length: number;
  /** The VM operation behind it. */
  readonly event: InvalidateEvent;
  /**
   * True when delivered from the space's idle event loop (the dispatcher): the callback may
   * block or await freely. False when delivered inline at a library wait or a section boundary:
   * a returned promise then makes a synchronous wait that depends on it fail with
   * ERR_XPMEM_WOULD_DEADLOCK (the event still completes once the promise settles).
   */
  readonly blockable: boolean;
  /** Aborted when the invalidator gave up waiting (ERR_XPMEM_TIMEOUT on its side). */
  readonly signal: AbortSignal;
}

/** A callback's result: nothing, or a promise the invalidator waits for. */
export type CallbackResult = void | Promise<void>;

/**
 * Callbacks of a notifier. Each runs in the thread that registered it, never concurrently with
 * another callback of the same space, and may sleep (block with Atomics.wait, or return a
 * promise): the invalidator waits for it, up to its deadline.
 */
export interface NotifierCallbacks {
  /**
   * The range is about to change. Until invalidateEnd, no section on it can start and map()
   * waits; the implementer must drop (or stop using) any derived state or view of the range.
   */
  invalidateStart?(range: Range): CallbackResult;
  /** The change is done; the range may be re-read (it may have moved, shrunk or gone). */
  invalidateEnd?(range: Range): CallbackResult;
  /**
   * The memory's owner is gone (its thread exited): the range will never come back. Called
   * instead of invalidateStart (and then no invalidateEnd) when given.
   */
  release?(range: Range): CallbackResult;
  /**
   * Page aging (clear_young) under memoryLimit: after the reclaim clock cleared the segment's
   * referenced bit, this is asked at the space's next delivery point whether the range was used
   * since the last scan (e.g. through a long-lived mapped view); true gives the segment another
   * pass before it can be swapped out. Synchronous; `range.event` is 'swap'.
   */
  referenced?(range: Range): boolean;
}
