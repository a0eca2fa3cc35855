/**
 * Processes of a shared domain: who this process is, whether another is still alive, and the
 * spaces each one has. A process is named by its pid and its start time (clock ticks since
 * boot, from /proc/<pid>/stat, mod 2^31): a pid the kernel reused for a new process is not the
 * one that joined. A zombie (killed, not yet waited for by its parent) counts as dead: it runs
 * no more code. Every function here runs in the calling thread and never sleeps.
 */
import { existsSync, readFileSync } from 'node:fs';
import { H_MUTEX, SP_GEN, SP_PID, SP_PSTART, SP_REAPER, SP_STATE, SPACE_DEAD, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';
import { seize } from '../sync/mutex.js';
import type { DeadSpace } from './reap.js';

/** A process as a space records it. */
export interface ProcessId {
  readonly pid: number;
  readonly start: number;
}

/** The start time and state of process `pid`, or undefined when there is none. */
function statOf(pid: number): { start: number; state: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: Number(fields[19]) % 2 ** 31 };
}

let self: ProcessId | undefined;

/** This process (start 0 where /proc is not there to read). */
export function thisProcess(): ProcessId {
  self ??= { pid: process.pid, start: statOf(process.pid)?.start ?? 0 };
  return self;
}

/** True while process `who` runs: its pid exists, started when it says, and is not a zombie. */
export function alive(who: ProcessId): boolean {
  const stat = statOf(who.pid);
  return stat !== undefined && stat.start === who.start && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * The processes of the live spaces of a control block, with their space slots; this process's
 * only with `withSelf`. A process that left (close(): its pid recorded negated) is listed with
 * `left` true.
 */
function memberProcesses(words: Int32Array, layout: Layout, withSelf: boolean): Map<number, ProcessId & { readonly slots: number[]; left: boolean }> {
  const found = new Map<number, ProcessId & { slots: number[]; left: boolean }>();
  const me = thisProcess().pid;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    const base = slotBase(layout.spaces, s);
    if (Atomics.load(words, base + SP_STATE) !== SPACE_LIVE) continue;
    const recorded = Atomics.load(words, base + SP_PID);
    const pid = Math.abs(recorded);
    if (pid === me && recorded > 0 && !withSelf) continue;
    let entry = found.get(pid);
    if (entry === undefined) {
      entry = { pid, start: Atomics.load(words, base + SP_PSTART), slots: [], left: false };
      found.set(pid, entry);
    }
    entry.slots.push(s);
    if (recorded < 0) entry.left = true;
  }
  return found;
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

/** A process of a shared domain that died or left, with the spaces it still has. */
export interface Departed {
  readonly pid: number;
  readonly spaces: DeadSpace[];
}

/**
 * The processes of a shared domain whose spaces are to be reaped: dead (alive() false) or left
 * (close()); and spaces whose reaper died midway (dead, unclaimed: reap.ts releaseClaims), each
 * listed under its own process. Reads the space table only; never sleeps.
 */
export function departed(words: Int32Array, layout: Layout): Departed[] {
  const found: Departed[] = [];
  const named = (slot: number): DeadSpace => ({ slot, gen: Atomics.load(words, slotBase(layout.spaces, slot) + SP_GEN) });
  for (const member of memberProcesses(words, layout, false).values()) {
    if (!member.left && alive(member)) continue;
    found.push({ pid: member.pid, spaces: member.slots.map(named) });
  }
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    const base = slotBase(layout.spaces, s);
    if (Atomics.load(words, base + SP_STATE) === SPACE_DEAD && Atomics.load(words, base + SP_REAPER) === 0) found.push({ pid: Math.abs(Atomics.load(words, base + SP_PID)), spaces: [named(s)] });
  }
  return found;
}

/** True while some process (this one included) has a live space in the domain, has not left it, and runs. Never sleeps. */
export function anyAlive(words: Int32Array, layout: Layout): boolean {
  for (const member of memberProcesses(words, layout, true).values()) if (!member.left && alive(member)) return true;
  return false;
}

/**
 * Frees the domain mutex if a process that died while joining holds it (it had no space yet, so
 * no reap would): its identity names its pid (join.ts joinerOf), and no process of that pid runs.
 * Never sleeps.
 */
export function seizeDeadJoiner(words: Int32Array, layout: Layout, me: number): void {
  const holder = Atomics.load(words, H_MUTEX);
  if (holder >= 0) return;
  const pid = joinerProcess(holder);
  if (pid === (process.pid & 0x3fffff) || (existsSync(`/proc/${pid}/stat`) && statOf(pid)?.state !== 'Z')) return;
  seize(words, layout, holder, me);
}
