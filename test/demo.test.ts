/** `npm run demo` and the examples tell their whole story and exit: they are part of what must work. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BOUND } from './helpers.js';

/** Runs built example `name` with `env`; resolves with its stdout (rejects on a non-zero exit, with what it printed). */
async function run(name: string, env: Record<string, string> = {}): Promise<string> {
  const file = new URL(`../dist/examples/${name}.js`, import.meta.url);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file.pathname], { timeout: BOUND, env: { ...process.env, ...env } });
    return stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${(error as Error).message}\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

describe('the demo and examples', () => {
  it('demo: exports, attaches, migrates, protects and revokes with real workers, then exits cleanly', async () => {
    const stdout = await run('demo');
    for (const step of ['pattern verified', 'migrate: done', 'pattern intact', 'ERR_XPMEM_PERMISSION', 'ERR_XPMEM_REMOVED', 'domain.check(): consistent']) {
      expect(stdout).toContain(step);
    }
    expect(stdout).toContain('(0 lost)');
  });

  it('parallel-sum: a pool sums a segment in place, also while it is migrated, against plain SAB and clones', async () => {
    const stdout = await run('parallel-sum', { MIB: '8' });
    expect(stdout.match(/sum correct/g)).toHaveLength(4);
    expect(stdout).toContain('was migrated while tasks ran');
    expect(stdout).toContain('check: consistent');
  });

  it('cache-driver: a cache dropped in invalidateStart and rebuilt after the end is never stale', async () => {
    const stdout = await run('cache-driver', { STEPS: '150' });
    expect(stdout).toMatch(/answered 150 queries from its cache: 0 stale/);
    expect(stdout).toContain('check: consistent');
  });

  it('cluster: worker processes answer from a shared table replaced under load, never from a removed one', async () => {
    const stdout = await run('cluster', { WORKERS: '2', REPLACE: '3', REQUESTS: '200', KEYS: '1000' });
    expect(stdout).toMatch(/cluster: \d+ answers, 0 wrong, 0 stale, versions seen: 1\.\.4/);
    expect(stdout).toContain('workers exited with 0, 0');
    expect(stdout).toContain('domain.check(): consistent');
    const name = /shared domain '([^']+)'/.exec(stdout)?.[1];
    expect(name).toBeDefined();
    expect(existsSync(`/dev/shm/xpmem-threads.${name}`)).toBe(false);
  });
});
