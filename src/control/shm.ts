/**
 * The shared memory file of a shared domain: /dev/shm/xpmem-threads.<name>, mode 0600, private
 * to its user. Three parts, each mapped on its own:
 *
 *   page 0      the descriptor: magic, layout version, sizes, the creator, deadline, swap dir;
 *   page 1...   the control block (control.ts), its words rounded up to pages;
 *   then        the arena, mapped whole at its maximum size up front (a mapping cannot grow;
 *               tmpfs allocates only the pages that are touched).
 *
 * A creator writes a staging file, formats it, and publishes it with link(2), which never
 * replaces a file: an opener therefore never sees a half-made domain. A joiner checks the
 * descriptor's magic and version before it trusts any other word. Replacing a leftover (a dead
 * creator's file) happens under flock(2) of that file, which the kernel releases if its holder
 * dies. Runs in the calling thread; the functions that lock may block briefly on another
 * process's takeover.
 */
import { closeSync, ftruncateSync, linkSync, openSync, readdirSync, rmSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { invalidArgType, invalidArgValue, XpmemError, xpmemError } from '../errors.js';
import { H_MAGIC, H_VERSION, MAGIC, VERSION, capacitiesOf, layoutFor } from '../layout.js';
import { native } from '../sync/native.js';
import { pidRuns } from '../sync/robust.js';

/** Where shared domains live. */
export const SHM_DIR = '/dev/shm';

/** The longest name: the file name must stay under NAME_MAX (255) with its prefix and a staging suffix. */
export const MAX_NAME = 200;

const PAGE = 4096;
const DESCRIPTOR_MAGIC = 0x58504d53; // 'XPMS'
const D_MAGIC = 0;
const D_VERSION = 1;
const D_CONTROL_PAGES = 2;
const D_ARENA_UNITS_LOW = 3; // max arena bytes / 64, as a uint32
const D_CREATOR_PID = 4;
const D_CREATOR_START = 5;
const D_DEADLINE_MS = 6;
const D_SWAPDIR_BYTES = 7;
const D_SWAPDIR_OWN = 8; // 1: the creator made the swap dir (a takeover removes it); 0 in files of older versions
/** Byte offset of the swap dir's UTF-8 in the descriptor. */
const SWAPDIR_AT = 64;

/** What a descriptor says. */
export interface Descriptor {
  readonly version: number;
  readonly controlBytes: number;
  readonly arenaBytes: number;
  readonly creator: { readonly pid: number; readonly start: number };
  readonly deadlineMs: number;
  readonly swapDir: string;
  /** True when the creator made the swap dir (the default): whoever ends the domain removes it. */
  readonly ownSwapDir: boolean;
}

/** A mapped shared domain file: its parts, ready for ControlBlock. */
export interface SharedMemory {
  readonly control: SharedArrayBuffer;
  readonly arena: SharedArrayBuffer;
  readonly descriptor: Descriptor;
}

/** Validates a shared domain's name (ERR_INVALID_ARG_VALUE saying what a name may be); returns its file's path. */
export function shmPath(name: unknown, what = 'options.shared'): string {
  if (typeof name !== 'string') throw invalidArgType(what, 'of type string', name);
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name) || name.length > MAX_NAME)
    throw invalidArgValue(
      what,
      `a name of 1 to ${MAX_NAME} letters, digits, '.', '_' or '-', not starting with '.' (it names a file in ${SHM_DIR})`,
      name.length > 40 ? `a name of ${name.length} characters` : JSON.stringify(name),
    );
  return `${SHM_DIR}/xpmem-threads.${name}`;
}

function pages(bytes: number): number {
  return Math.ceil(bytes / PAGE);
}

/**
 * Creates a staging file beside `path`, sized and mapped for a control block of `controlBytes`
 * and an arena of `arenaBytes`, with the descriptor written: the caller formats the control
 * block, then publish()es it. Throws ERR_XPMEM_UNSUPPORTED where the addon cannot load.
 */
export function stage(path: string, controlBytes: number, descriptor: Omit<Descriptor, 'version' | 'controlBytes'>): SharedMemory & { readonly staging: string; readonly ino: number } {
  const addon = native();
  sweepStaging(path);
  checkRoom((1 + pages(controlBytes)) * PAGE + descriptor.arenaBytes);
  const staging = `${path}+new-${process.pid}-${Math.floor(Math.random() * 2 ** 32).toString(16)}`; // '+' is in no domain's name: no domain's file looks like one
  const fd = openSync(staging, 'wx+', 0o600);
  try {
    const controlPages = pages(controlBytes);
    ftruncateSync(fd, (1 + controlPages) * PAGE + descriptor.arenaBytes);
    const head = Buffer.alloc(PAGE);
    const swapDir = Buffer.from(descriptor.swapDir, 'utf8');
    if (swapDir.length > PAGE - SWAPDIR_AT) throw invalidArgValue('options.swapDir', `a path of at most ${PAGE - SWAPDIR_AT} bytes for a shared domain`, descriptor.swapDir);
    const put = (word: number, value: number): void => void head.writeUInt32LE(value >>> 0, word * 4);
    put(D_MAGIC, DESCRIPTOR_MAGIC);
    put(D_VERSION, VERSION);
    put(D_CONTROL_PAGES, controlPages);
    put(D_ARENA_UNITS_LOW, descriptor.arenaBytes / 64);
    put(D_CREATOR_PID, descriptor.creator.pid);
    put(D_CREATOR_START, descriptor.creator.start);
    put(D_DEADLINE_MS, descriptor.deadlineMs);
    put(D_SWAPDIR_BYTES, swapDir.length);
    put(D_SWAPDIR_OWN, descriptor.ownSwapDir ? 1 : 0);
    swapDir.copy(head, SWAPDIR_AT);
    writeSync(fd, head, 0, PAGE, 0);
    const control = addon.map(fd, PAGE, controlPages * PAGE);
    const arena = addon.map(fd, (1 + controlPages) * PAGE, descriptor.arenaBytes);
    return { control, arena, staging, ino: addon.fileStat(fd)[3], descriptor: { ...descriptor, version: VERSION, controlBytes: controlPages * PAGE } };
  } catch (error) {
    unlinkSync(staging);
    throw error;
  } finally {
    closeSync(fd);
  }
}

/**
 * ERR_XPMEM_NO_MEMORY when a domain file of `bytes` could never fit in SHM_DIR, whatever else it
 * holds. The file takes its pages as they are first written, and a write the file system has no
 * room for kills the writing process (SIGBUS), where no error can be thrown: a domain that could
 * grow past the whole file system is refused up front. What other files hold is not counted
 * (among them a leftover this create takes over, and mappings of closed domains not yet
 * collected): room they take can still run out. A file system of no set size (a tmpfs of size
 * 0, ramfs) says 0 blocks.
 */
function checkRoom(bytes: number): void {
  const { blocks, bsize } = statfsSync(SHM_DIR);
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  if (blocks !== 0 && blocks * bsize < bytes)
    throw xpmemError(
      'ERR_XPMEM_NO_MEMORY',
      `${SHM_DIR} holds ${mib(blocks * bsize)} MiB in all, and this domain may take up to ${mib(bytes)} MiB there (its control block and maxArenaBytes): lower options.maxArenaBytes, or give ${SHM_DIR} more room (a container's --shm-size)`,
    );
}

/**
 * Removes the staging files beside `path` whose creator's process no longer runs (one killed
 * while it made or took over the domain): `<path>+new-<pid>-<hex>`, a name no domain's file has.
 * A staging file never published goes with the swap dir its creator made for it; one already
 * published is a second name of the domain's file (two links), whose swap dir is the domain's:
 * only that name goes.
 */
function sweepStaging(path: string): void {
  const prefix = `${basename(path)}+new-`;
  for (const file of readdirSync(dirname(path))) {
    const pid = /^(\d+)-[0-9a-f]+$/.exec(file.slice(prefix.length))?.[1];
    if (!file.startsWith(prefix) || pid === undefined || pidRuns(Number(pid))) continue;
    const staging = join(dirname(path), file);
    discardStagedSwap(staging, file);
    unlinkName(staging);
  }
}

/** Removes the swap dir a dead creator made for staging file `staging` (named `name`) if it never published it (one link). */
function discardStagedSwap(staging: string, name: string): void {
  if (statSync(staging, { throwIfNoEntry: false })?.nlink !== 1) return;
  try {
    withFile(staging, name, (_, descriptor) => {
      if (descriptor.version === VERSION && descriptor.ownSwapDir) rmSync(descriptor.swapDir, { recursive: true, force: true });
    });
  } catch (error) {
    // Killed before its descriptor was written, not a file this user's creators made, or swept by another creator meanwhile: nothing of it to read.
    if (!['ERR_XPMEM_INCOMPATIBLE', 'ERR_XPMEM_PERMISSION', 'ERR_XPMEM_NO_DOMAIN'].includes((error as { code?: string }).code!)) throw error;
  }
}

/** Publishes a staging file under `path` (the caller unlinks the staging name): true, or false when a file of that name exists (nothing changed). */
export function publish(staging: string, path: string): boolean {
  try {
    linkSync(staging, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Reads and checks the descriptor of the open file `fd` (named `name`), through the addon:
 * ERR_XPMEM_INCOMPATIBLE if it is not a domain this version can read.
 */
function describe(fd: number, name: string): Descriptor {
  const addon = native();
  const [mode, uid, size] = addon.fileStat(fd);
  if ((mode & 0o777) !== 0o600 || (typeof process.getuid === 'function' && uid !== process.getuid()))
    throw xpmemError(
      'ERR_XPMEM_PERMISSION',
      `shared domain '${name}' is not private to this user (mode ${(mode & 0o777).toString(8)}, owner ${uid}): it was not made by xpmem-threads; remove ${SHM_DIR}/xpmem-threads.${name}`,
    );
  const head = Buffer.from(addon.readPage(fd));
  if (head.length < PAGE || head.readUInt32LE(D_MAGIC * 4) !== DESCRIPTOR_MAGIC) throw unusable(name, `'${name}' is not a shared domain of xpmem-threads (no descriptor)`);
  const word = (w: number): number => head.readUInt32LE(w * 4);
  const version = word(D_VERSION);
  const controlBytes = word(D_CONTROL_PAGES) * PAGE;
  const arenaBytes = word(D_ARENA_UNITS_LOW) * 64;
  const swapDir = head.toString('utf8', SWAPDIR_AT, SWAPDIR_AT + Math.min(word(D_SWAPDIR_BYTES), PAGE - SWAPDIR_AT));
  const descriptor = {
    version,
    controlBytes,
    arenaBytes,
    creator: { pid: word(D_CREATOR_PID), start: word(D_CREATOR_START) },
    deadlineMs: word(D_DEADLINE_MS),
    swapDir,
    ownSwapDir: word(D_SWAPDIR_OWN) === 1,
  };
  if (version === VERSION && size < PAGE + controlBytes + arenaBytes) throw unusable(name, `shared domain '${name}' is truncated`);
  return descriptor;
}

/** ERR_XPMEM_INCOMPATIBLE for a file of that name no version can use: `what` it is, and that it can go. */
function unusable(name: string, what: string): Error {
  return xpmemError('ERR_XPMEM_INCOMPATIBLE', `${what}: remove ${SHM_DIR}/xpmem-threads.${name} if nothing uses it`);
}

/** ERR_XPMEM_INCOMPATIBLE for a domain made with another layout version. */
export function incompatible(name: string, version: number): Error {
  return xpmemError(
    'ERR_XPMEM_INCOMPATIBLE',
    `shared domain '${name}' was made by a version of xpmem-threads with layout ${version}; this one reads layout ${VERSION}: open it with the same version of xpmem-threads as its creator, or close it and create it anew`,
  );
}

/**
 * Opens the file at `path` (named `name`) and runs `use` with its fd and descriptor (the fd is
 * closed after). ERR_XPMEM_NO_DOMAIN if there is none.
 */
export function withFile<T>(path: string, name: string, use: (fd: number, descriptor: Descriptor) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw xpmemError('ERR_XPMEM_NO_DOMAIN', `no shared domain named '${name}' (no ${path}): create it with Domain.create({ shared: '${name}' })`);
    throw xpmemError('ERR_XPMEM_NO_DOMAIN', `shared domain '${name}' cannot be opened: ${(error as Error).message}`, { cause: error });
  }
  try {
    return use(fd, describe(fd, name));
  } finally {
    closeSync(fd);
  }
}

/** Maps the parts of an open, checked file (the descriptor's version is this one's). */
export function mapFile(fd: number, name: string, descriptor: Descriptor): SharedMemory {
  if (descriptor.version !== VERSION) throw incompatible(name, descriptor.version);
  const addon = native();
  const control = addon.map(fd, PAGE, descriptor.controlBytes);
  const words = new Int32Array(control);
  if (words[H_MAGIC] !== MAGIC) throw unusable(name, `shared domain '${name}' is damaged (no control block after its descriptor)`);
  if (words[H_VERSION] !== VERSION) throw incompatible(name, words[H_VERSION]!);
  if (layoutFor(capacitiesOf(words)).words * 4 > descriptor.controlBytes) throw unusable(name, `shared domain '${name}' is damaged (its control block is larger than its descriptor says)`);
  const arena = addon.map(fd, PAGE + descriptor.controlBytes, descriptor.arenaBytes);
  return { control, arena, descriptor };
}

/**
 * Runs `decide` under an exclusive flock of the file now at `path` (blocking while another
 * process holds it, up to `deadlineMs`: then ERR_XPMEM_TIMEOUT), on that file's fd and
 * descriptor, if the path still names it once locked; returns `decide`'s answer, or undefined
 * when the file changed under the lock (try again).
 */
export function underLock<T>(path: string, name: string, deadlineMs: number, decide: (fd: number, descriptor: Descriptor) => T): T | undefined {
  return withFile(path, name, (fd, descriptor) => {
    const addon = native();
    if (!addon.lock(fd, deadlineMs)) throw xpmemError('ERR_XPMEM_TIMEOUT', `another process held shared domain '${name}' locked (taking it over) past the deadline`);
    try {
      return addon.pathStat(path)?.[3] === addon.fileStat(fd)[3] ? decide(fd, descriptor) : undefined;
    } finally {
      addon.unlock(fd); // a mapping made under the lock would keep it past close
    }
  });
}

/**
 * Removes the name `path` of a closing creator's domain (named `name`) if it still names its
 * file, of inode `ino`: decided under the file's flock, as a takeover decides, so a file that
 * replaced the creator's is never removed. False when another file has the name (a takeover's),
 * true when none has it any more. May block briefly on a takeover (up to `deadlineMs`).
 */
export function unlinkOwn(path: string, name: string, ino: number, deadlineMs: number): boolean {
  try {
    const removed = underLock(path, name, deadlineMs, (fd) => {
      if (native().fileStat(fd)[3] !== ino) return false;
      unlinkName(path);
      return true;
    });
    return removed === true;
  } catch (error) {
    if (!(error instanceof XpmemError)) throw error;
    return error.code === 'ERR_XPMEM_NO_DOMAIN'; // no file of that name; else one that is not a domain of this version
  }
}

/** Removes the name `path` (the mappings stay valid); a name already gone is fine. */
export function unlinkName(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
