/**
 * Operations as a program meets them now and then: one operation per sample, each after an
 * untimed pause of `gapMs` (the other thread has parked meanwhile), timed alone. And a load:
 * one CPU-bound process per core for as long as a figure runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Task } from './measure.js';

/** A task timing one `op` per sample, `gapMs` after the previous one (the pause is not timed). */
export function spaced(name: string, gapMs: number, op: () => Promise<unknown>): Task {
  return {
    name,
    batch: 1,
    async: true,
    run: async () => {
      await new Promise((resolve) => setTimeout(resolve, gapMs));
      const t0 = performance.now();
      await op();
      return { overriddenDuration: performance.now() - t0 };
    },
  };
}

/** Busy processes, one per core (`node -e 'for (;;);'`), until the returned function stops them. */
export async function loadEveryCore(): Promise<() => Promise<void>> {
  const hogs: ChildProcess[] = Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }));
  await Promise.all(
    hogs.map(
      (h) =>
        new Promise<void>((resolve, reject) => {
          h.once('spawn', resolve);
          h.once('error', reject);
        }),
    ),
  );
  return async () => {
    await Promise.all(
      hogs.map(
        (h) =>
          new Promise<void>((resolve) => {
            h.once('exit', () => resolve());
            h.kill('SIGKILL');
          }),
      ),
    );
  };
}
