/**
 * Section enter/exit, uncontended, against the floor any reader indicator pays: a bare
 * Atomics.add + Atomics.sub pair on a SharedArrayBuffer word, measured in the same run.
 * Also mapped mode's retry() check against two Atomics.load. Run with `npm run bench`.
 */
import { Domain } from '../src/index.js';
import { BATCH, measure, publish } from './report.js';

const domain = await Domain.create();
const seg = domain.space.make(4096);
const att = domain.space.get(seg.id, 'rw').attach();
const map = att.map();
const words = new Int32Array(new SharedArrayBuffer(64));
let sink = 0;

const rows = await measure([
  { name: 'Atomics.add + Atomics.sub', baseline: 'Atomics.add + Atomics.sub', run: () => { for (let i = 0; i < BATCH; i++) { Atomics.add(words, 0, 1); Atomics.sub(words, 0, 1); } } },
  { name: 'att.read(fn), enter + exit', baseline: 'Atomics.add + Atomics.sub', goal: '<= 2x', run: () => { for (let i = 0; i < BATCH; i++) sink += att.read((v) => v[0]!); } },
  { name: 'att.write(Int32Array, fn)', baseline: 'Atomics.add + Atomics.sub', goal: '<= 2x', run: () => { for (let i = 0; i < BATCH; i++) att.write(Int32Array, (v) => { v[0] = i; }); } },
  { name: 'using s = att.section(\'ro\')', baseline: 'Atomics.add + Atomics.sub', goal: '<= 2x', run: () => { for (let i = 0; i < BATCH; i++) { using s = att.section('ro'); sink += s.view[0]!; } } },
  { name: 'two Atomics.load', baseline: 'two Atomics.load', run: () => { for (let i = 0; i < BATCH; i++) sink += Atomics.load(words, 1) + Atomics.load(words, 2); } },
  { name: 'map.retry()', baseline: 'two Atomics.load', goal: '<= 1.5x', run: () => { for (let i = 0; i < BATCH; i++) if (map.retry()) sink++; } },
]);
publish('section', rows);
if (sink === 0.5) console.log(sink); // keeps the measured reads alive
await seg.remove();
await domain.close();
