/**
 * Processes as the domain mutex knows them, for shared domains (the robust futex's part): who
 * this process is, whether another still runs, and which process a mutex identity names.
 *
 * A process is named by its pid and its start time (clock ticks since boot, from
 * /proc/<pid>/stat, mod 2^31): a pid the kernel reused for a new process is not the one that
 * joined. A zombie (killed, not yet waited for by its parent) counts as dead: it runs no more
 * code. Every function here runs in the calling thread and never sleeps.
 */
import { H_JOINER_OWNER, H_JOINER_START, H_JOINER_THREAD, H_MUTEX, SP_PID, SP_PSTART, SP_TID, SP_TSTART, slotBase, type Layout } from '../layout.js';
import { constants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { native } from './native.js';

/** A process as a space records it. */
export interface ProcessId {
  readonly pid: number;
  readonly start: number;
}

/** The errors of reading a task's /proc stat that say it is gone; any other (EMFILE: out of file descriptors) says only that it could not be looked at. */
const GONE = new Set([constants.errno.ENOENT, constants.errno.ESRCH]);

/**
 * The start time and state of the process or thread `task` (`<pid>` or `<pid>/task/<tid>`),
 * undefined when there is none, or 'unseen' when it could not be looked at (read through the
 * addon: shared domains only).
 */
function statOf(task: string | number): { start: number; state: string } | undefined | 'unseen' {
  const text = native().readText(`/proc/${task}/stat`);
  if (typeof text === 'number') return GONE.has(text) ? undefined : 'unseen';
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: Number(fields[19]) % 2 ** 31 };
}

/** Task `task`'s start time, or 0 when it cannot be read. */
function startOf(task: string | number): number {
  const stat = statOf(task);
  return typeof stat === 'object' ? stat.start : 0;
}

/**
 * True while task `task` runs code (not a zombie, not dead) with a start time that `started`
 * accepts (any, without it). A task that could not be looked at counts as running: one that
 * cannot be seen is never taken for dead, its spaces reaped or its mutex taken under it.
 */
function taskRuns(task: string | number, started: (start: number) => boolean = () => true): boolean {
  const stat = statOf(task);
  if (stat === 'unseen') return true;
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && started(stat.start);
}

let self: ProcessId | undefined;

/** This process (start 0 where /proc is not there to read). */
export function thisProcess(): ProcessId {
  self ??= { pid: process.pid, start: startOf(process.pid) };
  return self;
}

/**
 * True when a space or a joiner recording pid `pid` and start `start` is of this process: a
 * process that died on this pid before it is not (start 0: a threads-only domain's, which only
 * this process joins).
 */
export function ofThisProcess(pid: number, start: number): boolean {
  return pid === process.pid && (start === 0 || start === thisProcess().start);
}

/** True while some process that runs code has pid `pid` (whichever it is). */
export function pidRuns(pid: number): boolean {
  return taskRuns(pid);
}

/** A worker thread as the kernel knows it: its id (gettid) and start time; tid 0 for a main thread. */
export interface KernelThread {
  readonly tid: number;
  readonly tstart: number;
}

let thread: KernelThread | undefined;

/** This thread as a space of a shared domain records it: a worker by its kernel id and start, the main thread as tid 0 (it lives as long as its process). */
export function thisThread(main: boolean): KernelThread {
  if (main) return { tid: 0, tstart: 0 };
  if (thread === undefined) {
    const tid = native().kernelThread();
    thread = { tid, tstart: startOf(`${process.pid}/task/${tid}`) };
  }
  return thread;
}

/** The low bits of a thread's start time a joiner publishes beside its tid, in one word. */
const JOINER_TSTART_BITS = 9;
const JOINER_TSTART_MASK = (1 << JOINER_TSTART_BITS) - 1;

/**
 * What a thread joining a shared domain publishes while it holds the mutex: its process's start
 * time, and its kernel thread (thisThread) in one word, its tid and its start time's low 9 bits
 * (0 for a main thread): one word, so a reader never pairs one joiner's tid with another's start.
 */
export function joiningThread(): { readonly start: number; readonly thread: number } {
  const { tid, tstart } = thisThread(isMainThread);
  return { start: thisProcess().start, thread: tid === 0 ? 0 : (tid << JOINER_TSTART_BITS) | (tstart & JOINER_TSTART_MASK) };
}

/**
 * True while the joining thread `thread` (a word of joiningThread()) of process `pid` may run:
 * always a main thread; else its tid runs with a start time whose low bits match (a thread that
 * reused the tid matches one time in 512, and then counts as running).
 */
function joinerRuns(pid: number, thread: number): boolean {
  if (thread === 0) return true;
  return taskRuns(`${pid}/task/${thread >>> JOINER_TSTART_BITS}`, (start) => (start & JOINER_TSTART_MASK) === (thread & JOINER_TSTART_MASK));
}

/** True while worker thread `who` of process `pid` runs (tid 0: a main thread, which runs while its process does). */
export function threadRuns(pid: number, who: KernelThread): boolean {
  if (who.tid === 0) return true;
  return taskRuns(`${pid}/task/${who.tid}`, (start) => start === who.tstart);
}

/** True while process `who` runs: its pid exists, started when it says, and is not a zombie. */
export function alive(who: ProcessId): boolean {
  return taskRuns(who.pid, (start) => start === who.start);
}

/**
 * The mutex identity of thread `threadId` of this process before it has a space (its join
 * transaction). Threads only: one per thread. In a shared domain (`shared`) it also names the
 * process: its pid's low 22 bits (pid_max is at most 2^22) and the threadId's low 8 bits, so a
 * dead process's joins are told apart from every other process's (joinerProcess()); two threads
 * of one process whose ids differ by a multiple of 256 share it, which matters only if one of
 * them exits at the instant the other is joining.
 */
export function joinerOf(threadId: number, shared: boolean): number {
  return shared ? -(2 + (process.pid & 0x3fffff) * 256 + (threadId & 0xff)) : -(threadId + 2);
}

/** The pid's low 22 bits of a shared domain's joiner identity `id` (a negative mutex identity). */
export function joinerProcess(id: number): number {
  return Math.floor((-id - 2) / 256);
}

/**
 * True when the mutex word value `holder` names a holder in a shared domain that no longer runs:
 * a space (holder - 1) whose recorded process died, or a worker's whose kernel thread ended (this
 * process's too: a worker that joined by itself is watched by nobody's exit event), or a joiner
 * whose process died or whose kernel thread ended. A joiner's identity names its pid only; the
 * start time it published with its hold (H_JOINER_START) says whether the process on that pid
 * now is still the one that took the mutex, and the kernel thread beside it whether the joining
 * thread still runs. Until they are published, the joiner counts as running while any process
 * runs on its pid; a joiner of this process counts as running.
 */
export function holderDied(words: Int32Array, layout: Layout, holder: number): boolean {
  if (holder > 0) {
    const base = slotBase(layout.spaces, holder - 1);
    const at = (field: number): number => Atomics.load(words, base + field);
    const who = { pid: Math.abs(at(SP_PID)), start: at(SP_PSTART) };
    return (!ofThisProcess(who.pid, who.start) && !alive(who)) || !threadRuns(who.pid, { tid: at(SP_TID), tstart: at(SP_TSTART) });
  }
  const pid = joinerProcess(holder);
  const owner = Atomics.load(words, H_JOINER_OWNER); // first: stored last by the holder, cleared first at its unlock
  const start = Atomics.load(words, H_JOINER_START);
  const thread = Atomics.load(words, H_JOINER_THREAD);
  if (Atomics.load(words, H_MUTEX) !== holder) return false; // another holding since: look again
  if (owner !== holder || start === 0) return pid !== (process.pid & 0x3fffff) && !pidRuns(pid); // not published (a seizer, or not yet)
  return (!ofThisProcess(pid, start) && !alive({ pid, start })) || !joinerRuns(pid, thread);
}
