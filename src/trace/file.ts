/**
 * XPMEM_TRACE=<file>: a trace of a whole run, with no change to the program. The domain starts
 * recording when it is created and writes the file when it closes; a program that never closes
 * it gets the file when its event loop runs dry (beforeExit: every thread is asked, as by
 * stop()), or, when it exits at once (process.exit()), with what this thread holds and what
 * exited workers sent. Runs in the thread that created the domain.
 */
import { writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Trace, Tracing } from './session.js';

/** Writes `tracing`'s trace to `path` once: at close (the returned function), beforeExit or exit. */
export function traceToFile(tracing: Tracing, path: string): () => Promise<void> {
  let written: Promise<void> | undefined;
  const write = (): Promise<void> => {
    written ??= tracing.stop().then((trace) => writeFile(path, text(trace)));
    return written;
  };
  const beforeExit = (): void => void write();
  const exit = (): void => {
    if (written === undefined) writeFileSync(path, text(tracing.snapshot()));
  };
  process.once('beforeExit', beforeExit);
  process.once('exit', exit);
  return () => {
    process.off('beforeExit', beforeExit);
    process.off('exit', exit);
    return write();
  };
}

function text(trace: Trace): string {
  return JSON.stringify(trace);
}
