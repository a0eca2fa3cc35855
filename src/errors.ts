/**
 * Every error the library throws is built here, so codes and message shapes stay stable.
 * Protocol failures are XpmemError with an ERR_XPMEM_* code; bad arguments are TypeError or
 * RangeError carrying Node core's ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE codes.
 */
import { inspect } from 'node:util';

/**
 * Stable codes of {@link XpmemError}. What each means and what to do about it:
 * [docs/ERRORS.md](../docs/ERRORS.md).
 */
export type XpmemErrorCode =
  | 'ERR_XPMEM_PERMISSION'
  | 'ERR_XPMEM_NO_SEGMENT'
  | 'ERR_XPMEM_REMOVED'
  | 'ERR_XPMEM_DETACHED'
  | 'ERR_XPMEM_RANGE'
  | 'ERR_XPMEM_NO_MEMORY'
  | 'ERR_XPMEM_TIMEOUT'
  | 'ERR_XPMEM_WOULD_DEADLOCK'
  | 'ERR_XPMEM_SPACE_DEAD'
  | 'ERR_XPMEM_BUSY'
  | 'ERR_XPMEM_SWAP_IO'
  | 'ERR_XPMEM_CLOSED'
  | 'ERR_XPMEM_ABORTED'
  | 'ERR_XPMEM_VIEW_ESCAPE'
  | 'ERR_XPMEM_ASYNC_CALLBACK'
  | 'ERR_XPMEM_UNSUPPORTED'
  | 'ERR_XPMEM_EXISTS'
  | 'ERR_XPMEM_NO_DOMAIN'
  | 'ERR_XPMEM_INCOMPATIBLE';

/** Whom an {@link XpmemError} is about, when known: a space (with its thread) and a segment, by their public ids. */
export interface XpmemErrorAbout {
  /** The space that did not answer in time, held what was needed, or was to blame. */
  readonly space?: number | undefined;
  /** The worker threadId of that space's thread (0 for the main thread), read when the error was made. */
  readonly threadId?: number | undefined;
  /** The process of that space (shared domains; this process's pid for threads-only ones). */
  readonly pid?: number | undefined;
  /** The segment the failed call was about. */
  readonly segId?: number | undefined;
  /** The underlying error (an fs or system error), when there is one. */
  readonly cause?: unknown;
}

/**
 * An error of the XPMEM protocol; `code` is stable across versions (every code, what it means and
 * what to do: [docs/ERRORS.md](../docs/ERRORS.md)).
 */
export class XpmemError extends Error {
  /** Stable machine-readable code. */
  readonly code: XpmemErrorCode;
  /** The space (public id) that did not answer in time or held what was needed, when one is known. */
  readonly space: number | undefined;
  /** The worker threadId of that space's thread (0 for the main thread), when a space is named. */
  readonly threadId: number | undefined;
  /** The process of that space, when a space is named. */
  readonly pid: number | undefined;
  /** The segment (id) the failed call was about, when it was about one. */
  readonly segId: number | undefined;

  constructor(code: XpmemErrorCode, message: string, about: XpmemErrorAbout = {}) {
    super(message, about.cause === undefined ? undefined : { cause: about.cause });
    this.name = 'XpmemError';
    this.code = code;
    this.space = about.space;
    this.threadId = about.threadId;
    this.pid = about.pid;
    this.segId = about.segId;
  }
}

/** Builds an XpmemError; the one factory the library uses. */
export function xpmemError(code: XpmemErrorCode, message: string, about?: XpmemErrorAbout): XpmemError {
  return new XpmemError(code, message, about);
}

/** How a message names a blamed space: `space 66 (thread 3)`, or `space 66 (thread 0 of process 4242)` in another process. */
export function blamed(about: { readonly space: number; readonly threadId: number; readonly pid?: number }): string {
  const of = about.pid === undefined || about.pid === process.pid ? '' : ` of process ${about.pid}`;
  return `space ${about.space} (thread ${about.threadId}${of})`;
}

/** Names segment `segId` in `error` if it is an XpmemError that names none yet; returns `error`. */
export function aboutSegment(error: unknown, segId: number): unknown {
  if (error instanceof XpmemError && error.segId === undefined) (error as { segId: number | undefined }).segId = segId;
  return error;
}

function codedError<E extends Error>(error: E, code: string): E & { code: string } {
  return Object.assign(error, { code });
}

/** A TypeError shaped like Node core's ERR_INVALID_ARG_TYPE. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  return codedError(new TypeError(`The "${name}" argument must be ${expected}. Received ${received(actual)}`), 'ERR_INVALID_ARG_TYPE');
}

/**
 * `value` as Node core's argument errors show it: `undefined`, `null`, `function Object`, `an
 * instance of Map`, `type string ('7')`, `type number (5)` (long ones cut after 25 characters).
 */
function received(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'object') {
    const kind = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof kind === 'string' && kind !== '' ? `an instance of ${kind}` : inspect(value, { depth: -1 });
  }
  if (typeof value === 'string') return `type string (${inspect(value.length > 28 ? `${value.slice(0, 25)}...` : value)})`;
  const shown = inspect(value);
  return `type ${typeof value} (${shown.length > 28 ? `${shown.slice(0, 25)}...` : shown})`;
}

/** A TypeError shaped like Node core's ERR_INVALID_ARG_VALUE. */
export function invalidArgValue(name: string, expected: string, shown: string): TypeError {
  return codedError(new TypeError(`The "${name}" argument must be ${expected}. Received ${shown}`), 'ERR_INVALID_ARG_VALUE');
}

/** A RangeError shaped like Node core's ERR_OUT_OF_RANGE. */
export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  return codedError(new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${String(actual)}`), 'ERR_OUT_OF_RANGE');
}

/** Validates a safe non-negative integer argument; `max` is inclusive. */
export function checkIndex(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  return value;
}

/** Validates one of a fixed set of strings. */
export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (!(allowed as readonly string[]).includes(value)) throw invalidArgValue(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, `'${value}'`);
  return value as T;
}

/** Validates an optional function argument. */
export function checkFunction(name: string, value: unknown): void {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
}

/** Validates that an options argument is an object or undefined. */
export function checkOptions(name: string, value: unknown): void {
  if (value !== undefined && (value === null || typeof value !== 'object')) throw invalidArgType(name, 'of type object', value);
}
