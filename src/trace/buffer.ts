/**
 * One thread's trace events, kept in columns (typed arrays, growing by doubling up to their
 * bound) rather than as an object each: a recorded event then retains nothing the garbage
 * collector must trace or promote, only its args object when it has one, and a flow's id.
 * Past the bound, events are counted, not kept. Its own thread only; never sleeps.
 */
/** One event of the Chrome trace-event format (the JSON ui.perfetto.dev and chrome://tracing open). */
export interface TraceEvent {
  /** The span's operation, phase or callback; a metadata event's kind (thread_name, process_name). */
  readonly name: string;
  /** X: complete span; b/e: async span begin/end; s/f: flow start/end; i: instant; M: metadata. */
  readonly ph: 'X' | 'b' | 'e' | 's' | 'f' | 'i' | 'M';
  /** µs on the machine's monotonic clock (clock.ts). */
  readonly ts: number;
  /** The process (process.pid). */
  readonly pid: number;
  /** The thread (its threadId, 0 for a main thread). */
  readonly tid: number;
  /** 'xpmem'. */
  readonly cat?: string;
  /** A complete span's duration, µs. */
  readonly dur?: number;
  /** What pairs an async span's begin and end, or a flow's start and end. */
  readonly id?: string;
  /** A flow end binds to the span enclosing it. */
  readonly bp?: 'e';
  /** An instant's scope: the thread. */
  readonly s?: 't';
  /** What the event is about: a span's segId, event, targets, error, ...; a metadata event's name. */
  readonly args?: Record<string, unknown>;
}

/** The phases a thread records (instants and metadata are added by the collector). */
const PHASES = ['X', 'b', 'e', 's', 'f'] as const;

/** A phase a thread records. */
export type RecordedPhase = (typeof PHASES)[number];

const CAT = 'xpmem';
const FIRST = 1024;

export class EventBuffer {
  readonly #max: number;
  #n = 0;
  #ph = new Uint8Array(0);
  #name = new Uint16Array(0);
  #ts = new Float64Array(0);
  #dur = new Float64Array(0);
  #id: (string | undefined)[] = [];
  #args: (Record<string, unknown> | undefined)[] = [];
  readonly #names: string[] = [];
  readonly #nameIds = new Map<string, number>();
  /** Events not kept, and when the first of them came (µs). */
  dropped = 0;
  droppedAt = 0;

  /** A buffer of at most `max` events. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Events kept. */
  get length(): number {
    return this.#n;
  }

  /** Records one event, or counts it as dropped when the buffer is full. */
  push(ph: RecordedPhase, name: string, ts: number, dur: number, id: string | undefined, args: Record<string, unknown> | undefined): void {
    const n = this.#n;
    if (n === this.#ph.length && !this.#grow()) {
      if (this.dropped++ === 0) this.droppedAt = ts;
      return;
    }
    let nameId = this.#nameIds.get(name);
    if (nameId === undefined) {
      nameId = this.#names.push(name) - 1;
      this.#nameIds.set(name, nameId);
    }
    this.#ph[n] = PHASES.indexOf(ph);
    this.#name[n] = nameId;
    this.#ts[n] = ts;
    this.#dur[n] = dur;
    this.#id[n] = id;
    this.#args[n] = args;
    this.#n = n + 1;
  }

  /** The events, as objects of thread `tid` of process `pid`. */
  events(pid: number, tid: number): TraceEvent[] {
    return Array.from({ length: this.#n }, (_, i) => {
      const ph = PHASES[this.#ph[i]!]!;
      const id = this.#id[i];
      const args = this.#args[i];
      return {
        name: this.#names[this.#name[i]!]!,
        ph,
        ts: this.#ts[i]!,
        pid,
        tid,
        cat: CAT,
        ...(ph === 'X' ? { dur: this.#dur[i]! } : {}),
        ...(id === undefined ? {} : { id }),
        ...(ph === 'f' ? { bp: 'e' as const } : {}),
        ...(args === undefined ? {} : { args }),
      };
    });
  }

  /** Doubles the columns, up to the bound; false when full. */
  #grow(): boolean {
    const size = Math.min(this.#max, Math.max(FIRST, 2 * this.#ph.length));
    if (size <= this.#ph.length) return false;
    const grown = <T extends Uint8Array | Uint16Array | Float64Array>(old: T, make: new (n: number) => T): T => {
      const column = new make(size);
      column.set(old);
      return column;
    };
    this.#ph = grown(this.#ph, Uint8Array);
    this.#name = grown(this.#name, Uint16Array);
    this.#ts = grown(this.#ts, Float64Array);
    this.#dur = grown(this.#dur, Float64Array);
    return true;
  }
}
