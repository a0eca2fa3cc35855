/**
 * diagnostics_channel publication: `xpmem:invalidate`, `xpmem:fault`, `xpmem:reclaim`,
 * `xpmem:reap` and `xpmem:slow`. Messages are built only when a channel has subscribers, in the thread that did
 * the work (subscribe in that thread: channels are per thread). Never sleeps.
 */
import { channel } from 'node:diagnostics_channel';
import type { InvalidateEvent } from './layout.js';

/** Message of `xpmem:invalidate`: one invalidation, applied or rolled back. */
export interface InvalidateMessage {
  /** The segment invalidated. */
  readonly segId: number;
  /** The VM operation: 'remove', 'migrate', 'resize', 'protect', 'swap' or 'release'. */
  readonly event: InvalidateEvent;
  /** Spaces whose notifiers got invalidateStart. */
  readonly attachers: number;
  /** From taking the operation lock to the window's end (the ends are not waited for). */
  readonly durationMs: number;
  /** The error code when rolled back (or failed), else undefined. */
  readonly error: string | undefined;
}

/** Message of `xpmem:fault`: a section or map() swapped its segment back in. */
export interface FaultMessage {
  /** The segment swapped in. */
  readonly segId: number;
  /** The space (id) whose section or map() faulted. */
  readonly space: number;
  /** Bytes read back from the swap file. */
  readonly bytes: number;
  /** How long the fault took, in ms. */
  readonly durationMs: number;
}

/** Message of `xpmem:reclaim`: one run of the reclaim clock. */
export interface ReclaimMessage {
  /** Bytes the caller needed freed. */
  readonly neededBytes: number;
  /** Bytes it freed. */
  readonly freedBytes: number;
  /** Segment ids swapped out. */
  readonly victims: number[];
  /** Segments given a second chance (referenced bit cleared). */
  readonly aged: number;
  /** How long the run took, in ms. */
  readonly durationMs: number;
}

/** Message of `xpmem:reap`: a dead space was reaped. */
export interface ReapMessage {
  /** The reaped space's id. */
  readonly space: number;
  /** The threadId of the worker that exited. */
  readonly threadId: number;
  /** The pid of its process (another process's, when a process of a shared domain died or left). */
  readonly pid: number;
  /** Segments it owned, removed with event 'release'. */
  readonly segments: number;
}

/** Message of `xpmem:slow`: an operation has waited longer than slowMs, and still waits. */
export interface SlowMessage {
  /** The operation: 'remove', 'migrate', 'resize', 'protect', 'swapOut', 'swapIn', 'compact', 'reclaim', 'fault' or 'release'. */
  readonly operation: string;
  /** Its segment. */
  readonly segId: number;
  /** Its invalidation's event, as callbacks see it. */
  readonly event: InvalidateEvent;
  /** How long it has waited, in ms (since its first wait). */
  readonly waitedMs: number;
  /** What it waits for now: another operation on the segment, a free record, its targets' invalidateStart, or sections to leave. */
  readonly waitingFor: 'operation lock' | 'record' | 'invalidateStart' | 'drain';
  /** The spaces it still waits for. */
  readonly spaces: readonly SlowSpace[];
}

/** A space an operation waits for, in an `xpmem:slow` message. */
export interface SlowSpace {
  /** The space's public id. */
  readonly space: number;
  /** Its thread's threadId (0 for a main thread). */
  readonly threadId: number;
  /** Its process (another process's, in a shared domain). */
  readonly pid: number;
  /** What it is in, for a person: 'invalidateStart of segment 4096 for 1.2 s', 'holds a section on the segment ...'. */
  readonly doing: string;
  /** The callback it runs, when it runs one. */
  readonly callback?: SlowCallback;
}

/** The callback a space an operation waits for runs, in an `xpmem:slow` message. */
export interface SlowCallback {
  /** 'invalidateStart', 'invalidateEnd', 'release' or 'referenced'. */
  readonly name: string;
  /** The segment it runs for. */
  readonly segId: number;
  /** How long it has run, in ms (a callback that returned a promise runs until it settles). */
  readonly ms: number;
}

export const invalidateChannel = channel('xpmem:invalidate');
export const faultChannel = channel('xpmem:fault');
export const reclaimChannel = channel('xpmem:reclaim');
export const reapChannel = channel('xpmem:reap');
export const slowChannel = channel('xpmem:slow');

/** Publishes one invalidation on `xpmem:invalidate` (the caller checked it has subscribers). */
export function published(op: { readonly id: number; readonly event: InvalidateEvent }, attachers: number, durationMs: number, failure: unknown): void {
  const error = failure === undefined ? undefined : String((failure as { code?: unknown }).code ?? 'Error');
  invalidateChannel.publish({ segId: op.id, event: op.event, attachers, durationMs, error } satisfies InvalidateMessage);
}
