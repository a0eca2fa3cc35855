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

/** A callback's result: nothing, or a promise (an invalidateStart's is waited for by the invalidator). */
export type CallbackResult = void | Promise<void>;

/**
 * Callbacks of a notifier. Each runs in the thread that registered it, never concurrently with
 * another callback of the same space, and may sleep (block with Atomics.wait, or return a
 * promise). The invalidator waits for invalidateStart (and release), up to its deadline; it
 * does not wait for invalidateEnd.
 */
export interface NotifierCallbacks {
  /**
   * The range is about to change: drop (or stop using) any derived state or view of it. From
   * before this call until the change is done, no section on the segment can start and map()
   * waits (the hold-off); the change waits for this callback to return (or its promise to settle).
   */
  invalidateStart?(range: Range): CallbackResult;
  /**
   * The change is done; the range may be re-read (it may have moved, shrunk or gone). Runs
   * after the hold-off ended, so other threads' sections may already run meanwhile, and the
   * operation may already have resolved: nobody waits for it. It runs exactly once per
   * invalidateStart, and a later invalidateStart of the same segment in this space comes only
   * once it completed (returned and, if it returned a promise, that promise settled): a slow
   * end holds back the next operation on the segment, whose invalidator waits for its start.
   */
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
