/**
 * Floor 8 of src/ (docs/LAYERS.md), workers/: threads entering and leaving domains: joining
 * (this file), reaping the spaces of a thread that exited, and piscina pools whose workers join
 * on start. Uses floors 1 to 7; the domain it serves is an interface (pool.ts PoolDomain).
 *
 * join: a thread becomes a space of a domain. Idempotent per (thread, domain): a pool task may
 * call it on every run and gets the same Space back.
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { invalidArgType, xpmemError } from '../errors.js';
import { ControlBlock, takeSlot, type DomainHandle } from '../control/control.js';
import {
  SP_AGE,
  SP_AGED,
  SP_AGER,
  SP_EVENTS,
  SP_PARKED,
  SP_GEN,
  SP_HELD,
  SP_NOTIFIERS,
  SP_PID,
  SP_PSTART,
  SP_REAPER,
  SP_RECORD_WAIT,
  SP_STATE,
  SP_THREAD,
  SP_TID,
  SP_TSTART,
  SP_WAIT_ANY,
  H_CLOSED,
  H_SPACE_TOP,
  SPACE_LIVE,
  slotBase,
} from '../layout.js';
import { joinerOf, thisProcess, thisThread } from '../sync/robust.js';
import { Mm } from '../mm.js';
import { blockedWatch } from './process.js';
import { Space } from '../segment/space.js';

const joined = new Map<number, { mm: Mm; space: Space }>();

function isHandle(h: unknown): h is DomainHandle {
  return (
    typeof h === 'object' &&
    h !== null &&
    (h as DomainHandle).control instanceof SharedArrayBuffer &&
    (h as DomainHandle).arena instanceof SharedArrayBuffer &&
    typeof (h as DomainHandle).swapDir === 'string'
  );
}

/** Joins this thread to the domain behind `handle`; returns its Space (the same one on every call). */
export function join(handle: DomainHandle): Space {
  return joinMm(handle).space;
}

/** join(), also returning the internal membership (Domain.create uses it). */
export function joinMm(handle: DomainHandle): { mm: Mm; space: Space } {
  if (!isHandle(handle)) throw invalidArgType('handle', 'a domain handle from domain.handle()', handle);
  const cb = ControlBlock.open(handle);
  if (Atomics.load(cb.words, H_CLOSED) !== 0) throw xpmemError('ERR_XPMEM_CLOSED', 'the domain was closed');
  const known = joined.get(cb.id);
  if (known !== undefined) {
    try {
      known.mm.checkLive();
      return known;
    } catch (error) {
      if (known.mm.state() === 'live') throw error; // leaving (its close() runs): not joined again under it
      joined.delete(cb.id);
    }
  }
  const { layout } = cb;
  // A start tells processes apart, a kernel thread a worker that ended from one that runs: shared domains only.
  const { pid, start } = cb.shared !== undefined ? thisProcess() : { pid: process.pid, start: 0 };
  const { tid, tstart } = thisThread(cb.shared === undefined || isMainThread);
  const { slot, gen } = cb.transact(joinerOf(threadId, cb.shared !== undefined), (tx) => {
    const s = takeSlot(tx, cb.spaceList);
    if (s < 0) throw xpmemError('ERR_XPMEM_NO_MEMORY', `space table full (${layout.spaces.capacity} threads); raise capacity.spaces`);
    const base = slotBase(layout.spaces, s);
    // The slot's atomic words, before the commit publishes it: a joiner killed right after its
    // commit leaves nothing of the slot's last member (its reaper's claim would keep it from
    // ever being reaped, its held sections would hold segments). Nobody reads a free slot's.
    for (const f of [SP_EVENTS, SP_WAIT_ANY, SP_AGE, SP_AGED, SP_AGER, SP_PARKED, SP_RECORD_WAIT, SP_REAPER]) Atomics.store(cb.words, base + f, 0);
    for (let d = 0; d < layout.caps.depth; d++) Atomics.store(cb.words, base + SP_HELD + d, 0);
    if (s >= tx.get(H_SPACE_TOP)) tx.set(H_SPACE_TOP, s + 1);
    tx.set(base + SP_THREAD, threadId);
    tx.set(base + SP_PID, pid);
    tx.set(base + SP_PSTART, start);
    tx.set(base + SP_TID, tid);
    tx.set(base + SP_TSTART, tstart);
    tx.set(base + SP_NOTIFIERS, 0);
    tx.set(base + SP_STATE, SPACE_LIVE); // last: a reader without the mutex (departed(), anyAlive()) sees the slot live only whole
    return { slot: s, gen: tx.get(base + SP_GEN) };
  });
  const mm = new Mm(cb, slot, gen);
  if (cb.shared !== undefined) mm.blocked = blockedWatch(mm);
  const entry = { mm, space: new Space(mm) };
  joined.set(cb.id, entry);
  return entry;
}

/** True while this thread is a live member of domain `id` (its id word, H_ID). */
export function isMember(id: number): boolean {
  return joined.get(id)?.mm.state() === 'live';
}

/** Forgets this thread's membership of domain `id` (close). */
export function forget(id: number): void {
  joined.get(id)?.mm.leave();
  joined.delete(id);
}
