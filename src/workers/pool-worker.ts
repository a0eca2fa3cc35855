/**
 * The module every pool worker loads first (createPool gives it to Piscina as `filename`, which
 * Piscina loads when the worker starts): it joins the domain and runs each task through the
 * handler its run names, imported once per task module, inside a task scope
 * (segment/scope.ts); a task's error goes back whole (carry.ts).
 * Runs in the pool worker's thread only.
 */
import { workerData } from 'node:worker_threads';
import { invalidArgValue } from '../errors.js';
import { join } from './join.js';
import { inScope } from '../segment/scope.js';
import { carry } from './carry.js';
import type { PoolRun, PoolWorkerData } from './pool.js';

const data = workerData as PoolWorkerData;
// Started after its pool or its domain closed (Piscina replacing a worker that exited): nothing
// to run, and nothing to report: a throw here would be an 'error' event on the pool.
if (Atomics.load(data.xpmemClosed, 0) !== 0) process.exit(0);
try {
  join(data.xpmem);
} catch (error) {
  if ((error as { code?: unknown }).code === 'ERR_XPMEM_CLOSED') process.exit(0);
  throw error;
}

/** Task modules by URL, imported once each. */
const modules = new Map<string, Promise<Record<string, unknown>>>();

function load(filename: string): Promise<Record<string, unknown>> {
  let module = modules.get(filename);
  if (module === undefined) {
    module = import(filename) as Promise<Record<string, unknown>>;
    modules.set(filename, module);
  }
  return module;
}

load(data.xpmemTask.filename).catch(() => {}); // imported as the worker starts; a failure is the first task's error

/** The function `name` of task module `filename`. */
async function handler(filename: string, name: string): Promise<(task: unknown) => unknown> {
  const fn = (await load(filename))[name];
  if (typeof fn !== 'function') {
    throw invalidArgValue('name', `the name of a function ${filename} exports`, `'${name}' (${typeof fn === 'undefined' ? 'no such export' : typeof fn})`);
  }
  return fn as (task: unknown) => unknown;
}

/** Runs one task; what it got and attached is released when it settles. */
export default async function run(envelope: PoolRun): Promise<unknown> {
  try {
    const fn = await handler(envelope.filename, envelope.name);
    return await inScope(() => fn(envelope.task));
  } catch (error) {
    throw carry(error);
  }
}
