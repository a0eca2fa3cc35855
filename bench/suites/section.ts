/**
 * Sections, uncontended, against the floor any reader indicator pays (a bare Atomics.add +
 * Atomics.sub pair on a SharedArrayBuffer word) and against their own rwlock's atomics alone,
 * and mapped mode's retry() check (one load of the seqcount) against one Atomics.load.
 */
import { Domain } from '../../src/index.js';
import { atomicsPair, HOLD, holdPair, keep, LOAD, oneLoad, PAIR } from '../lib/baselines.js';
import { measure, repeat } from '../lib/measure.js';
import { atMost, ns, row } from '../lib/rows.js';
import type { Suite } from '../lib/suite.js';

const BATCH = 1000;

export const section: Suite = {
  name: 'section',
  title: 'section enter/exit and map().retry(), uncontended',
  boundMs: 120_000,
  async run() {
    const domain = await Domain.create();
    const seg = domain.space.make(4096);
    const att = domain.space.get(seg.id, 'rw').attach();
    const map = att.map();
    let sink = 0;
    const t = await measure([
      atomicsPair(),
      holdPair(),
      repeat('att.read(fn)', BATCH, () => {
        sink += att.read((v) => v[0]!);
      }),
      repeat('att.write(Int32Array, fn)', BATCH, () => {
        att.write(Int32Array, (v) => {
          v[0] = sink;
        });
      }),
      repeat("using s = att.section('ro')", BATCH, () => {
        using s = att.section('ro');
        sink += s.view[0]!;
      }),
      oneLoad(),
      repeat('map.retry()', BATCH, () => {
        if (map.retry()) sink++;
      }),
    ]);
    keep(sink);
    await seg.remove();
    await domain.close();
    const pair = ns(t.get(PAIR)!);
    const at = (name: string) => ns(t.get(name)!);
    return {
      rows: [
        row('section', 'section enter/exit, uncontended: att.read(fn)', at('att.read(fn)'), PAIR, pair, atMost(2)),
        row('section', "a section's rwlock atomics alone (store + load, store + load): the floor of a reader indicator a killed thread cannot leave set", at(HOLD), PAIR, pair),
        row('section', 'section enter/exit, uncontended: att.read(fn), against its rwlock atomics alone', at('att.read(fn)'), HOLD, at(HOLD)),
        row('section', 'att.write(Int32Array, fn)', at('att.write(Int32Array, fn)'), PAIR, pair),
        row('section', "using s = att.section('ro')", at("using s = att.section('ro')"), PAIR, pair),
        row('section', 'mapped-mode map.retry() check', at('map.retry()'), LOAD, ns(t.get(LOAD)!), atMost(1.5)),
      ],
      curves: [],
    };
  },
};
