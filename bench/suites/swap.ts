/**
 * Swap bandwidth: swapOutSync (the bytes to the segment's swap file, the arena range freed) and
 * swapInSync (read back into a fresh range) of a 16 MiB segment, against raw fs calls doing the
 * same work on the same bytes in the same directory: on the way out, open, write over the file
 * the last sample wrote, cut it to size and close, as a swap file is rewritten in its slot
 * (no fsync: swap files die with the process); with fsync beside it for context. On the way
 * in, open, read and close the file just written.
 */
import { closeSync, constants, fsyncSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Domain } from '../../src/index.js';
import { measure, timedPart } from '../lib/measure.js';
import { atLeast, bandwidth, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const BYTES = 16 * 2 ** 20;

/** Writes `bytes` over the file at `path` (created the first time) and cuts it to size, as swap files are rewritten. */
function writeFile(path: string, bytes: Uint8Array, sync: boolean): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at, at);
    ftruncateSync(fd, bytes.length);
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readFile(path: string, into: Uint8Array): void {
  const fd = openSync(path, 'r');
  try {
    for (let at = 0, n = 1; at < into.length && n > 0; at += n) n = readSync(fd, into, at, into.length - at, at);
  } finally {
    closeSync(fd);
  }
}

export const swap: Suite = {
  name: 'swap',
  title: 'swap out / in bandwidth against raw fs calls',
  boundMs: 120_000,
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-bench-swap-'));
    try {
      const domain = await Domain.create({ arenaBytes: 2 * BYTES, swapDir: dir });
      const seg = domain.space.make(BYTES);
      const att = domain.space.get(seg.id, 'rw').attach();
      att.write((v) => {
        v.fill(7);
      });
      att.detach();
      const bytes = new Uint8Array(BYTES).fill(7);
      const raw = join(dir, 'raw');
      const fsynced = join(dir, 'fsynced');
      const t = await measure([
        { name: 'write+fsync', batch: 1, run: () => writeFile(fsynced, bytes, true) },
        timedPart(
          'swapOut',
          () => {
            if (seg.swapped) seg.swapInSync();
          },
          () => seg.swapOutSync(),
        ),
        { name: 'write', batch: 1, run: () => writeFile(raw, bytes, false) },
        { name: 'read', batch: 1, run: () => readFile(raw, bytes) },
        timedPart(
          'swapIn',
          () => {
            if (!seg.swapped) seg.swapOutSync();
          },
          () => seg.swapInSync(),
        ),
      ]);
      await domain.close();
      const gbs = (name: string) => bandwidth(t.get(name)!, BYTES);
      return {
        rows: [
          row('swap', 'swap out bandwidth, 16 MiB (swapOutSync)', gbs('swapOut'), 'raw fs open + write in place + truncate + close (no fsync, as swap files)', gbs('write'), atLeast(0.8)),
          row('swap', 'swap out bandwidth, against a durable write (which swap files need not do)', gbs('swapOut'), 'raw fs open + write in place + truncate + fsync + close', gbs('write+fsync')),
          row('swap', 'swap in bandwidth, 16 MiB (swapInSync)', gbs('swapIn'), 'raw fs open + read + close', gbs('read'), atLeast(0.8)),
        ],
        curves: [],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
