/**
 * domain.check() is an invariant checker that can fail: each case corrupts one word of the
 * control block the way a protocol bug would, expects the report to name it, then restores it.
 */
import { describe, expect, it } from 'vitest';
import {
  AT_GRANT,
  GR_STATE,
  H_ALLOC,
  SEG_GRANTS,
  SEG_NOTIFIERS,
  H_LIMIT_UNITS,
  H_SEG_FREE,
  HELD_GRANTED,
  SEG_DRAINER,
  SEG_FLAGS,
  SEG_NEXT,
  SEG_OPLOCK,
  SEG_SEQ,
  SEG_UNIT,
  SEGF_SWAPPED,
  SP_HELD,
  SP_STATE,
  SPACE_DEAD,
  IV_END,
  IV_STATE,
  TARGETS,
  capacitiesOf,
  maskAt,
  layoutFor,
  slotBase,
} from '../src/layout.js';
import { domain } from './helpers.js';

describe('domain.check()', () => {
  it('reports every kind of corruption, and nothing once it is undone', async () => {
    const d = await domain({ memoryLimit: 1 << 20 });
    const words = new Int32Array(d.handle().control);
    const layout = layoutFor(capacitiesOf(words));
    const a = d.space.make(4096);
    d.space.make(4096);
    d.space.get(a.id).attach();
    const seg0 = slotBase(layout.segments, 0);
    const grant0 = slotBase(layout.grants, 0);
    const att0 = slotBase(layout.attachments, 0);
    const space0 = slotBase(layout.spaces, 0);
    const free = words[H_SEG_FREE]!;
    const record0 = slotBase(layout.invalidations, 0);
    /** What each case corrupts: one word (index, value), and other words it needs set first. */
    const cases: [string, number, number, RegExp, [number, number][]?][] = [
      ['a free list that loops', slotBase(layout.segments, free) + SEG_NEXT, free, /free list .* corrupt/],
      ['a segment whose offset disagrees with its block', seg0 + SEG_UNIT, 1234, /SEG_UNIT 1234 != block offset/],
      ['arena accounting that does not add up', H_ALLOC + 4, 7, /free blocks hold .* counter says 7/],
      ['resident bytes over memoryLimit', H_LIMIT_UNITS, 1, /over memoryLimit/],
      ['an attachment whose grant is gone', grant0 + GR_STATE, 0, /made through grant 0, which is gone/],
      ["a grant missing from its segment's grant list", seg0 + SEG_GRANTS, -1, /grant 0 is live but in no segment's grant list/],
      ['an attachment through another grant', att0 + AT_GRANT, 7, /made through grant 7/],
      ['a swapped-out segment that still holds memory', seg0 + SEG_FLAGS, SEGF_SWAPPED | 1, /swapped out but still holds arena block/],
      ['a window open with no operation', seg0 + SEG_SEQ, 1, /open window with no operation running/],
      ['a drainer with no operation', seg0 + SEG_DRAINER, 1, /drainer but no operation running/],
      ['an operation lock held by a free space', seg0 + SEG_OPLOCK, 5, /locked by space slot 4, which is free/],
      ['a held word that names no segment', space0 + SP_HELD, HELD_GRANTED | 1, /held word 0 holds .* names no segment/],
      ['a dead space still holding a section', space0 + SP_STATE, SPACE_DEAD, /dead space slot 0 still holds a section/, [[space0 + SP_HELD, 1]]],
      ['an ended record waiting for a free slot', maskAt(layout, 0, TARGETS, 0), 1 << 5, /record 0 waits for the end ack of space slot 5, which is not live/, [[record0 + IV_STATE, IV_END]]],
      ['a segment notifier count its attachments do not have', seg0 + SEG_NOTIFIERS, 1, /segment slot 0: notifier count 1 but its attachments have 0/],
    ];
    expect(d.check()).toEqual({ ok: true, errors: [] });
    for (const [what, index, value, report, first = []] of cases) {
      const olds = first.map(([i]) => words[i]!);
      for (const [i, v] of first) words[i] = v;
      const old = words[index]!;
      words[index] = value;
      const { ok, errors } = d.check();
      words[index] = old;
      for (const [k, [i]] of first.entries()) words[i] = olds[k]!;
      expect(ok, what).toBe(false);
      expect(errors, what).toContainEqual(expect.stringMatching(report));
      expect(d.check().errors, `${what}, undone`).toEqual([]);
    }
    await d.close();
  });
});
