/**
 * Swap bandwidth: swapOutSync (the bytes to the segment's swap file, the arena range freed) and
 * swapInSync (read back into a fresh range) of a 16 MiB segment, against raw fs calls on the same
 * bytes in the same directory: open, write, fsync, close of a new file on the way out; open,
 * read, close of the file just written on the way in. Swap files are not fsynced (they die with the process),
 * so a raw write without fsync is shown beside them.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Domain } from '../../src/index.js';
import { measure, timedPart } from '../lib/measure.js';
import { atLeast, bandwidth, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const BYTES = 16 * 2 ** 20;

function writeFile(path: string, bytes: Uint8Array, sync: boolean): void {
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at, at);
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
      att.write((v) => { v.fill(7); });
      att.detach();
      const bytes = new Uint8Array(BYTES).fill(7);
      const raw = join(dir, 'raw');
      const fresh = (): void => rmSync(raw, { force: true }); // a swap out writes a new file too
      const t = await measure([
        timedPart('write+fsync', fresh, () => writeFile(raw, bytes, true)),
        timedPart('swapOut', () => { if (seg.swapped) seg.swapInSync(); }, () => seg.swapOutSync()),
        timedPart('write', fresh, () => writeFile(raw, bytes, false)),
        { name: 'read', batch: 1, run: () => readFile(raw, bytes) },
        timedPart('swapIn', () => { if (!seg.swapped) seg.swapOutSync(); }, () => seg.swapInSync()),
      ]);
      await domain.close();
      const gbs = (name: string) => bandwidth(t.get(name)!, BYTES);
      return {
        rows: [
          row('swap', 'swap out bandwidth, 16 MiB (swapOutSync)', gbs('swapOut'), 'raw fs open + write + fsync + close', gbs('write+fsync'), atLeast(0.8)),
          row('swap', 'swap out bandwidth, against a write as swap files do it', gbs('swapOut'), 'raw fs open + write + close (no fsync, as swap files)', gbs('write')),
          row('swap', 'swap in bandwidth, 16 MiB (swapInSync)', gbs('swapIn'), 'raw fs open + read + close', gbs('read'), atLeast(0.8)),
        ],
        curves: [],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
