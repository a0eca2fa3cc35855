/**
 * Swap files: one per swapped-out segment ("one swap slot per segment"), in the domain's
 * swapDir, named by domain id and segment id so that several domains may share a directory and a
 * reused segment slot never meets a stale file. Written and read with synchronous `fs` calls by
 * the thread running the swap (a page fault may come from a synchronous section entry), with no
 * fsync: a swap file is worthless after the process ends, so durability buys nothing. A file may
 * be longer than its segment (a shrink that could not cut it): only its prefix is read back.
 *
 * Every failure is ERR_XPMEM_SWAP_IO with the fs error as `cause`. A file that is missing or
 * has the wrong size when read back is reported, never read as if it were the segment.
 * Any thread; every function blocks the thread on the file system (never on another space).
 */
import { accessSync, closeSync, constants, fstatSync, ftruncateSync, openSync, opendirSync, readSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { xpmemError, type XpmemError } from '../errors.js';

/** Largest single read or write (fs calls take at most 2 GiB). */
const CHUNK = 1 << 30;

/** Path of segment `segId`'s swap file. */
export function swapPath(dir: string, domainId: number, segId: number): string {
  return join(dir, `xpmem-${domainId}-${segId}.swap`);
}

/** ERR_XPMEM_SWAP_IO for a failed fs call `what` on `path`, the fs error as cause. */
export function swapIo(what: string, path: string, error: unknown): XpmemError {
  return ioError(`${what} swap file ${path} failed`, error);
}

/** ERR_XPMEM_SWAP_IO saying `what` failed, with the fs `error` (its code and message) as cause, then `advice`. */
function ioError(what: string, error: unknown, advice = ''): XpmemError {
  const code = (error as { code?: string }).code;
  return Object.assign(xpmemError('ERR_XPMEM_SWAP_IO', `${what}${code === undefined ? '' : ` (${code})`}: ${String((error as Error).message ?? error)}${advice}`), { cause: error });
}

/**
 * Checks that `dir` can hold swap files: an existing directory this process may write and
 * search. Throws ERR_XPMEM_SWAP_IO with the fs error as cause (ENOENT, ENOTDIR, EACCES, EROFS).
 */
export function checkSwapDir(dir: string): void {
  try {
    opendirSync(dir).closeSync();
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw ioError(`options.swapDir ${dir} cannot hold swap files`, error, '; give an existing directory this process may write, or leave swapDir out for a fresh one under the OS temp dir');
  }
}

/**
 * Writes `bytes` as the whole swap file at `path`. An old file (the segment's swap slot, kept
 * after a swap-in) is overwritten in place and then cut to size: truncating it first would free
 * its blocks only to allocate them again, which measured ten times slower. Throws ERR_XPMEM_SWAP_IO.
 */
export function writeSwap(path: string, bytes: Uint8Array): void {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(CHUNK, bytes.length - at), at);
    ftruncateSync(fd, bytes.length);
    closeSync(fd);
    fd = -1;
  } catch (error) {
    if (fd >= 0) closeSync(fd);
    rmSync(path, { force: true });
    throw swapIo('writing', path, error);
  }
}

/**
 * Reads the first `into.length` bytes of the swap file at `path` into `into`. Throws
 * ERR_XPMEM_SWAP_IO when it cannot be read, is missing, or is shorter.
 */
export function readSwap(path: string, into: Uint8Array): void {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    if (size < into.length) throw Object.assign(new Error(`it holds ${size} bytes, the segment ${into.length}: it was changed behind the domain's back`), { code: 'EBADF' });
    for (let at = 0; at < into.length; ) {
      const n = readSync(fd, into, at, Math.min(CHUNK, into.length - at), at);
      if (n === 0) throw Object.assign(new Error('it ended early'), { code: 'EIO' });
      at += n;
    }
  } catch (error) {
    throw swapIo('reading', path, error);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Deletes the swap file at `path` if it exists. Never throws: a leftover file is only disk space. */
export function discardSwap(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // removed again by domain.close()
  }
}

/** Deletes every swap file of domain `domainId` in `dir` (domain.close()). */
export function discardAll(dir: string, domainId: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith(`xpmem-${domainId}-`) && name.endsWith('.swap')) discardSwap(join(dir, name));
}
