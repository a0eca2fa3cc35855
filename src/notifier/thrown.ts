/** What happens to a notifier callback that throws: it counts as done, and is reported. */

/** Reports `error`, thrown by a notifier callback (or its promise's rejection), as a process warning. Never throws. */
export function reportThrown(error: unknown): void {
  process.emitWarning(`xpmem-threads: a notifier callback threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, 'XpmemNotifierWarning');
}
