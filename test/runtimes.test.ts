/**
 * The runtime the suite runs on. .ci/run runs the suite once per Node line, with that line's
 * node first on PATH and its version in XPMEM_TEST_NODE: vitest's forks, their workers and the
 * child processes tests start all run process.execPath, which this file prints and checks; the
 * README's Runtimes table names that line and the versions CI installs. The spin hint is
 * Atomics.pause where this Node has it. The runtime smoke test
 * (test/smoke/runtime-smoke.ts), which .ci/run also runs under Deno and Bun, passes on this Node
 * too, and also where the addon cannot load (threads-only domains need none).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { pause } from '../src/sync/pause.js';

const SMOKE = new URL('../dist/test/smoke/runtime-smoke.js', import.meta.url);

/** The text of project file `path`. */
function read(path: string): string {
  return readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
}

describe('the runtime', () => {
  it('is the Node line CI asked for', () => {
    console.log(`node ${process.version} (${process.execPath})`);
    expect(process.version).toBe(process.env.XPMEM_TEST_NODE ?? process.version);
  });

  it('gives spin loops Atomics.pause where it has it (Node 24 and later), and a function that does nothing elsewhere', () => {
    const native = (Atomics as { pause?: unknown }).pause;
    expect(pause === native).toBe(typeof native === 'function');
    expect(() => pause()).not.toThrow();
  });

  it("is one of those README's Runtimes table lists, at the versions .ci/runtimes.sh installs", () => {
    const readme = read('README.md');
    const rows = readme.slice(readme.indexOf('## Runtimes'), readme.indexOf('## Honest limit')).split('\n');
    const pins = [...read('.ci/runtimes.sh').matchAll(/^ {2}(node@\d+|deno|bun)\) package=\S+ version=(\S+) /gm)];
    expect(pins.map(([, name]) => name)).toEqual(['node@20', 'node@22', 'node@24', 'node@26', 'deno', 'bun']);
    for (const [, name, version] of pins) {
      const runtime = name!.startsWith('node@') ? `Node ${name!.slice(5)}` : name![0]!.toUpperCase() + name!.slice(1);
      expect(
        rows.find((row) => row.startsWith(`| ${runtime} `)),
        runtime,
      ).toContain(`| ${version} |`);
    }
    expect(rows.some((row) => row.startsWith(`| Node ${process.versions.node.split('.')[0]} `))).toBe(true);
  });

  it('passes the runtime smoke test that CI runs under Deno and Bun', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [SMOKE.pathname], { timeout: 90_000 });
    expect(stdout).toContain(`runtime smoke on Node ${process.versions.node}`);
    expect(stdout.trim().split('\n').pop()).toBe('runtime smoke: passed');
  }, 100_000);

  it('passes it where the addon cannot load: every threads-only step works, and a shared domain is refused saying why', async () => {
    const env = { ...process.env, XPMEM_THREADS_PREBUILD: '/nonexistent/xpmem-threads' }; // node-gyp-build finds no addon there
    const { stdout } = await promisify(execFile)(process.execPath, [SMOKE.pathname], { timeout: 90_000, env });
    expect(stdout).toContain('a shared domain is refused with ERR_XPMEM_UNSUPPORTED: the native addon did not load');
    expect(stdout.trim().split('\n').pop()).toBe('runtime smoke: passed');
  }, 100_000);
});
