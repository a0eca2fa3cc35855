/**
 * An operation as a trace shows it (trace/recorder.ts): one span on its invalidator's track, from
 * the call to its return, with the segment, bytes, event, targets and error as args; its phases
 * as spans inside it (waiting for the operation lock, hold-off, waiting for starts, drain,
 * change); and a flow from it to each target's callbacks for its record (the target's thread
 * derives the same flow id from the record it reads: delivery.ts). Made only while a trace
 * records; the invalidator's own thread only; never sleeps.
 */
import { IV_GEN, blame, slotBase, type Blame, type InvalidateEvent } from '../layout.js';
import type { ControlBlock } from '../control/control.js';
import { flowId, type Recorder, type Span } from '../trace/recorder.js';
import { nowUs } from '../trace/clock.js';

/** A phase of an operation, as its span is named. */
export type Phase = 'waiting for the operation lock' | 'hold-off' | 'waiting for starts' | 'drain' | 'change';

export class OperationTrace {
  readonly #rec: Recorder;
  readonly #cb: ControlBlock;
  readonly #span: Span;
  readonly #args: Record<string, unknown>;
  #phase: Span | undefined;

  constructor(rec: Recorder, cb: ControlBlock, op: { readonly name: string; readonly id: number; readonly event: InvalidateEvent }) {
    this.#rec = rec;
    this.#cb = cb;
    this.#args = { segId: op.id, event: op.event };
    this.#span = rec.begin(op.name, this.#args);
  }

  /** Adds `args` to the operation's span. */
  note(args: Record<string, unknown>): void {
    Object.assign(this.#args, args);
  }

  /**
   * Ends the phase running, and begins `name` (none: undefined) at the same instant, waiting for
   * the spaces in `slots`. Returns that instant.
   */
  phase(name: Phase | undefined, slots: readonly number[] = []): number {
    const ts = nowUs();
    if (this.#phase !== undefined) this.#rec.end(this.#phase, ts);
    this.#phase = name === undefined ? undefined : this.#rec.begin(name, slots.length === 0 ? undefined : { waitingFor: this.spaces(slots) }, ts);
    return ts;
  }

  /** The spaces in `slots`, as args name them. */
  spaces(slots: readonly number[]): Blame[] {
    return slots.map((slot) => blame(this.#cb.words, this.#cb.layout, slot));
  }

  /**
   * Flow starts, at `ts` (before the record or its end was published), to the callbacks of phase
   * `which` (STARTED, ENDED) that record `r` causes in each of `targets`.
   */
  flows(r: number, which: number, targets: readonly number[], name: string, ts = nowUs()): void {
    const gen = Atomics.load(this.#cb.words, slotBase(this.#cb.layout.invalidations, r) + IV_GEN);
    for (const t of targets) this.#rec.flow('s', flowId(r, gen, which, t), name, ts);
  }

  /** Ends the operation, failed with `failure` (undefined: it succeeded, or had nothing to do). */
  end(failure: unknown): void {
    const ts = this.phase(undefined);
    if (failure !== undefined) this.#args.error = String((failure as { code?: unknown }).code ?? failure);
    this.#rec.end(this.#span, ts);
  }
}
