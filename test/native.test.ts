/**
 * The addon's async waits, each way they can sleep: queued in the kernel through io_uring (the
 * default where the kernel has futex waits in io_uring, Linux 6.7), and in waiter threads
 * (XPMEM_ASYNC_WAITS=threads, and kernels without them). Each way runs in a process of its own
 * (test/fixtures/native-waits.ts): a wait ends woken, not equal or cancelled, exactly once;
 * more waits at once than the ring's queue holds all end; a wake from another process ends one.
 */
import { on, once } from 'node:events';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../src/sync/native.js';
import { bounded, nodeDir } from './helpers.js';

const FIXTURE = new URL('../dist/test/fixtures/native-waits.js', import.meta.url);
const REFUSED = new URL('../dist/test/fixtures/refused-wait.js', import.meta.url);
const FILE = `/dev/shm/xpmem-threads-test-waits-${process.pid}`;
/** The word the parent wakes, in the fixture's mapping of FILE. */
const CROSS = 1000;
/** More waits at once than the ring's completion queue holds (128: the kernel keeps the rest in overflow). */
const MANY = 300;
afterAll(() => rmSync(FILE, { force: true }));

/** Every message of `child`, in order, none missed between reads. */
function inbox(child: ChildProcess): AsyncIterator<unknown> {
  return on(child, 'message')[Symbol.asyncIterator]();
}

/** True where the kernel has io_uring futex waits (Linux 6.7 and later). */
function ringKernel(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 7);
}

describe.each([
  { way: 'the default', env: undefined, expected: ringKernel() ? 'io_uring' : /^threads \(/ },
  { way: 'XPMEM_ASYNC_WAITS=threads', env: 'threads', expected: 'threads (XPMEM_ASYNC_WAITS=threads)' },
])('async waits, $way', ({ env, expected }) => {
  it('end woken, not equal or cancelled, once each, also from another process and beyond the queue', async () => {
    const fd = openSync(FILE, 'w+', 0o600);
    ftruncateSync(fd, 4096 * 2);
    closeSync(fd);
    const addon = native();
    const words = new Int32Array(addon.map(openSync(FILE, 'r+'), 0, 4096 * 2));
    const { XPMEM_ASYNC_WAITS: _, ...rest } = process.env;
    const child = fork(FIXTURE, [FILE, String(CROSS), String(MANY)], { env: env === undefined ? rest : { ...rest, XPMEM_ASYNC_WAITS: env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = once(child, 'exit');
    try {
      const messages = inbox(child);
      const next = (): Promise<Record<string, unknown>> =>
        bounded(
          messages.next().then((m) => (m.value as [Record<string, unknown>])[0]),
          'the child',
        );
      const local = await next();
      if (typeof expected === 'string') expect(local.waits).toBe(expected);
      else expect(local.waits).toMatch(expected);
      expect(local).toMatchObject({ notEqual: [1], cancelled: [3], many: MANY });
      expect(await next()).toEqual({ armed: true });
      Atomics.store(words, CROSS, 1);
      addon.wake(words.buffer as SharedArrayBuffer, CROSS);
      // Woken; or, by a waiter thread that had not slept yet, found changed: ended once either way.
      const { cross } = (await next()) as { cross: number[] };
      expect(cross.length === 1 && (cross[0] === 0 || cross[0] === 1), `cross: ${cross}`).toBe(true);
    } finally {
      child.disconnect();
      await bounded(exited, 'the child to exit');
    }
  });
});

describe.runIf(ringKernel())('a submission the kernel refuses', () => {
  /** What fixtures/refused-wait.js reports in `mode`, its `FAIL_ENTER`th one-entry submission refused. */
  async function refused(mode: 'wait' | 'cancel', failEnter: number): Promise<unknown> {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-fail-enter-'));
    try {
      const shim = join(dir, 'fail-syscall.so');
      execFileSync('gcc', ['-shared', '-fPIC', '-o', shim, fileURLToPath(new URL('fixtures/fail-syscall.c', import.meta.url)), '-ldl']);
      const file = join(dir, 'words');
      writeFileSync(file, Buffer.alloc(4096), { mode: 0o600 });
      const { XPMEM_ASYNC_WAITS: _, ...rest } = process.env;
      const child = fork(REFUSED, [file, mode], { env: { ...rest, LD_PRELOAD: shim, FAIL_ENTER: String(failEnter) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const [report] = (await bounded(once(child, 'message'), 'the child to report')) as [unknown];
      await bounded(once(child, 'exit'), 'the child to exit');
      return report;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('is withdrawn: its wait wakes spuriously, and the next wait is queued and completes', async () => {
    expect(await refused('wait', 2)).toEqual({ waits: 'io_uring', first: 0, stale: 0, later: 0 });
  });

  it('a cancel: its wait ends cancelled at once, and the next submission asks again, so it stays queued in the kernel no longer', async () => {
    expect(await refused('cancel', 3)).toEqual({ waits: 'io_uring', first: 3, stale: 0, later: 0 });
  });
});

/**
 * What loading the addon in a fresh process (from the package's compiled code, or from `code`,
 * a copy of it) reports: whether node-gyp-build was required, and how its waits sleep, or the
 * code and message of the error loading it threw.
 */
function loadIn(env: NodeJS.ProcessEnv, dist = new URL('../dist/', import.meta.url)): { viaNodeGypBuild: boolean } & ({ waits: string } | { code: string; message: string }) {
  const code = `
    import { createRequire } from 'node:module';
    import { native } from ${JSON.stringify(new URL('src/sync/native.js', dist).href)};
    const viaNodeGypBuild = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('node-gyp-build'));
    try {
      const waits = native().waits();
      console.log(JSON.stringify({ viaNodeGypBuild: viaNodeGypBuild(), waits }));
    } catch (error) {
      console.log(JSON.stringify({ viaNodeGypBuild: viaNodeGypBuild(), code: error.code, message: error.message }));
    }`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', code], { env, encoding: 'utf8' })) as ReturnType<typeof loadIn>;
}

/** Compiles, at `file`, an addon of this Node line that has only a `map` function (one built from other sources). */
function staleAddon(file: string): void {
  const source = `${file}.cc`;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(source, '#include <node.h>\nstatic void Nothing(const v8::FunctionCallbackInfo<v8::Value>&) {}\nNODE_MODULE_INIT() { NODE_SET_METHOD(exports, "map", Nothing); }\n');
  execFileSync('g++', ['-std=c++20', '-shared', '-fPIC', `-I${join(nodeDir(), 'include', 'node')}`, '-o', file, source]);
}

describe('loading the addon', () => {
  const { XPMEM_THREADS_PREBUILD: _, ...env } = process.env;

  it("takes the package's build (or this line's prebuild) directly, without node-gyp-build's search", () => {
    expect(loadIn(env)).toEqual({ viaNodeGypBuild: false, waits: expect.any(String) });
  });

  it('hands XPMEM_THREADS_PREBUILD to node-gyp-build, which finds the build there', () => {
    expect(loadIn({ ...env, XPMEM_THREADS_PREBUILD: fileURLToPath(new URL('..', import.meta.url)) })).toEqual({ viaNodeGypBuild: true, waits: expect.any(String) });
  });

  it.each(['PREBUILDS_ONLY', 'npm_config_arch', 'npm_config_platform', 'LIBC', 'ARM_VERSION'])('hands the search to node-gyp-build when %s, which changes what it picks, is set', (setting) => {
    const values: Record<string, string> = { PREBUILDS_ONLY: '1', npm_config_arch: process.arch, npm_config_platform: process.platform, LIBC: 'glibc', ARM_VERSION: '8' };
    expect(loadIn({ ...env, [setting]: values[setting] })).toMatchObject({ viaNodeGypBuild: true });
  });

  it('refuses an addon that lacks a function of this version (built from other sources) with ERR_XPMEM_UNSUPPORTED naming what it lacks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-stale-addon-'));
    try {
      staleAddon(join(dir, 'build', 'Release', 'stale.node'));
      const refused = loadIn({ ...env, XPMEM_THREADS_PREBUILD: dir });
      expect(refused).toEqual({ viaNodeGypBuild: true, code: 'ERR_XPMEM_UNSUPPORTED', message: expect.stringContaining('has no wait, wake, waitAsync') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes a Debug build before a prebuild, in node-gyp-build's order", () => {
    const root = mkdtempSync(join(tmpdir(), 'xpmem-debug-build-'));
    try {
      cpSync(fileURLToPath(new URL('../dist/src', import.meta.url)), join(root, 'dist', 'src'), { recursive: true });
      mkdirSync(join(root, 'native'));
      writeFileSync(join(root, 'native', 'xpmem.cc'), ''); // marks the package's root
      mkdirSync(join(root, 'build', 'Debug'), { recursive: true });
      cpSync(fileURLToPath(new URL('../build/Release/xpmem.node', import.meta.url)), join(root, 'build', 'Debug', 'xpmem.node'));
      staleAddon(join(root, 'prebuilds', `${process.platform}-${process.arch}`, `xpmem-threads.abi${process.versions.modules}.node`));
      expect(loadIn(env, pathToFileURL(join(root, 'dist', '/')))).toEqual({ viaNodeGypBuild: false, waits: expect.any(String) });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
