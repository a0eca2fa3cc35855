/**
 * createPool: a real Piscina whose workers are spaces of a domain.
 *
 * - Join on start: the pool's `filename` is our pool-worker module, which joins with the handle
 *   at `workerData.xpmem` (the caller's own workerData object is kept beside it) and then loads
 *   the caller's task module; `name` picks its handler (default: its default export).
 * - Reap on exit: every Worker started in this thread while the pool is open (until close() or
 *   destroy()) is watched (process 'worker' event); when Piscina destroys one (workerDestroy:
 *   idle timeout, an aborted task, destroy()) its thread exits and the domain reaps its space.
 *   Watching is by threadId, so a worker that never joined costs nothing.
 * - atomics: Piscina's default 'sync' parks idle workers in a blocking Atomics.wait, where the
 *   space's dispatcher cannot run and every invalidation touching that worker would time out.
 *   The pool uses 'async' (idle workers wait in their event loop); 'disabled' is accepted too,
 *   'sync' is refused.
 * - Tasks receive segment ids and ranges, not data; what a task gets or attaches is released
 *   when it settles. An aborted task (`signal`) terminates its worker: the death path.
 * Runs in the thread that owns the domain object.
 */
import { Piscina } from 'piscina';
import type { Worker } from 'node:worker_threads';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkOptions, invalidArgType } from '../errors.js';
import type { DomainHandle } from '../control/control.js';

/** What a pool needs of its domain (a Domain is one): the handle its workers join with, and a watch that reaps them. */
export interface PoolDomain {
  handle(): DomainHandle;
  watch(worker: Worker): Worker;
}

/** Piscina's options, with `filename` (the task module) required. */
export type PoolOptions = NonNullable<ConstructorParameters<typeof Piscina>[0]> & { filename: string };

/** What a pool worker finds in workerData besides the caller's own fields. */
export interface PoolWorkerData {
  readonly xpmem: DomainHandle;
  readonly xpmemTask: { readonly filename: string; readonly name: string };
}

const POOL_WORKER = new URL('./pool-worker.js', import.meta.url).href;

/** A Piscina whose workers join `domain` on start and are reaped when they exit. */
export function createPool(domain: PoolDomain, options: PoolOptions): Piscina {
  checkOptions('options', options);
  if (options === undefined || (typeof options.filename !== 'string' && !((options.filename as unknown) instanceof URL))) {
    throw invalidArgType('options.filename', 'a path or file URL of the task module', options?.filename);
  }
  if (options.atomics === 'sync') {
    throw Object.assign(new TypeError("options.atomics 'sync' parks idle workers in a blocking Atomics.wait, where their notifiers cannot run; use 'async' (the default here) or 'disabled'"), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  const data: unknown = options.workerData ?? {};
  if (typeof data !== 'object' || data === null) throw invalidArgType('options.workerData', 'an object (xpmem adds its handle to it)', data);
  const xpmemTask = { filename: moduleUrl(options.filename), name: options.name ?? 'default' };
  watchWorkers(domain, 1); // before the constructor, which starts minThreads workers
  try {
    const pool = new Piscina({
      ...options,
      filename: POOL_WORKER,
      name: 'default',
      atomics: options.atomics ?? 'async',
      workerData: { ...data, xpmem: domain.handle(), xpmemTask } satisfies PoolWorkerData,
    });
    let open = true;
    const closed = (): void => {
      if (open) watchWorkers(domain, -1);
      open = false;
    };
    pool.once('close', closed);
    const destroy = pool.destroy.bind(pool); // Piscina's destroy() does not emit 'close'
    pool.destroy = () => destroy().finally(closed);
    return pool;
  } catch (error) {
    watchWorkers(domain, -1);
    throw error;
  }
}

/** Open pools per domain; while any is open, every Worker this thread starts is watched by it. */
const openPools = new Map<PoolDomain, number>();

function onWorker(worker: Worker): void {
  for (const domain of openPools.keys()) domain.watch(worker);
}

/** Counts a pool of `domain` opening (+1) or closing (-1); one process listener serves them all. */
function watchWorkers(domain: PoolDomain, delta: number): void {
  const open = (openPools.get(domain) ?? 0) + delta;
  if (open > 0) openPools.set(domain, open);
  else openPools.delete(domain);
  if (openPools.size > 0 && !listening) process.on('worker', onWorker);
  if (openPools.size === 0) process.off('worker', onWorker);
  listening = openPools.size > 0;
}

let listening = false;

/** The task module as a URL import() accepts. */
function moduleUrl(filename: string | URL): string {
  if (filename instanceof URL) return filename.href;
  if (filename.startsWith('file:')) return filename;
  return pathToFileURL(isAbsolute(filename) ? filename : resolve(filename)).href;
}
