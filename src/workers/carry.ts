/**
 * Errors across the pool boundary. A pool worker's error reaches pool.run()'s caller by
 * structured clone, which keeps an Error's message, stack, standard name and `cause`, but drops
 * its class and every other field: `code`, `space`, `segId`. So the worker sends the error with
 * its fields in `cause` (carry), and the pool rebuilds it in the caller's thread (rebuild): an
 * XpmemError for an ERR_XPMEM_* code; otherwise the same kind of standard error (TypeError,
 * RangeError, ...) with the same name; either way with the worker's fields, stack and cause.
 * Both functions never sleep and touch no shared memory.
 */
import { XpmemError, type XpmemErrorCode } from '../errors.js';

/** The key of a carried error inside the `cause` of the Error that crosses. */
const CARRIED = 'xpmemCarriedError';

interface Carried {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** The error's own enumerable fields that survive structured clone (`code`, `space`, ...). */
  readonly fields: Record<string, unknown>;
  readonly cause: unknown;
}

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

/** Worker side: `error` as an Error that crosses with its class, fields and cause intact. */
export function carry(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) if (!OWN.has(key) && cloneable(value)) fields[key] = value;
  const cause = 'cause' in error ? (cloneable(error.cause) ? error.cause : String(error.cause)) : undefined;
  const carried: Carried = { name: error.name, message: error.message, stack: error.stack, fields, cause };
  return new Error(error.message, { cause: { [CARRIED]: carried } });
}

/** Caller side: the error `carry` sent, rebuilt; any other value as it is. */
export function rebuild(error: unknown): unknown {
  const carried = (error as { cause?: Record<string, unknown> } | null)?.cause?.[CARRIED] as Carried | undefined;
  if (carried === undefined || typeof carried !== 'object') return error;
  const { name, message, stack, fields, cause } = carried;
  const code = fields.code;
  const rebuilt = typeof code === 'string' && code.startsWith('ERR_XPMEM_') ? new XpmemError(code as XpmemErrorCode, message, fields) : new (STANDARD[name] ?? Error)(message);
  Object.assign(rebuilt, fields);
  if (rebuilt.name !== name) Object.defineProperty(rebuilt, 'name', { value: name, configurable: true, writable: true });
  if (stack !== undefined) rebuilt.stack = stack;
  if (cause !== undefined) Object.defineProperty(rebuilt, 'cause', { value: cause, configurable: true, writable: true });
  return rebuilt;
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
