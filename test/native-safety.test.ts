/**
 * The addon's blocking calls and its input: a worker asleep in a blocking wait is terminated at
 * once and a process exits while one sleeps (V8's terminate reaches no system call: the addon
 * sleeps in slices and looks); a lock with no bound waits for its holder; arguments that are
 * not what a call needs are refused before anything sleeps, is queued or is mapped; where no
 * waiter thread can be made, async waits wake spuriously instead of ending the process; and the
 * addon reads no environment (another thread may be changing it).
 */
import { once } from 'node:events';
import { execFileSync, fork } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../src/sync/native.js';
import { bounded } from './helpers.js';

const BLOCKED = new URL('../dist/test/fixtures/native-blocked.js', import.meta.url);
const NO_THREAD = new URL('../dist/test/fixtures/no-thread.js', import.meta.url);
const SLICED = new URL('../dist/test/fixtures/sliced-waits.js', import.meta.url);
const DIR = mkdtempSync(join(tmpdir(), 'xpmem-native-safety-'));
const FILE = join(DIR, 'words');
writeFileSync(FILE, Buffer.alloc(4096), { mode: 0o600 });
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

/** Runs fixtures/native-blocked.js in `mode`; resolves with what it reported (if anything) once it exited, bounded. */
async function blocked(mode: 'terminate' | 'exit' | 'lock'): Promise<{ report: unknown; code: number | null }> {
  const child = fork(BLOCKED, [FILE, mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let report: unknown;
  child.on('message', (m) => (report = m));
  const [code] = (await bounded(once(child, 'exit'), `the process (${mode}) to exit`)) as [number | null];
  return { report, code };
}

describe('the addon', () => {
  it('lets worker.terminate() end a worker asleep in a blocking wait with no deadline', async () => {
    expect(await blocked('terminate')).toEqual({ report: { terminated: true }, code: 0 });
  });

  it('lets a process exit while its worker sleeps in a blocking wait with no deadline', async () => {
    expect(await blocked('exit')).toEqual({ report: undefined, code: 0 });
  });

  it("waits for a lock's holder when given no bound", async () => {
    expect(await blocked('lock')).toEqual({ report: { locked: true }, code: 0 });
  });

  it('refuses offsets and lengths that are not whole, and a mapping past the end of the file (which would fault when touched)', () => {
    const fd = openSync(FILE, 'r+');
    try {
      const addon = native();
      for (const [offset, length] of [
        [Number.NaN, 4096],
        [0, Number.NaN],
        [0.5, 4096],
        [0, 4096.5],
        [0, Number.POSITIVE_INFINITY],
      ] as const)
        expect(() => addon.map(fd, offset, length), `map(${offset}, ${length})`).toThrow(TypeError);
      expect(() => addon.map(fd, 0, 8192)).toThrow(RangeError);
      expect(() => addon.map(fd, 4096, 4096)).toThrow(RangeError);
      expect(addon.map(fd, 0, 4096).byteLength).toBe(4096);
    } finally {
      closeSync(fd);
    }
  });

  it('refuses an expected value that cannot be converted before it sleeps or queues anything: no callback of the refused wait runs', () => {
    // In a process of its own: a wait that slept on would never end.
    const code = `
      import { openSync } from 'node:fs';
      import { native } from ${JSON.stringify(new URL('../dist/src/sync/native.js', import.meta.url).href)};
      const addon = native();
      const sab = addon.map(openSync(${JSON.stringify(FILE)}, 'r+'), 0, 4096);
      const bad = { valueOf() { throw new Error('no number'); } };
      const refused = [];
      for (const expected of [Symbol('x'), bad]) {
        try { addon.wait(sab, 8, expected, -1); } catch (error) { refused.push('wait: ' + error.message); }
      }
      const ran = [];
      try { addon.waitAsync(sab, 8, bad, (r) => ran.push('refused ' + r)); } catch (error) { refused.push('waitAsync: ' + error.message); }
      const alive = setTimeout(() => {}, 60_000); // the addon's handles keep no loop alive
      addon.waitAsync(sab, 8, 0, (r) => {
        ran.push('queued ' + r);
        console.log(JSON.stringify({ refused, ran }));
        clearTimeout(alive);
      });
      addon.wake(sab, 8);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out)).toEqual({
      refused: ['wait: Cannot convert a Symbol value to a number', 'wait: no number', 'waitAsync: no number'],
      ran: ['queued 0'],
    });
  });

  it('where no waiter thread can be made, refuses an async wait with a RangeError, and the library wakes its waits spuriously instead (with a warning), still ending them at an abort and at their deadline', async () => {
    const shim = join(DIR, 'fail-thread.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-o', shim, fileURLToPath(new URL('fixtures/fail-thread.c', import.meta.url)), '-ldl']);
    const child = fork(NO_THREAD, [FILE], { env: { ...process.env, XPMEM_ASYNC_WAITS: 'threads', LD_PRELOAD: shim }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let report: unknown;
    child.on('message', (m) => (report = m));
    const [code] = (await bounded(once(child, 'exit'), 'the child to exit')) as [number | null];
    expect({ code, report }).toEqual({
      code: 0,
      report: {
        waits: 'threads (XPMEM_ASYNC_WAITS=threads)',
        direct: 'RangeError: no waiter thread for another async wait: Resource temporarily unavailable',
        reason: 'ok',
        ended: ['aborted', 'timed-out'],
        warnings: ['XpmemWarning'],
      },
    });
  });

  it.each([
    ['denied by a filter, EPERM', '1'],
    ['missing, ENOSYS', '38'],
  ])('where futex_waitv is %s, async waits sleep in slices: one nobody wakes ends at its deadline, and a cancel wakes its own waiter thread and no other wait on the word', async (_, errno) => {
    const shim = join(DIR, 'fail-syscall.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-o', shim, fileURLToPath(new URL('fixtures/fail-syscall.c', import.meta.url)), '-ldl']);
    const child = fork(SLICED, [FILE], { env: { ...process.env, XPMEM_ASYNC_WAITS: 'threads', LD_PRELOAD: shim, FAIL_WAITV: errno }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let report: unknown;
    child.on('message', (m) => (report = m));
    const [code] = (await bounded(once(child, 'exit'), 'the child to exit')) as [number | null];
    expect({ code, report }).toEqual({
      code: 0,
      report: { waits: 'threads (XPMEM_ASYNC_WAITS=threads)', reason: 'timed-out', cancelled: 3, asleep: 1, untouched: 0, pileUp: false },
    });
  });

  it('waits and wakes only on words of the buffers map() made (their memory may be let go on any thread)', () => {
    const addon = native();
    const own = new SharedArrayBuffer(8);
    expect(() => addon.wait(own, 0, 1, 0)).toThrow(new TypeError('expected a SharedArrayBuffer that map() made'));
    expect(() => addon.waitAsync(own, 0, 0, () => {})).toThrow(TypeError);
    expect(() => addon.wake(own, 0)).toThrow(TypeError);
  });

  it('stays loaded for the life of the process: a worker that loaded it alone can end', () => {
    const code = `
      import { Worker } from 'node:worker_threads';
      const worker = new Worker(${JSON.stringify(`Promise.all([import(${JSON.stringify(new URL('../dist/src/sync/native.js', import.meta.url).href)}), import('node:worker_threads')]).then(([{ native }, { parentPort }]) => { native().waits(); parentPort.postMessage('loaded'); });`)}, { eval: true });
      worker.once('message', async () => {
        await worker.terminate();
        console.log('ended');
      });`;
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 }).trim()).toBe('ended');
  });

  it('reads no environment: Node guards it with a lock the addon cannot take, and another thread may be changing it', () => {
    const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', fileURLToPath(new URL('../build/Release/xpmem.node', import.meta.url))], { encoding: 'utf8' });
    expect(undefinedSymbols.split('\n').filter((line) => /\b(secure_)?getenv\b|\benviron\b/.test(line))).toEqual([]);
  });
});
