/**
 * xpmem:slow: an operation that has waited longer than the domain's slowMs says so every slowMs,
 * in its own thread, while it still waits: what it is, its segment, how long it has waited, what
 * for, and each space it waits for with that space's thread and what the space is in (the
 * callback it publishes running, busy.ts, or the section it holds). Each wait of the operation
 * (invalidate.ts) carries a SlowWait, and the library wait (wait.ts) sleeps no longer than its
 * next report is due. Nothing here sleeps; a report is built only when the channel has
 * subscribers.
 */
import { H_SLOW_MS, SEG_GEN, blame, idOf, slotBase, type InvalidateEvent } from '../layout.js';
import type { ControlBlock } from '../control/control.js';
import { slowChannel, type SlowMessage, type SlowSpace } from '../diagnostics.js';
import { runningIn } from './busy.js';

/** What an operation waits for. */
export type WaitingFor = SlowMessage['waitingFor'];

/** The operation a SlowWait reports on. */
export interface Watched {
  readonly id: number;
  readonly event: InvalidateEvent;
  readonly name: string;
}

/** One wait of an operation, as wait.ts sees it. */
export interface SlowWait {
  /** performance.now() by which the next report is due: the wait sleeps no longer. */
  due(): number;
  /** Publishes the report if it is due. */
  tick(): void;
}

/** When each operation that waited began waiting, and when it reports next. */
const clocks = new WeakMap<Watched, { began: number; next: number }>();

/**
 * A SlowWait of operation `op` (run by space `self`) waiting for `waitingFor`: `spaces()` gives
 * the slots of the spaces it still waits for, read when a report is built. The operation's clock
 * starts when it first sleeps (a wait answered while it spins costs nothing here). Its own
 * thread only.
 */
export function slowWait(cb: ControlBlock, op: Watched, waitingFor: WaitingFor, spaces: () => readonly number[]): SlowWait {
  let clock: { began: number; next: number } | undefined;
  let since = 0;
  const started = (): { began: number; next: number } => {
    if (clock !== undefined) return clock;
    since = performance.now();
    clock = clocks.get(op) ?? { began: since, next: since + slowMs(cb) };
    clocks.set(op, clock);
    return clock;
  };
  return {
    due: () => started().next,
    tick: () => {
      const c = started();
      const now = performance.now();
      if (now < c.next) return;
      while (c.next <= now) c.next += slowMs(cb);
      if (!slowChannel.hasSubscribers) return;
      const message: SlowMessage = {
        operation: op.name,
        segId: op.id,
        event: op.event,
        waitedMs: Math.round(now - c.began),
        waitingFor,
        spaces: spaces().map((slot) => slowSpace(cb, slot, waitingFor, Math.round(now - since))),
      };
      slowChannel.publish(message);
    },
  };
}

function slowMs(cb: ControlBlock): number {
  return Atomics.load(cb.words, H_SLOW_MS);
}

/** Space `slot` as a report names it: who, and what it is in. */
function slowSpace(cb: ControlBlock, slot: number, waitingFor: WaitingFor, phaseMs: number): SlowSpace {
  const { words, layout } = cb;
  const who = blame(words, layout, slot);
  const running = runningIn(words, layout, slot);
  if (running !== undefined) {
    const segId = idOf(layout.segments, running.seg, Atomics.load(words, slotBase(layout.segments, running.seg) + SEG_GEN));
    return { ...who, doing: `${running.name} of segment ${segId} for ${duration(running.ms)}`, callback: { name: running.name, segId, ms: running.ms } };
  }
  return { ...who, doing: IDLE[waitingFor].replace('{ms}', duration(phaseMs)) };
}

/** What a space that runs no callback is doing, as far as the operation can tell. */
const IDLE: Record<WaitingFor, string> = {
  'operation lock': 'runs another VM operation on the segment',
  record: 'keeps an invalidation record in use',
  invalidateStart: 'runs no callback: it has not taken the event (busy in its own code, or blocked outside the library)',
  drain: 'holds a section on the segment (for at least {ms}: since the drain began)',
};

/** `ms` as a person reads it: 850 ms, 1.2 s. */
function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
