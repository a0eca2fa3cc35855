/**
 * Errors across the pool boundary. A pool worker's error reaches pool.run()'s caller by
 * structured clone, which keeps an Error's message, stack and standard name, but drops its
 * class and every other field: `code`, `space`, `segId`, an AggregateError's `errors`, a
 * DOMException's class, and in Bun its `cause` too. So the worker throws, in the error's place,
 * a plain object holding its parts (carry), which every runtime clones whole, and the pool
 * rebuilds it in the caller's thread (rebuild): an XpmemError for an ERR_XPMEM_* code; a
 * DOMException with the same name (and so the same `code`); an AggregateError; otherwise the same
 * kind of standard error (TypeError, RangeError, ...) with the same name; each with the worker's
 * fields and stack. Its `cause`, and an AggregateError's `errors`, are carried and rebuilt the
 * same way, up to DEPTH levels deep; an error met twice (a chain that loops) is carried once
 * and rebuilt as the same object, so the loop crosses as a loop. Both functions never sleep and
 * touch no shared memory.
 */
import { XpmemError, type XpmemErrorCode } from '../errors.js';

/** The key that marks a carried error where a value crosses. */
const CARRIED = 'xpmemCarriedError';

/** How deep errors are carried (causes of causes, members of AggregateErrors); deeper ones cross as any other value. */
const DEPTH = 16;

/** An error as it crosses: what rebuild needs to make it again in the caller's thread. */
interface Carried {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** The error's own enumerable fields that survive structured clone (`code`, `space`, ...). */
  readonly fields: Record<string, unknown>;
  /** True for a DOMException. */
  readonly dom: boolean;
  /** The cause, as carryValue sends it; undefined for none. */
  cause: unknown;
  /** An AggregateError's `errors`, each as carryValue sends it; undefined for any other error. */
  errors: unknown[] | undefined;
}

/** A carried error as it crosses in place of the error. */
type Marked = { readonly [CARRIED]: Carried };

/** Fields the Error itself already carries (or that are re-derived). */
const OWN = new Set(['name', 'message', 'stack', 'cause']);

const STANDARD: Record<string, new (message: string) => Error> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** Worker side: `error` as a plain object that crosses with its class, fields and cause intact (to be thrown). */
export function carry(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  return carryValue(error, 0, new Map());
}

/**
 * `value`, found `depth` levels below the thrown error, as it crosses: an Error no deeper than
 * DEPTH marked and carried (the one carried already if `seen` has it); any other value cloned if
 * cloneable, else as String().
 */
function carryValue(value: unknown, depth: number, seen: Map<Error, Marked>): unknown {
  if (!(value instanceof Error) || depth > DEPTH) return cloneable(value) ? value : String(value);
  const known = seen.get(value);
  if (known !== undefined) return known;
  const fields: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) if (!OWN.has(key) && cloneable(field)) fields[key] = field;
  const carried: Carried = { name: value.name, message: value.message, stack: value.stack, fields, dom: value instanceof DOMException, cause: undefined, errors: undefined };
  const marked = { [CARRIED]: carried };
  seen.set(value, marked);
  if ('cause' in value) carried.cause = carryValue(value.cause, depth + 1, seen);
  if (value instanceof AggregateError) carried.errors = value.errors.map((member: unknown) => carryValue(member, depth + 1, seen));
  return marked;
}

/** Caller side: the error `carry` sent, rebuilt; any other value as it is. */
export function rebuild(error: unknown): unknown {
  return rebuildValue(error, new Map());
}

/** Caller side: true if `error` is one `carry` sent (the task's own), not the pool's. */
export function isCarried(error: unknown): boolean {
  return carriedIn(error) !== undefined;
}

/** The carried error `value` holds if carryValue marked it, else undefined. */
function carriedIn(value: unknown): Carried | undefined {
  const carried = (value as Partial<Marked> | null | undefined)?.[CARRIED];
  return typeof carried === 'object' && carried !== null ? carried : undefined;
}

/** A value carryValue sent, rebuilt: an error as rebuildCarried builds it, any other value as it is. */
function rebuildValue(value: unknown, built: Map<Carried, Error>): unknown {
  const carried = carriedIn(value);
  return carried === undefined ? value : rebuildCarried(carried, built);
}

/** The error `carried` describes, with its fields, stack, cause and errors; the one `built` has if any. */
function rebuildCarried(carried: Carried, built: Map<Carried, Error>): Error {
  const known = built.get(carried);
  if (known !== undefined) return known;
  const { name, fields, stack, cause, errors } = carried;
  const rebuilt = construct(carried);
  built.set(carried, rebuilt);
  Object.assign(rebuilt, fields);
  if (rebuilt.name !== name) define(rebuilt, 'name', name);
  if (stack !== undefined) rebuilt.stack = stack;
  if (cause !== undefined) define(rebuilt, 'cause', rebuildValue(cause, built));
  const members = errors?.map((e) => rebuildValue(e, built));
  if (members !== undefined) define(rebuilt, 'errors', members);
  return rebuilt;
}

/** A new error of the class `carried` was, with its message, before its fields are set. */
function construct({ name, message, fields, dom, errors }: Carried): Error {
  const code = fields.code;
  if (typeof code === 'string' && code.startsWith('ERR_XPMEM_')) return new XpmemError(code as XpmemErrorCode, message, fields);
  if (dom) return new DOMException(message, name);
  if (errors !== undefined) return new AggregateError([], message);
  return new (STANDARD[name] ?? Error)(message);
}

/** Sets `key` of `error` to `value`: a writable, configurable own property, not enumerable if it is new. */
function define(error: Error, key: string, value: unknown): void {
  Object.defineProperty(error, key, { value, configurable: true, writable: true });
}

/** True if `value` survives postMessage (structured clone). */
function cloneable(value: unknown): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return typeof value !== 'symbol';
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}
