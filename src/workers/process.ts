/**
 * Processes of a shared domain: the spaces each one has, which of them died or left (their
 * spaces to be reaped), and whether any still runs. Who a process is and whether it runs is
 * sync/robust.ts. Every function here runs in the calling thread and never sleeps.
 */
import { SP_REAPER, SP_STATE, SPACE_DEAD, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';
import { alive, ofThisProcess, threadRuns, type ProcessId } from '../sync/robust.js';
import type { BlockedWatch } from '../notifier/wait.js';
import type { Mm } from '../mm.js';
import { spaceNow, stopDead, type DeadSpace } from './reap.js';

/** How often a process of a shared domain looks for processes that died or left (ms): its watcher's period, and a blocked thread's. */
export const WATCH_MS = 50;

/** A process's live spaces, as found: those still in the domain, and those that left it (close(): their pid recorded negated). */
interface Member extends ProcessId {
  readonly staying: DeadSpace[];
  readonly left: DeadSpace[];
}

/**
 * The processes of the live spaces of a control block, this one's included, with their space
 * slots. A process is its pid and its start time: one that died and the one the kernel then
 * started on its pid are two.
 */
function memberProcesses(words: Int32Array, layout: Layout): Map<string, Member> {
  const found = new Map<string, Member>();
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) !== SPACE_LIVE) continue;
    const space = spaceNow(words, layout, s);
    const pid = Math.abs(space.pid);
    const key = `${pid}:${space.start}`;
    let entry = found.get(key);
    if (entry === undefined) {
      entry = { pid, start: space.start, staying: [], left: [] };
      found.set(key, entry);
    }
    (space.pid < 0 ? entry.left : entry.staying).push(space);
  }
  return found;
}

/**
 * How often this thread looks at the kernel threads of live processes' workers (ms), at most:
 * each look reads one /proc file per worker space, where a process's liveness reads one per
 * process.
 */
const THREAD_WATCH_MS = 200;
/** When this thread last looked at them (performance.now()). */
let threadsSeen = Number.NEGATIVE_INFINITY;

/** A process of a shared domain that died or left, with the spaces it still has. */
export interface Departed {
  readonly pid: number;
  readonly spaces: DeadSpace[];
}

/**
 * The spaces of a shared domain to be reaped: every space of a dead process (alive() false),
 * of a live one (this one included) the spaces that left (close()) and those of worker threads
 * that ended (a worker that joined by itself, with no Domain of its process watching it; looked
 * at every THREAD_WATCH_MS), and
 * spaces whose reaper died midway (dead, unclaimed: reap.ts releaseClaims), each listed under
 * its own process. Reads the space table and /proc only; never sleeps.
 */
export function departed(words: Int32Array, layout: Layout): Departed[] {
  const found: Departed[] = [];
  const now = performance.now();
  const threads = now - threadsSeen >= THREAD_WATCH_MS;
  if (threads) threadsSeen = now;
  for (const member of memberProcesses(words, layout).values()) {
    const runs = ofThisProcess(member.pid, member.start) || alive(member);
    const gone = !runs ? [...member.staying, ...member.left] : threads ? [...member.left, ...member.staying.filter((space) => !threadRuns(member.pid, space))] : member.left;
    if (gone.length > 0) found.push({ pid: member.pid, spaces: gone });
  }
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    const base = slotBase(layout.spaces, s);
    if (Atomics.load(words, base + SP_STATE) !== SPACE_DEAD || Atomics.load(words, base + SP_REAPER) !== 0) continue;
    const space = spaceNow(words, layout, s);
    found.push({ pid: Math.abs(space.pid), spaces: [space] });
  }
  return found;
}

/**
 * What `me`'s synchronous waits do while they block its event loop, and with it its process's
 * watcher: every WATCH_MS, the spaces of processes that died are stopped (reap.ts stopDead),
 * so that a wait for one of them goes on; a watcher reaps the rest once a loop turns.
 */
export function blockedWatch(me: Mm): BlockedWatch {
  return {
    everyMs: WATCH_MS,
    look: (deadline) => {
      if (me.state() !== 'live') return;
      try {
        for (const { spaces } of departed(me.words, me.layout)) for (const dead of spaces) stopDead(me, dead, deadline);
      } catch (error) {
        if ((error as { code?: string }).code !== 'ERR_XPMEM_TIMEOUT') throw error; // the mutex, past the wait's deadline: the wait says so
      }
    },
  };
}

/** True while some process (this one included) has a live space in the domain, has not left it, and runs. Never sleeps. */
export function anyAlive(words: Int32Array, layout: Layout): boolean {
  for (const member of memberProcesses(words, layout).values()) if (member.staying.length > 0 && alive(member)) return true;
  return false;
}

/** True while a space of the domain is dead and not yet freed, or belongs to a process that died or left. Never sleeps. */
export function unreaped(words: Int32Array, layout: Layout): boolean {
  for (let s = 0, top = spaceTop(words); s < top; s++) if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_DEAD) return true;
  return departed(words, layout).length > 0;
}
