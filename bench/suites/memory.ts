/**
 * Memory figures: migrate bandwidth against TypedArray.prototype.set of the same bytes,
 * make + remove of a small segment against new SharedArrayBuffer and against zeroing as many
 * bytes (its floor), and what the control block costs in bytes next to the arena it describes.
 */
import { Domain, type DomainOptions } from '../../src/index.js';
import { keep } from '../lib/baselines.js';
import { measure, repeat, time } from '../lib/measure.js';
import { atLeast, atMost, bandwidth, count, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const MIB = 2 ** 20;
const BIG = 64 * MIB;
const SMALL = 4096;
const MEAN = 64 * 1024;
/** Default table capacities (Domain.create) and the segment count they are sized for. */
const DEFAULT_SEGMENTS = 4096;

/** Bytes of a domain's control block. */
async function controlBytes(opts: DomainOptions): Promise<{ control: number; arena: number; domain: Domain }> {
  const domain = await Domain.create(opts);
  const handle = domain.handle();
  return { control: handle.control.byteLength, arena: handle.arena.byteLength, domain };
}

/** Control-block bytes with the default tables full of 64 KiB segments, and the bytes per segment slot. */
async function controlRows() {
  const full = await controlBytes({ arenaBytes: DEFAULT_SEGMENTS * MEAN });
  for (let i = 0; i < DEFAULT_SEGMENTS; i++) full.domain.space.make(MEAN);
  const arena = full.domain.handle().arena.byteLength;
  await full.domain.close();
  const small = await controlBytes({
    arenaBytes: MEAN,
    capacity: { segments: DEFAULT_SEGMENTS / 16, grants: DEFAULT_SEGMENTS / 8, attachments: DEFAULT_SEGMENTS / 8, notifiers: DEFAULT_SEGMENTS / 16 },
  });
  await small.domain.close();
  const perSlot = (full.control - small.control) / (DEFAULT_SEGMENTS - DEFAULT_SEGMENTS / 16);
  return [
    row(
      'memory',
      `control-block bytes, ${DEFAULT_SEGMENTS.toLocaleString('en')} segments of 64 KiB (default capacities)`,
      count(full.control, 'bytes'),
      'arena bytes',
      count(arena, 'bytes'),
      atMost(0.01, '<= 1 %'),
    ),
    row('memory', 'control-block bytes per segment slot (marginal, default table ratios)', count(perSlot, 'bytes'), '64 KiB segment', count(MEAN, 'bytes')),
  ];
}

export const memory: Suite = {
  name: 'memory',
  title: 'migrate bandwidth, make + remove, control-block size',
  boundMs: 120_000,
  async run() {
    let sink = 0;
    // make + remove in a 1 MiB domain, then its baseline, each alone (the baseline's garbage
    // would slow make), and before the big buffers below exist: V8 collects more often while
    // more external memory is held, which slows `new SharedArrayBuffer` (12 µs instead of 3 with
    // a 192 MiB arena alive) and would flatter the ratio.
    const small = await Domain.create({ arenaBytes: 1 << 20 });
    const make = await time(repeat('make', 100, () => small.space.make(SMALL).removeSync()));
    await small.close();
    const sab = await time(
      repeat('sab', 1000, () => {
        sink += new SharedArrayBuffer(SMALL).byteLength;
      }),
    );
    // The floor of a make: the fresh bytes must read zero, as a new SharedArrayBuffer's do.
    const page = new Uint8Array(new SharedArrayBuffer(SMALL));
    const zeros = new Uint8Array(SMALL);
    const zeroing = await time(repeat('zero', 1000, () => page.set(zeros)));
    const domain = await Domain.create({ arenaBytes: 3 * BIG });
    const big = domain.space.make(BIG);
    const from = new Uint8Array(new SharedArrayBuffer(BIG)).fill(7);
    const to = new Uint8Array(new SharedArrayBuffer(BIG));
    const t = await measure([
      { name: 'set', batch: 1, run: () => to.set(from) },
      { name: 'migrate', batch: 1, run: () => big.migrateSync() },
    ]);
    keep(sink);
    await domain.close();
    return {
      rows: [
        row('memory', 'migrate bandwidth, 64 MiB (migrateSync)', bandwidth(t.get('migrate')!, BIG), 'TypedArray.prototype.set of the same bytes', bandwidth(t.get('set')!, BIG), atLeast(0.95)),
        row('memory', 'make + removeSync of 4 KiB', ns(make), 'new SharedArrayBuffer(4096)', ns(sab), atMost(0.2, '>= 5x faster (<= 0.2x)')),
        row('memory', 'zeroing 4 KiB of shared memory (the floor of a make: fresh bytes read zero)', ns(zeroing), 'new SharedArrayBuffer(4096)', ns(sab)),
        row('memory', 'make + removeSync of 4 KiB, against zeroing 4 KiB', ns(make), 'zeroing 4 KiB of shared memory', ns(zeroing)),
        ...(await controlRows()),
      ],
      curves: [],
    };
  },
};
