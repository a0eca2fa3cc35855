/**
 * createPool: a real Piscina whose workers are spaces of a domain.
 *
 * - Join on start: the pool's `filename` is our pool-worker module, which joins with the handle
 *   at `workerData.xpmem` (the caller's own workerData object is kept beside it). Each run
 *   carries the task module and handler it wants (the pool's `filename` and `name`, or the
 *   run's own), and the pool worker imports that module once and calls that export.
 * - Errors come back whole: a task's error reaches run()'s caller with its class, `code`,
 *   `space`, `segId`, stack and cause, the cause rebuilt the same way (carry.ts), as if the
 *   task had run in the caller.
 * - Reap on exit: each Worker the pool starts is watched (by the process 'worker' event, for
 *   the pool's own threads only); when Piscina destroys one (idle timeout, an aborted task,
 *   destroy()) its thread exits and the domain reaps its space.
 * - atomics: Piscina's default 'sync' parks idle workers in a blocking Atomics.wait, where the
 *   space's dispatcher cannot run and every invalidation touching that worker would time out.
 *   The pool uses 'async' (idle workers wait in their event loop); 'disabled' is accepted too,
 *   'sync' is refused.
 * - Tasks receive segment ids and ranges, not data; what a task gets or attaches is released
 *   when it settles. An aborted task (`signal`) terminates its worker: the death path.
 * - Closed means closed: once the pool is closing (close(), destroy()) or its domain closed,
 *   run() rejects with ERR_XPMEM_CLOSED, and a worker Piscina still starts (it replaces an idle
 *   worker whose exit arrives later) exits without joining, instead of failing the program
 *   with an 'error' event on the pool.
 * - The domain's close() ends the pool's work: the pool is destroyed (queued tasks dropped,
 *   workers terminated, running tasks with them), and every run not finished by then rejects
 *   with ERR_XPMEM_CLOSED; close() resolves once they all settled.
 * Runs in the thread that owns the domain object.
 */
import { Piscina } from 'piscina';
import type { Worker } from 'node:worker_threads';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkOptions, invalidArgType, xpmemError } from '../errors.js';
import { checkKeys } from '../options.js';
import type { DomainHandle } from '../control/control.js';
import { H_CLOSED } from '../layout.js';
import { isCarried, rebuild } from './carry.js';

/** What a pool needs of its domain (a Domain is one): the handle its workers join with, and a watch that reaps them. */
export interface PoolDomain {
  /** The handle the pool's workers join with. */
  handle(): DomainHandle;
  /** Reaps `worker`'s space when it exits. */
  watch(worker: Worker): Worker;
  /** Runs `end` when the domain closes (and waits for it); returns a function that unregisters it. */
  onClose(end: () => Promise<void>): () => void;
}

/** Piscina's options, with `filename` (the task module) required. */
export type PoolOptions = Omit<NonNullable<ConstructorParameters<typeof Piscina>[0]>, 'filename'> & {
  /** The task module, a path or a file URL: its default export (or its `name` export) runs each task. */
  filename: string | URL;
};

/**
 * The keys PoolOptions knows, Piscina's own and `filename`: the compiler keeps this list and
 * the installed Piscina's options the same.
 */
const POOL_KEYS = {
  filename: true,
  name: true,
  minThreads: true,
  maxThreads: true,
  idleTimeout: true,
  maxQueue: true,
  concurrentTasksPerWorker: true,
  atomics: true,
  resourceLimits: true,
  argv: true,
  execArgv: true,
  env: true,
  workerData: true,
  taskQueue: true,
  niceIncrement: true,
  trackUnmanagedFds: true,
  closeTimeout: true,
  recordTiming: true,
  stricterFIFO: true,
  loadBalancer: true,
  workerHistogram: true,
} as const satisfies Record<keyof PoolOptions, true>;

/** What a pool worker finds in workerData besides the caller's own fields. */
export interface PoolWorkerData {
  readonly xpmem: DomainHandle;
  /** The pool's task module, imported when the worker starts. */
  readonly xpmemTask: { readonly filename: string };
  /** Word 0 is 1 once the pool is closing: a worker starting then exits without joining. */
  readonly xpmemClosed: Int32Array;
}

/** What one run sends its pool worker: the caller's task and where its handler is. */
export interface PoolRun {
  readonly task: unknown;
  /** The task module, as a URL import() takes. */
  readonly filename: string;
  /** The export of it that runs the task. */
  readonly name: string;
}

const POOL_WORKER = new URL('./pool-worker.js', import.meta.url).href;

/** A Piscina whose workers join `domain` on start and are reaped when they exit. */
export function createPool(domain: PoolDomain, options: PoolOptions): Piscina {
  checkOptions('options', options);
  if (options === undefined) throw invalidArgType('options', 'an object with filename, the task module', options);
  checkKeys('options', options, POOL_KEYS);
  const filename = moduleUrl('options.filename', options.filename);
  const name = handlerName('options.name', options.name);
  if (options.atomics === 'sync') {
    throw Object.assign(new TypeError("options.atomics 'sync' parks idle workers in a blocking Atomics.wait, where their notifiers cannot run; use 'async' (the default here) or 'disabled'"), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const data: unknown = options.workerData ?? {};
  if (typeof data !== 'object' || data === null) throw invalidArgType('options.workerData', 'an object (xpmem adds its handle to it)', data);
  const shut = new Int32Array(new SharedArrayBuffer(4));
  const handle = domain.handle();
  const control = new Int32Array(handle.control);
  let pool: Piscina | undefined;
  // The 'worker' event comes in a later tick than the Worker's start, which Piscina has recorded by then.
  const onWorker = (worker: Worker): void => {
    if (pool?.threads.includes(worker)) domain.watch(worker);
  };
  process.on('worker', onWorker); // before the constructor, which starts minThreads workers
  try {
    pool = new Piscina({
      ...options,
      filename: POOL_WORKER,
      name: 'default',
      atomics: options.atomics ?? 'async',
      workerData: { ...data, xpmem: handle, xpmemTask: { filename }, xpmemClosed: shut } satisfies PoolWorkerData,
    });
  } catch (error) {
    process.off('worker', onWorker);
    throw error;
  }
  const unhook = domain.onClose(() => pool.destroy()); // the domain's close ends the tasks in flight
  const closed = (): void => {
    process.off('worker', onWorker);
    unhook();
  };
  pool.once('close', closed);
  const close = pool.close.bind(pool);
  pool.close = (closeOptions) => {
    Atomics.store(shut, 0, 1);
    return close(closeOptions);
  };
  const destroy = pool.destroy.bind(pool); // Piscina's destroy() does not emit 'close'
  pool.destroy = () => {
    Atomics.store(shut, 0, 1);
    return destroy().finally(closed);
  };
  const run = pool.run.bind(pool);
  // A bad run option rejects the run, as Piscina's own checks do; it never throws synchronously.
  pool.run = async (task, runOptions = {}) => {
    if (Atomics.load(control, H_CLOSED) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', "this pool's domain was closed, which ended the pool");
    if (Atomics.load(shut, 0) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', 'this pool was closed (close() or destroy()); create a new pool to run more tasks');
    const { filename: runFile, name: runName, ...rest } = runOptions;
    const envelope: PoolRun = {
      task,
      filename: runFile == null ? filename : moduleUrl('options.filename', runFile),
      name: runName == null ? name : handlerName('options.name', runName),
    };
    try {
      return await run(envelope, rest);
    } catch (error) {
      // Piscina's own error (a worker terminated or exited) once the domain closed: the close ended the task.
      if (!isCarried(error) && Atomics.load(control, H_CLOSED) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', "this pool's domain was closed before the task finished");
      throw rebuild(error);
    }
  };
  return pool;
}

/** The task module as a URL import() accepts. */
function moduleUrl(what: string, filename: unknown): string {
  if (filename instanceof URL) return filename.href;
  if (typeof filename !== 'string') throw invalidArgType(what, 'a path or file URL of the task module', filename);
  if (filename.startsWith('file:')) return filename;
  return pathToFileURL(isAbsolute(filename) ? filename : resolve(filename)).href;
}

/** The export that runs tasks ('default' when none is named). */
function handlerName(what: string, name: unknown): string {
  if (name == null) return 'default';
  if (typeof name !== 'string') throw invalidArgType(what, 'of type string (an export of the task module)', name);
  return name;
}
