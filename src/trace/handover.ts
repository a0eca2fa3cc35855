/**
 * How the processes of a shared domain hand a trace's events to the process that stops it: each
 * gathers its own threads (the trace's BroadcastChannel reaches no other process) and writes
 * them to a file beside the domain's, `<domain file>+trace-<session>-<pid>` (mode 0600, written
 * whole then renamed into place, so a reader never sees half of one); the stopping process
 * reads each and removes it. One Domain of a process hands over: the first to create the
 * claim (`<that file>.claim`). The creator's close() removes any a late process left. Runs in
 * the calling thread; never sleeps.
 *
 * A thread that exits holding events of a trace another process collects (a worker that ends, a
 * main thread whose process exits without leaving the domain) writes them as it goes, in a piece
 * of its process's hand-over: `<that file>.<threadId>`. The stopping process takes the pieces
 * with the hand-overs.
 */
import { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  return `${domainFile}+trace-${session}-${pid}`; // '+' is in no domain's name: no domain's file looks like one
}

/** The piece thread `tid` of process `pid` writes its events of trace `session` in as it exits. */
export function pieceFile(domainFile: string, session: number, pid: number, tid: number): string {
  return `${handOverFile(domainFile, session, pid)}.${tid}`;
}

/** Claims the hand-over in `file` for the calling Domain: false when another Domain of this process claimed it. */
export function claimHandOver(file: string): boolean {
  try {
    closeSync(openSync(`${file}.claim`, 'wx', 0o600));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Writes `handOver` to `file`, whole (staged, then renamed). */
export function writeHandOver(file: string, handOver: HandOver): void {
  const staging = `${file}.new`;
  writeFileSync(staging, JSON.stringify(handOver), { mode: 0o600 });
  renameSync(staging, file);
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
  rmSync(`${file}.claim`, { force: true });
  return JSON.parse(text) as HandOver;
}

/** A hand-over or piece of a trace, as written: its file, its process, and whether it is the process's whole hand-over (else a piece). */
export interface Written {
  readonly file: string;
  readonly pid: number;
  readonly whole: boolean;
}

/** The hand-overs and pieces of trace `session` of the domain in `domainFile` written so far. */
export function handedOver(domainFile: string, session: number): Written[] {
  const prefix = `${basename(domainFile)}+trace-${session}-`;
  return readdirSync(dirname(domainFile)).flatMap((f) => {
    const name = /^(\d+)(\.\d+)?$/.exec(f.slice(prefix.length));
    return f.startsWith(prefix) && name !== null ? [{ file: join(dirname(domainFile), f), pid: Number(name[1]), whole: name[2] === undefined }] : [];
  });
}

/** Removes every hand-over file of the domain in `domainFile` (of any trace), and only those. */
export function removeHandOvers(domainFile: string): void {
  const prefix = `${basename(domainFile)}+trace-`;
  const ours = (f: string): boolean => f.startsWith(prefix) && /^\d+-\d+(\.\d+)?(\.new|\.claim)?$/.test(f.slice(prefix.length));
  for (const f of readdirSync(dirname(domainFile))) if (ours(f)) rmSync(join(dirname(domainFile), f), { force: true });
}
