/**
 * Processes entering a shared domain: its creation (a staged file, formatted, joined, then
 * published; a dead creator's leftover taken over) and its opening by another process. The file
 * itself is control/shm.ts; the processes' liveness is process.ts. Runs in the calling thread;
 * may block briefly on another process's takeover (flock) or on the domain mutex (the join).
 */
import { rmSync } from 'node:fs';
import { xpmemError } from '../errors.js';
import { discardAll } from '../control/swapfile.js';
import { ControlBlock, type FormatOptions } from '../control/control.js';
import { mapFile, publish, shmPath, stage, underLock, unlinkName, type Descriptor } from '../control/shm.js';
import { H_CLOSED, H_ID, VERSION, capacitiesOf, layoutFor, type Capacities } from '../layout.js';
import { native } from '../sync/native.js';
import { forget, isMember, joinMm } from './join.js';
import { anyAlive } from './process.js';
import { alive, thisProcess } from '../sync/robust.js';
import type { Mm } from '../mm.js';
import type { Space } from '../segment/space.js';

/** A process's membership of a shared domain, as create and open return it. */
export interface SharedJoin {
  readonly cb: ControlBlock;
  readonly mm: Mm;
  readonly space: Space;
  /** The file's path. */
  readonly path: string;
  /** The file's inode (the creator's: its close() removes the name only while it names that file). */
  readonly ino?: number;
}

/** How many times create retries publishing while takeovers race (each try ends a different file). */
const PUBLISH_TRIES = 8;

/**
 * Creates shared domain `name` and joins this thread to it: the file is staged, formatted and
 * joined before it is published, so no opener sees it half made. A file of that name whose
 * processes all died (or that was closed) is taken over; one in use is ERR_XPMEM_EXISTS.
 */
export function createShared(name: string, caps: Capacities, format: FormatOptions, ownSwapDir: boolean): SharedJoin {
  const path = shmPath(name);
  const memory = stage(path, layoutFor(caps).words * 4, { arenaBytes: format.maxArenaBytes, creator: thisProcess(), deadlineMs: format.deadlineMs, swapDir: format.swapDir, ownSwapDir });
  try {
    const cb = ControlBlock.format(caps, format, { control: memory.control, arena: memory.arena, shared: name });
    const joined = joinMm(cb.handle);
    try {
      for (let tries = 1; !publish(memory.staging, path); tries++) {
        const verdict = underLock(path, name, format.deadlineMs, (fd, descriptor) => {
          if (inUse(fd, name, descriptor)) return 'in use';
          unlinkName(path);
          discardSwap(fd, name, descriptor);
          return 'taken over';
        });
        if (verdict === 'in use' || tries === PUBLISH_TRIES)
          throw xpmemError('ERR_XPMEM_EXISTS', `shared domain '${name}' exists and a process of it runs: join it with Domain.open('${name}'), or create one of another name`);
      }
    } catch (error) {
      forget(cb.id);
      throw error;
    }
    return { cb, ...joined, path, ino: memory.ino };
  } finally {
    unlinkName(memory.staging);
  }
}

/**
 * A taken-over domain's swap: its swap dir when its creator made it, else its swap files in the
 * dir it was given. Nothing of a file another layout version made (its words mean other things).
 */
function discardSwap(fd: number, name: string, descriptor: Descriptor): void {
  if (descriptor.version !== VERSION) return;
  if (descriptor.ownSwapDir) rmSync(descriptor.swapDir, { recursive: true, force: true });
  else discardAll(descriptor.swapDir, Atomics.load(new Int32Array(mapFile(fd, name, descriptor).control), H_ID));
}

/** True when the domain in file `fd` has a process that runs and has not left it (a closed domain has none). */
function inUse(fd: number, name: string, descriptor: Descriptor): boolean {
  if (descriptor.version !== VERSION) return alive(descriptor.creator); // its members cannot be read: its creator stands for them
  const words = new Int32Array(mapFile(fd, name, descriptor).control);
  return Atomics.load(words, H_CLOSED) === 0 && anyAlive(words, layoutFor(capacitiesOf(words)));
}

/**
 * Joins this thread to the shared domain `name`, made by another process: ERR_XPMEM_NO_DOMAIN
 * when there is none (or none of its processes runs), ERR_XPMEM_INCOMPATIBLE when another layout
 * version made it, ERR_XPMEM_CLOSED when its creator closed it. `deadlineMs`: this process's
 * default bound of every wait (default: the creator's). It looks at the domain's processes and
 * joins under the file's flock, as a takeover decides: no takeover finds the domain unused while
 * this process joins it, to replace its file after (ERR_XPMEM_TIMEOUT when a takeover held the
 * lock past the bound).
 */
export function openShared(name: string, deadlineMs: number | undefined): SharedJoin {
  const path = shmPath(name, 'name');
  native();
  for (let tries = 1; ; tries++) {
    const joined = underLock(path, name, deadlineMs ?? OPEN_LOCK_MS, (fd, descriptor) => joinFile(fd, name, descriptor, deadlineMs));
    if (joined !== undefined) return { ...joined, path };
    if (tries === PUBLISH_TRIES) throw xpmemError('ERR_XPMEM_NO_DOMAIN', `shared domain '${name}' was replaced ${tries} times while this process opened it: try again`);
  }
}

/** How long an open waits for a takeover holding the file's lock, by default. */
const OPEN_LOCK_MS = 10_000;

/** openShared() of the open file `fd`, under its lock. */
function joinFile(fd: number, name: string, descriptor: Descriptor, deadlineMs: number | undefined): Omit<SharedJoin, 'path'> {
  const { control, arena } = mapFile(fd, name, descriptor);
  const words = new Int32Array(control);
  if (Atomics.load(words, H_CLOSED) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', `shared domain '${name}' was closed by its creator`);
  if (isMember(Atomics.load(words, H_ID))) throw xpmemError('ERR_XPMEM_EXISTS', `this thread is in shared domain '${name}' already (it created or opened it): use that Domain`);
  if (!anyAlive(words, layoutFor(capacitiesOf(words))))
    throw xpmemError('ERR_XPMEM_NO_DOMAIN', `shared domain '${name}' has no process left (its creator was killed): Domain.create({ shared: '${name}' }) takes it over`);
  const joined = joinMm({ control, arena, deadlineMs: deadlineMs ?? descriptor.deadlineMs, swapDir: descriptor.swapDir, shared: name });
  return { cb: joined.mm.cb, ...joined };
}
