/**
 * Swap: round trips keep every byte, faults swap in once however many threads fault, the
 * arena range is freed at once, swap I/O faults are reported and never read as data.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agents, domain, expectCode, Gates, teardown } from './helpers.js';
import { Domain, type Segment } from '../src/index.js';

/** The byte a pattern puts at index `i` of a segment of `bytes` bytes. */
const at = (bytes: number, i: number): number => (i * 31 + bytes) & 255;

function fill(d: Domain, seg: Segment): void {
  const att = d.space.get(seg.id).attach();
  att.write((v) => {
    for (let i = 0; i < v.length; i++) v[i] = at(seg.bytes, i);
  });
  att.detach();
}

/** The one swap file in `dir`. */
function swapFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.swap'));
  expect(files).toHaveLength(1);
  return join(dir, files[0]!);
}

describe('swap', () => {
  it.each(['its event loop runs dry', 'it calls process.exit'])('the swap directory a threads-only domain made goes with its process when %s without close()', (how) => {
    const code = `
      import { Domain } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};
      const domain = await Domain.create({ arenaBytes: 1 << 16 });
      const seg = domain.space.make(4096, { swappable: true });
      await seg.swapOut(); // a swap file in it
      console.log(domain.handle().swapDir);
      ${how === 'it calls process.exit' ? 'process.exit(0);' : ''}`;
    const dir = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 }).trim();
    expect(dir).toMatch(/xpmem-swap-/);
    expect(existsSync(dir)).toBe(false);
  });

  it('round trips keep every byte, for any size and attached range, by fault or by swapIn()', async () => {
    const d = await domain({ arenaBytes: 4 << 20 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 300_000 }), fc.nat(), fc.nat(), fc.boolean(), async (bytes, a, b, explicit) => {
          const seg = d.space.make(bytes);
          fill(d, seg);
          const offset = a % bytes;
          const length = 1 + (b % (bytes - offset));
          const part = d.space.get(seg.id, 'ro').attach({ offset, length });
          const resident = d.stats().residentBytes;
          await seg.swapOut();
          expect(seg.swapped).toBe(true);
          expect(d.stats().residentBytes).toBe(resident - Math.ceil(bytes / 64) * 64);
          if (explicit) await seg.swapIn();
          const faults = d.stats().faults;
          part.read((v) => {
            expect(v.length).toBe(length);
            for (let j = 0; j < length; j++) if (v[j] !== at(bytes, offset + j)) throw new Error(`byte ${offset + j} of ${bytes} differs after swap`);
          });
          expect(seg.swapped).toBe(false);
          expect(d.stats().faults).toBe(faults + (explicit ? 0 : 1));
          await seg.remove();
          expect(d.check()).toEqual({ ok: true, errors: [] });
        }),
        { numRuns: 40 },
      );
      expect(readdirSync(d.handle().swapDir)).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('many attachers faulting the same segment at once cause one swap-in, and all read the same bytes', async () => {
    const d = await domain();
    const list = await agents(d, new Gates(), 4);
    try {
      const seg = d.space.make(100_000);
      fill(d, seg);
      const expected = Array.from({ length: 100_000 }, (_, i) => at(100_000, i)).reduce((x, y) => x + y, 0);
      const atts = await Promise.all(list.map(async (a) => a.call('attach', { access: await a.call('get', { segId: seg.id, mode: 'ro' }), range: {} })));
      await seg.swapOut();
      const before = d.stats();
      const sums = await Promise.all(list.map((a, i) => a.call('sum', { att: atts[i] })));
      expect(sums).toEqual([expected, expected, expected, expected]);
      const after = d.stats();
      expect(after.swapIns - before.swapIns).toBe(1);
      expect(after.faults - before.faults).toBe(1);
    } finally {
      await teardown(d, list);
    }
  });

  it('resizes, protects, migrates and removes a swapped-out segment without swapping it in', async () => {
    const d = await domain();
    try {
      const seg = d.space.make(1000);
      fill(d, seg);
      await seg.swapOut();
      await seg.migrate();
      await seg.protect('ro');
      await seg.resize(1500);
      expect(seg.swapped).toBe(true);
      const att = d.space.get(seg.id, 'ro').attach();
      att.read((v) => {
        expect(v.length).toBe(1500);
        for (let i = 0; i < 1000; i++) if (v[i] !== at(1000, i)) throw new Error(`byte ${i} lost`);
        expect(v.subarray(1000).every((x) => x === 0)).toBe(true);
      });
      await expectCode(() => att.write(() => {}), 'ERR_XPMEM_PERMISSION');
      await seg.swapOut();
      await seg.resize(500);
      await seg.resize(1200); // grown again: what the shrink cut reads as zeros, never as the old bytes
      expect(seg.swapped).toBe(true);
      const again = d.space.get(seg.id, 'ro').attach();
      again.read((v) => {
        for (let i = 0; i < 500; i++) if (v[i] !== at(1000, i)) throw new Error(`byte ${i} lost`);
        expect(v.subarray(500).every((x) => x === 0)).toBe(true);
      });
      await seg.swapOut();
      await seg.protect('none');
      await expectCode(() => again.read(() => {}), 'ERR_XPMEM_PERMISSION');
      await expectCode(() => again.map(), 'ERR_XPMEM_PERMISSION');
      expect(seg.swapped).toBe(true); // refused without swapping it in
      await seg.remove();
      expect(readdirSync(d.handle().swapDir)).toEqual([]);
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('sizes past 2^31 - 1 bytes are ERR_OUT_OF_RANGE, also resizing a swapped-out segment, which needs no arena', async () => {
    const d = await domain({ maxArenaBytes: 4 << 20 });
    try {
      const seg = d.space.make(64);
      await seg.swapOut();
      await expectCode(() => seg.resize(2 ** 31), 'ERR_OUT_OF_RANGE');
      await expectCode(() => seg.resizeSync(2 ** 32), 'ERR_OUT_OF_RANGE');
      await expectCode(() => d.space.make(2 ** 31), 'ERR_OUT_OF_RANGE');
      expect(seg.bytes).toBe(64);
      await seg.resize(2 ** 31 - 1); // the largest: a sparse swap file, never resident in a 4 MiB arena
      expect(seg.bytes).toBe(2 ** 31 - 1);
      expect(d.maps()[0]).toMatchObject({ length: 2 ** 31 - 1, state: 'swapped' });
      expect(d.check().errors).toEqual([]);
      await expectCode(() => seg.swapIn(), 'ERR_XPMEM_NO_MEMORY');
      await seg.remove();
      expect(readdirSync(d.handle().swapDir)).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('never swaps a segment made swappable: false', async () => {
    const d = await domain({ memoryLimit: 128 * 1024 });
    try {
      const pinned = d.space.make(100 * 1024, { swappable: false });
      await expectCode(() => pinned.swapOut(), 'ERR_XPMEM_PERMISSION');
      const before = d.maps();
      expect(() => d.space.make(64 * 1024)).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_NO_MEMORY' }));
      expect(d.maps()).toEqual(before);
      expect(pinned.swapped).toBe(false);
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('closes by removing its swap directory', async () => {
    const d = await domain();
    const dir = d.handle().swapDir;
    const seg = d.space.make(4096);
    await seg.swapOut();
    expect(readdirSync(dir)).toHaveLength(1);
    await d.close();
    expect(() => readdirSync(dir)).toThrow();
  });
});

describe('swap I/O faults', () => {
  it('an unwritable swap directory fails swapOut with ERR_XPMEM_SWAP_IO and keeps the data resident', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-gone-'));
    const d = await domain({ swapDir: dir });
    rmSync(dir, { recursive: true }); // gone after create (a temp-dir cleaner, an unmounted disk)
    try {
      const seg = d.space.make(5000);
      fill(d, seg);
      await expectCode(() => seg.swapOut(), 'ERR_XPMEM_SWAP_IO');
      expect(seg.swapped).toBe(false);
      d.space
        .get(seg.id)
        .attach()
        .read((v) => expect(v[4999]).toBe(at(5000, 4999)));
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('a swapDir that is not a writable directory is refused at create with ERR_XPMEM_SWAP_IO, the fs error as cause', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-dirs-'));
    try {
      const file = join(dir, 'a-file');
      writeFileSync(file, '');
      const readOnly = join(dir, 'read-only');
      mkdirSync(readOnly, { mode: 0o500 });
      const cases: [string, string][] = [
        [join(dir, 'missing'), 'ENOENT'],
        [file, 'ENOTDIR'],
      ];
      if (process.getuid?.() !== 0) cases.push([readOnly, 'EACCES']); // root may write into any directory
      for (const [swapDir, cause] of cases) {
        const error = (await Domain.create({ swapDir }).catch((e: unknown) => e)) as Error;
        expect(error).toMatchObject({ code: 'ERR_XPMEM_SWAP_IO', cause: expect.objectContaining({ code: cause }) });
        expect(error.message).toContain(swapDir);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a reclaim whose swap-outs fail for I/O fails with ERR_XPMEM_NO_MEMORY, the fs error as cause', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpmem-gone-'));
    const d = await domain({ memoryLimit: 64 * 1024, swapDir: dir });
    try {
      const held = d.space.make(60 * 1024);
      rmSync(dir, { recursive: true }); // gone after create: every swap-out fails
      const sync = await Promise.resolve()
        .then(() => d.space.make(16 * 1024, { deadlineMs: 200 }))
        .catch((e: unknown) => e);
      const async = await d.space.makeAsync(16 * 1024, { deadlineMs: 200 }).catch((e: unknown) => e);
      for (const error of [sync, async]) {
        expect(error).toMatchObject({ code: 'ERR_XPMEM_NO_MEMORY', cause: expect.objectContaining({ code: 'ENOENT', syscall: 'open' }) });
        expect((error as Error).message).toContain(dir);
      }
      expect(held.swapped).toBe(false);
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('a full disk fails swapOut with ERR_XPMEM_SWAP_IO and keeps the data resident', async () => {
    const d = await domain();
    try {
      const seg = d.space.make(5000);
      fill(d, seg);
      await seg.swapOut();
      const path = swapFile(d.handle().swapDir);
      await seg.swapIn();
      rmSync(path);
      symlinkSync('/dev/full', path); // every write to the swap file now fails with ENOSPC
      await expect(seg.swapOut()).rejects.toThrow(/ENOSPC/);
      expect(seg.swapped).toBe(false);
      d.space
        .get(seg.id)
        .attach()
        .read((v) => {
          for (let i = 0; i < 5000; i++) if (v[i] !== at(5000, i)) throw new Error(`byte ${i} changed`);
        });
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('a swap file removed or truncated behind the domain is reported at every fault, never read as data', async () => {
    const d = await domain();
    try {
      for (const damage of [(p: string) => rmSync(p), (p: string) => truncateSync(p, 100)]) {
        const seg = d.space.make(5000);
        fill(d, seg);
        const att = d.space.get(seg.id, 'ro').attach();
        await seg.swapOut();
        damage(swapFile(d.handle().swapDir));
        await expectCode(() => att.read(() => {}), 'ERR_XPMEM_SWAP_IO');
        await expectCode(() => att.readAsync(() => {}), 'ERR_XPMEM_SWAP_IO');
        await expectCode(() => seg.swapIn(), 'ERR_XPMEM_SWAP_IO');
        expect(seg.swapped).toBe(true);
        expect(d.maps().find((r) => r.segId === seg.id && r.kind === 'segment')?.state).toBe('swapped');
        expect(d.check().errors).toEqual([expect.stringMatching(/swapped out .* swap file .*: its data is lost$/)]);
        await seg.remove();
      }
      expect(d.check().ok).toBe(true);
    } finally {
      await d.close();
    }
  });
});
