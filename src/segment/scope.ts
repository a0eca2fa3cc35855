/**
 * Task scopes: what a pool task gets (accesses) and attaches during one run is released when the
 * run settles, so a task that forgets, throws or is aborted leaks no grant or attachment. Uses
 * AsyncLocalStorage, so concurrent tasks of one worker keep separate scopes across their awaits.
 * Outside a scope, tracking is one getStore() call and nothing else.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

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
