/**
 * How the bench and its echoing attachers sleep on and wake the words they share
 * (fixtures/protocol.ts: RING, ANSWERS): Atomics.waitAsync/notify between the threads of one
 * process, the library's futex routing (src/sync/futex.ts: the native addon's io_uring waits and
 * futex wakes) between processes, whose words lie in the shared domain's arena. Any thread;
 * waitAsync never blocks.
 */
import type { Domain } from '../../src/index.js';
import { notify, shareAcrossProcesses, waitAsync } from '../../src/sync/futex.js';
import { ANSWERS, RING, WORDS } from '../fixtures/protocol.js';

export interface Wake {
  /** Resolves once word `index` no longer holds `seen` (or at a spurious wake: callers re-check). */
  waitAsync(words: Int32Array, index: number, seen: number): Promise<unknown>;
  /** Wakes the sleepers on word `index`. */
  notify(words: Int32Array, index: number): void;
}

/** Between threads: Atomics.waitAsync and Atomics.notify. */
export const atomics: Wake = {
  waitAsync: async (words, index, seen) => {
    const w = Atomics.waitAsync(words, index, seen);
    if (w.async) await w.value;
  },
  notify: (words, index) => void Atomics.notify(words, index),
};

/** Between processes: the futex system call, through the library's routing. */
export const futex: Wake = {
  waitAsync: (words, index, seen) => waitAsync(words, index, seen, Infinity),
  notify,
};

/**
 * The shared words in segment `segId` of shared domain `domain` (its first WORDS words, never
 * moved: the bench never migrates it), with their buffer's waits routed to other processes.
 */
export function arenaWords(domain: Domain, segId: number): Int32Array {
  const { arena } = domain.handle();
  shareAcrossProcesses(arena);
  const row = domain.maps().find((r) => r.kind === 'segment' && r.segId === segId);
  if (row === undefined || row.offset < 0) throw new Error(`segment ${segId} is not resident`);
  return new Int32Array(arena, row.offset, WORDS);
}

/** Rings RING; returns the answer count that `echoes` answers reach (each echo answers a ring once). */
export function ring(words: Int32Array, wake: Wake, echoes: number): number {
  const all = Atomics.load(words, ANSWERS) + echoes;
  Atomics.add(words, RING, 1);
  wake.notify(words, RING);
  return all;
}

/** One ring answered by `echoes` echoing attachers, waiting without blocking. */
export async function ringAnswered(words: Int32Array, wake: Wake, echoes = 1): Promise<void> {
  const all = ring(words, wake, echoes);
  for (let seen = Atomics.load(words, ANSWERS); seen < all; seen = Atomics.load(words, ANSWERS)) await wake.waitAsync(words, ANSWERS, seen);
}
