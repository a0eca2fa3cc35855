/**
 * Memory figures: migrate bandwidth against TypedArray.prototype.set of the same bytes,
 * make + remove of a small segment (blocking and awaited) against new SharedArrayBuffer and
 * against zeroing as many bytes (its floor), timed in a process of their own, and what the
 * control block costs in bytes next to the arena it describes.
 */
import { Domain, type DomainOptions } from '../../src/index.js';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { measure, type Timing } from '../lib/measure.js';
import { atLeast, atMost, bandwidth, count, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const MIB = 2 ** 20;
const MAKE_REMOVE = fileURLToPath(new URL('../fixtures/make-remove.js', import.meta.url));

/** make + remove and its baselines, timed in a process of their own (bench/fixtures/make-remove.ts). */
function alone(): Record<'sync' | 'awaited' | 'sab' | 'zeroing', Timing> {
  return JSON.parse(execFileSync(process.execPath, [MAKE_REMOVE], { encoding: 'utf8', env: process.env }));
}
const BIG = 64 * MIB;
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
    const small = alone();
    const domain = await Domain.create({ arenaBytes: 3 * BIG });
    const big = domain.space.make(BIG);
    const from = new Uint8Array(new SharedArrayBuffer(BIG)).fill(7);
    const to = new Uint8Array(new SharedArrayBuffer(BIG));
    const t = await measure([
      { name: 'set', batch: 1, run: () => to.set(from) },
      { name: 'migrate', batch: 1, run: () => big.migrateSync() },
    ]);
    await domain.close();
    return {
      rows: [
        row('memory', 'migrate bandwidth, 64 MiB (migrateSync)', bandwidth(t.get('migrate')!, BIG), 'TypedArray.prototype.set of the same bytes', bandwidth(t.get('set')!, BIG), atLeast(0.95)),
        row('memory', 'make + removeSync of 4 KiB (own process)', ns(small.sync), 'new SharedArrayBuffer(4096), same process', ns(small.sab), atMost(1, 'at most as costly (<= 1x)')),
        row('memory', 'make + await remove() of 4 KiB (own process)', ns(small.awaited), 'new SharedArrayBuffer(4096), same process', ns(small.sab), atMost(1, 'at most as costly (<= 1x)')),
        row('memory', 'zeroing 4 KiB of shared memory (the floor of a make: fresh bytes read zero)', ns(small.zeroing), 'new SharedArrayBuffer(4096), same process', ns(small.sab)),
        row('memory', 'make + removeSync of 4 KiB, against zeroing 4 KiB', ns(small.sync), 'zeroing 4 KiB of shared memory', ns(small.zeroing)),
        ...(await controlRows()),
      ],
      curves: [],
    };
  },
};
