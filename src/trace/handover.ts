/**
 * How the processes of a shared domain hand a trace's events to the process that stops it: each
 * gathers its own threads (the trace's BroadcastChannel reaches no other process) and writes
 * them to a file beside the domain's, `<domain file>.trace-<session>-<pid>` (mode 0600, written
 * whole then renamed into place, so a reader never sees half of one); the stopping process
 * reads each and removes it. The creator's close() removes any a late process left. Runs in the
 * calling thread; never sleeps.
 */
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Flush } from './recorder.js';

/** A thread of the handing process that did not answer its gathering. */
export interface Silent {
  readonly slot: number;
  readonly threadId: number;
  readonly deadlineMs?: number;
}

/** What one process hands over: its threads' events, and which of its threads did not answer. */
export interface HandOver {
  readonly pid: number;
  /** The thread that gathered them, and its track's name. */
  readonly tid: number;
  readonly name: string;
  readonly flushes: readonly Flush[];
  readonly silent: readonly Silent[];
}

/** The file process `pid` hands trace `session` of the domain in `domainFile` over in. */
export function handOverFile(domainFile: string, session: number, pid: number): string {
  return `${domainFile}.trace-${session}-${pid}`;
}

/**
 * Writes `handOver` to `file`, unless another thread of this process writes it already (its
 * staging file exists): false then.
 */
export function writeHandOver(file: string, handOver: HandOver): boolean {
  const staging = `${file}.new`;
  try {
    writeFileSync(staging, JSON.stringify(handOver), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  renameSync(staging, file);
  return true;
}

/** The hand-over in `file`, removed as it is read; undefined while there is none. */
export function takeHandOver(file: string): HandOver | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  rmSync(file, { force: true });
  rmSync(`${file}.new`, { force: true });
  return JSON.parse(text) as HandOver;
}

/** Removes every hand-over file of the domain in `domainFile` (of any trace). */
export function removeHandOvers(domainFile: string): void {
  const prefix = `${basename(domainFile)}.trace-`;
  for (const f of readdirSync(dirname(domainFile))) if (f.startsWith(prefix)) rmSync(join(dirname(domainFile), f), { force: true });
}
