/**
 * Task scopes: what a pool task gets (accesses) and attaches during one run is released when the
 * run settles, so a task that forgets, throws or is aborted leaks no grant or attachment; what it
 * gets or attaches with { keep: true } is not tracked, and lives until released or the thread
 * exits. Uses AsyncLocalStorage, so concurrent tasks of one worker keep separate scopes across
 * their awaits. Outside a scope, tracking is one getStore() call and nothing else.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { checkOptions, invalidArgType } from '../errors.js';
import { checkKeys } from '../options.js';

/** Options of space.get() and space.attach(). */
export interface KeepOptions {
  /**
   * Keep the handle when the pool task that made it settles (default false): it lives until
   * detach() / release(), or until its thread exits. Outside a pool task nothing is released
   * for you, so it changes nothing there.
   */
  keep?: boolean;
}

/** The keys a KeepOptions object may have. */
const KEEP_KEYS: Readonly<Record<keyof KeepOptions, true>> = { keep: true };

/** Validates space.get()'s and space.attach()'s options (`name` is the argument's name); returns `keep`. */
export function keepOf(name: string, opts: unknown): boolean {
  checkOptions(name, opts);
  if (opts === undefined) return false;
  checkKeys(name, opts as object, KEEP_KEYS);
  const { keep } = opts as KeepOptions;
  if (keep !== undefined && typeof keep !== 'boolean') throw invalidArgType(`${name}.keep`, 'of type boolean', keep);
  return keep === true;
}

/** What a handle's ERR_XPMEM_DETACHED says when its task's scope released it: the cause and the cure. */
export function releasedByTask(what: string, verb: string): string {
  return `${what} was released when the task that ${verb} it settled; pass { keep: true } to keep it across tasks`;
}

const scopes = new AsyncLocalStorage<(() => void)[]>();

/** Registers `close` to run when the current task scope ends (no-op outside one). */
export function track(close: () => void): void {
  scopes.getStore()?.push(close);
}

/**
 * Runs `fn` in a fresh scope; when it settles, closes what it opened, newest first (attachments
 * before the accesses they came from). An attachment with a section still open (an async
 * section the task did not await) is detached when that section ends, and its access released
 * after it (Attachment.detachWhenIdle, Access.releaseWhenIdle).
 */
export async function inScope<T>(fn: () => T | Promise<T>): Promise<T> {
  const opened: (() => void)[] = [];
  try {
    return await scopes.run(opened, fn);
  } finally {
    for (const close of opened.reverse()) quietly(close);
  }
}

/** Runs a cleanup; its failure (e.g. a timeout on the domain mutex) becomes a process warning. */
export function quietly(close: () => void): void {
  try {
    close();
  } catch (error) {
    process.emitWarning(`xpmem-threads: cleaning up after a pool task failed: ${String(error)}`, 'XpmemPoolWarning');
  }
}
