/**
 * The module every pool worker loads first (createPool gives it to Piscina as `filename`, which
 * Piscina loads when the worker starts): it joins the domain, imports the user's task module, and
 * runs each task through the chosen handler inside a task scope (segment/scope.ts).
 * Runs in the pool worker's thread only.
 */
import { workerData } from 'node:worker_threads';
import { invalidArgType } from '../errors.js';
import { join } from './join.js';
import { inScope } from '../segment/scope.js';
import type { PoolWorkerData } from './pool.js';

const data = workerData as PoolWorkerData;
join(data.xpmem);
const taskModule = (await import(data.xpmemTask.filename)) as Record<string, unknown>;
const handler = taskModule[data.xpmemTask.name];
if (typeof handler !== 'function') throw invalidArgType(`export '${data.xpmemTask.name}' of ${data.xpmemTask.filename}`, 'a task function', handler);

/** Runs one task; what it got and attached is released when it settles. */
export default function run(task: unknown): Promise<unknown> {
  return inScope(() => (handler as (task: unknown) => unknown)(task));
}
