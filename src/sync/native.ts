/**
 * The native addon (native/xpmem.cc) that shared domains stand on: SharedArrayBuffers over a
 * mapping of a shared memory file, and futex waits and wakes that reach other processes. Loaded
 * on first use: a local build (build/Release, what the install makes where no prebuild fits;
 * else build/Debug) or this Node line's prebuild (native/prebuild.sh names them) directly with
 * process.dlopen, in node-gyp-build's order; anything else through node-gyp-build's search: no
 * such file (another platform's tags), or a setting that changes what it picks is set
 * (SEARCH_SETTINGS). A process that cannot load it still runs every threads-only domain, and
 * only a shared domain fails, with ERR_XPMEM_UNSUPPORTED saying why. Per thread (each worker
 * loads its own instance).
 *
 * Why not node-gyp-build alone: in a fresh process, requiring it (the first CommonJS require of
 * an ES module program) and its search of the package's folders cost about 3 ms, most of what
 * the first Domain.open of a process takes.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { xpmemError } from '../errors.js';

/** The addon's exports (see native/xpmem.cc for each one's contract). */
export interface Native {
  /** A SharedArrayBuffer over mmap(MAP_SHARED) of `fd` from `offset`, `length` bytes; unmapped when collected. */
  map(fd: number, offset: number, length: number): SharedArrayBuffer;
  /** Sleeps while word `index` holds `expected`: 0 woken, 1 not equal, 2 timed out (`ms` < 0: no deadline). */
  wait(buffer: SharedArrayBuffer, index: number, expected: number, ms: number): number;
  /** Wakes every sleeper on word `index`, in any process; returns how many. */
  wake(buffer: SharedArrayBuffer, index: number): number;
  /**
   * Sleeps while word `index` holds `expected` without blocking this thread: `done` runs later on
   * its loop (0 woken, 1 not equal, 3 cancelled). Returns an id for cancel().
   */
  waitAsync(buffer: SharedArrayBuffer, index: number, expected: number, done: (result: number) => void): number;
  /** Ends async wait `id` soon with result 3. */
  cancel(id: number): void;
  /** How this thread's async waits sleep: 'io_uring' (the event loop polls the kernel's queue), or 'threads (why not io_uring)'. */
  waits(): string;
  /** This thread's async waits sleep in the addon's waiter threads, not io_uring (XPMEM_ASYNC_WAITS=threads; called before the first). */
  useWaiterThreads(): void;
  /** flock(fd, LOCK_EX), trying for up to `ms`: true once held, false at the deadline (a dead holder's lock is released). */
  lock(fd: number, ms: number): boolean;
  /** flock(fd, LOCK_UN). Closing fd does not release the lock while a mapping of it lives. */
  unlock(fd: number): void;
  /** fstat(fd): its mode, owner, size and inode. */
  fileStat(fd: number): [mode: number, uid: number, size: number, ino: number];
  /** stat(path): its mode, owner, size and inode; undefined when there is no such file. */
  pathStat(path: string): [mode: number, uid: number, size: number, ino: number] | undefined;
  /** The first 4 KiB of open file `fd` (pread), fewer at its end. */
  readPage(fd: number): ArrayBuffer;
  /** The first 4 KiB of the file at `path` as Latin-1, or the errno when it cannot be opened or read. */
  readText(path: string): string | number;
  /** The calling thread's id as the kernel knows it (gettid). */
  kernelThread(): number;
}

let loaded: Native | Error | undefined;

/** Every function of Native: an addon that lacks one was built from other sources. */
const FUNCTIONS = [
  'map',
  'wait',
  'wake',
  'waitAsync',
  'cancel',
  'waits',
  'useWaiterThreads',
  'lock',
  'unlock',
  'fileStat',
  'pathStat',
  'readPage',
  'readText',
  'kernelThread',
] as const satisfies readonly (keyof Native)[];

/** The environment that changes what node-gyp-build picks: with any of it set, it picks. */
const SEARCH_SETTINGS = ['XPMEM_THREADS_PREBUILD', 'PREBUILDS_ONLY', 'npm_config_arch', 'npm_config_platform', 'LIBC', 'ARM_VERSION'] as const;

/** The package's root: the nearest folder above this file that holds the addon's source, native/xpmem.cc (the package ships it). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'native', 'xpmem.cc'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('native/xpmem.cc of xpmem-threads not found above its code');
    dir = up;
  }
  return dir;
}

/**
 * The addon of package `root`: a local build, else this Node line's prebuild, else what
 * node-gyp-build finds; an Error naming what it lacks when it is not this version's addon.
 */
function load(root: string): Native {
  const files = [
    join(root, 'build', 'Release', 'xpmem.node'),
    join(root, 'build', 'Debug', 'xpmem.node'),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, `xpmem-threads.abi${process.versions.modules}.node`),
  ];
  const file = SEARCH_SETTINGS.some((name) => process.env[name] !== undefined) ? undefined : files.find((f) => existsSync(f));
  const module = { exports: {} as Native };
  if (file === undefined) module.exports = (createRequire(import.meta.url)('node-gyp-build') as (dir: string) => Native)(root);
  else process.dlopen(module, file);
  const missing = FUNCTIONS.filter((name) => typeof module.exports[name] !== 'function');
  if (missing.length > 0) throw new Error(`${file ?? 'the addon node-gyp-build found'} has no ${missing.join(', ')}: it was built from other sources (npm rebuild xpmem-threads)`);
  if (process.env.XPMEM_ASYNC_WAITS === 'threads') module.exports.useWaiterThreads(); // read here: Node guards the environment, the addon could not
  return module.exports;
}

/** Why this runtime cannot load a V8 addon at all, or undefined. */
function unsupportedRuntime(): string | undefined {
  if ((process.versions as Record<string, string | undefined>).bun !== undefined) return 'Bun loads no addon built on the V8 API';
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) return 'Deno loads no addon built on the V8 API';
  if (process.platform !== 'linux') return `shared domains need Linux futexes and /dev/shm (this is ${process.platform})`;
  return undefined;
}

/**
 * The addon, or ERR_XPMEM_UNSUPPORTED saying why it cannot load here (thrown; the answer is
 * remembered). Runs in the calling thread; never sleeps.
 */
export function native(): Native {
  if (loaded === undefined) {
    const why = unsupportedRuntime();
    if (why !== undefined) loaded = xpmemError('ERR_XPMEM_UNSUPPORTED', `shared domains are not available: ${why}; threads-only domains work`);
    else {
      try {
        loaded = load(packageRoot());
      } catch (error) {
        loaded = xpmemError(
          'ERR_XPMEM_UNSUPPORTED',
          `shared domains are not available: the native addon did not load (${(error as Error).message}); install with a compiler (npm rebuild xpmem-threads), or use threads-only domains`,
          { cause: error },
        );
      }
    }
  }
  if (loaded instanceof Error) throw loaded;
  return loaded;
}
