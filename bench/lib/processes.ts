/**
 * Attacher processes for the benchmarks of shared domains: Node processes forked with advanced
 * serialization, each running bench/fixtures/process-attacher.ts (it opens the shared domain
 * named, then answers commands), driven through the Attacher of lib/attachers.ts. end() kills
 * one and waits for its exit, bounded; any still running when this process exits are killed.
 */
import { fork, type ChildProcess, type Serializable } from 'node:child_process';
import { Attacher, BOUND_MS } from './attachers.js';
import { bounded } from './bounded.js';

const FIXTURE = new URL('../fixtures/process-attacher.js', import.meta.url);

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Forks an attacher process that opens shared domain `name` (and attaches segment `open`, if
 * given, timing both); with `words`, the words it shares with the bench are the first of that
 * segment (lib/wake.ts arenaWords), woken through the futex system call.
 */
export function attacherProcess(name: string, { open, words }: { open?: number; words?: number } = {}): Attacher {
  const child = fork(FIXTURE, [name, String(open ?? -1), String(words ?? -1)], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  return new Attacher(
    child,
    (m) => child.send(m as Serializable),
    async () => {
      child.kill('SIGKILL');
      await bounded(exited, 'attacher process exit', BOUND_MS);
    },
  );
}
