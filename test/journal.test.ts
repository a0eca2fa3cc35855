/**
 * The journaled transaction (src/sync/mutex.ts): a reused Tx buffers writes in an open-addressed
 * table that grows, reads see the buffer first, commit publishes the writes in first-write order
 * through the journal (only the writes that change their word), and a transaction that throws
 * or overflows the journal writes nothing, leaving nothing behind for the next one. A join's
 * commit, replayed a prefix at a time, never shows a reader without the mutex a live space
 * whose process is not yet recorded; a commit that makes a slot live (a space, segment, grant,
 * attachment or notifier) shows it whole once its state reads live, and never shows a stale
 * handle's check (slotIs, its two reads taken at any two prefixes in order) the old generation live.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ControlBlock } from '../src/control/control.js';
import { AT_LIVE, GR_LIVE, H_JOURNAL_LEN, NT_LIVE, SEG_LIVE, SP_PID, SP_STATE, SPACE_LIVE, slotBase, slotIs, spaceTop, type Capacities, type Table } from '../src/layout.js';
import { forget, joinMm } from '../src/workers/join.js';
import { departed } from '../src/workers/process.js';

const CAPS: Capacities = { spaces: 4, segments: 64, grants: 64, attachments: 64, notifiers: 64, invalidations: 4, depth: 2, journal: 4096 };

function controlBlock(journal = CAPS.journal): ControlBlock {
  return ControlBlock.format({ ...CAPS, journal }, { arenaBytes: 1 << 16, maxArenaBytes: 1 << 16, memoryLimit: 0, deadlineMs: 1000, swapDir: '/tmp' });
}

/** The journal of the last commit: (word, value) in commit order, up to the first word 0 (a fresh journal's end). */
function journalOf({ words, layout }: ControlBlock): [number, number][] {
  const pairs: [number, number][] = [];
  for (let j = layout.journal; words[j] !== 0; j += 2) pairs.push([words[j]!, words[j + 1]!]);
  return pairs;
}

/** Words every test may write: below the journal area, past the header. */
function scratch(cb: ControlBlock): { from: number; to: number } {
  return { from: 256, to: cb.layout.journal };
}

describe('journaled transactions', () => {
  it('agree with a map of writes, across table growth and reuse (property)', () => {
    const cb = controlBlock();
    const { from, to } = scratch(cb);
    // Small values often write back what a word holds: such writes are not published.
    const value = fc.oneof(fc.integer({ min: -1, max: 1 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
    const op = fc.record({ word: fc.integer({ min: from, max: Math.min(to - 1, from + 3000) }), value });
    fc.assert(
      fc.property(fc.array(fc.array(op, { maxLength: 600, size: 'max' }), { minLength: 1, maxLength: 6 }), (transactions) => {
        const expected = new Map<number, number>();
        for (let w = from; w < to; w++) expected.set(w, cb.words[w]!);
        for (const writes of transactions) {
          const mine = new Map<number, number>();
          const firstOrder: number[] = [];
          cb.transact(0, (tx) => {
            for (const { word, value } of writes) {
              const seen = tx.get(word);
              if (seen !== (mine.get(word) ?? expected.get(word))) throw new Error(`word ${word} read ${seen} inside the transaction`);
              if (!mine.has(word)) firstOrder.push(word);
              mine.set(word, value);
              tx.set(word, value);
              if (cb.words[word] !== expected.get(word)) throw new Error(`word ${word} published before commit`);
            }
          });
          const changed = firstOrder.filter((w) => mine.get(w) !== expected.get(w));
          for (const [w, v] of mine) expected.set(w, v);
          const journal = cb.layout.journal;
          expect(changed.map((_, k) => cb.words[journal + 2 * k])).toEqual(changed); // the changes, in first-write order
          expect(Atomics.load(cb.words, H_JOURNAL_LEN)).toBe(0);
        }
        for (let w = from; w < to; w++) if (cb.words[w] !== expected.get(w)) throw new Error(`word ${w} is ${cb.words[w]} after commit, not ${expected.get(w)}`);
      }),
      { numRuns: 60 },
    );
  });

  it('a transaction that throws writes nothing, and the next one does not see its buffered writes', () => {
    const cb = controlBlock();
    const { from } = scratch(cb);
    const before = Array.from(cb.words.subarray(from, from + 500));
    expect(() =>
      cb.transact(0, (tx) => {
        for (let k = 0; k < 500; k++) tx.set(from + k, k + 1);
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(Array.from(cb.words.subarray(from, from + 500))).toEqual(before);
    cb.transact(0, (tx) => {
      for (let k = 0; k < 500; k++) expect(tx.get(from + k)).toBe(before[k]);
    });
  });

  it('more writes than capacity.journal fail with ERR_XPMEM_NO_MEMORY and write nothing', () => {
    const cb = controlBlock(100);
    const { from } = scratch(cb);
    const before = Array.from(cb.words.subarray(from, from + 101));
    expect(() =>
      cb.transact(0, (tx) => {
        for (let k = 0; k < 101; k++) tx.set(from + k, -1);
        for (let k = 0; k < 50; k++) tx.set(from + 200 + k, tx.get(from + 200 + k)); // unchanged: not counted
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_XPMEM_NO_MEMORY', message: expect.stringContaining('needs 101 control-block writes') }));
    expect(Array.from(cb.words.subarray(from, from + 101))).toEqual(before);
    cb.transact(0, (tx) => {
      for (let k = 0; k < 100; k++) tx.set(from + k, k); // exactly the capacity commits
    });
    expect(Array.from(cb.words.subarray(from, from + 100))).toEqual(Array.from({ length: 100 }, (_, k) => k));
  });

  it('a write that leaves its word as it was takes no journal entry: thousands of them commit in a journal of 100', () => {
    const cb = controlBlock(100);
    const { from } = scratch(cb);
    cb.transact(0, (tx) => {
      for (let k = 0; k < 100; k++) tx.set(from + k, k + 7);
    });
    cb.transact(0, (tx) => {
      for (let k = 0; k < 2000; k++) tx.set(from + 100 + k, tx.get(from + 100 + k)); // as they were
      for (let k = 0; k < 100; k++) tx.set(from + k, k + 8); // and exactly the capacity of changes
    });
    expect(Array.from(cb.words.subarray(from, from + 100))).toEqual(Array.from({ length: 100 }, (_, k) => k + 8));
  });

  it('a slot a commit makes live reads whole once live, and never as its old generation live, whichever prefixes the check reads at (space, segment, grant, attachment, notifier)', async () => {
    const cb = controlBlock();
    const { words, layout } = cb;
    /**
     * Runs `commit` (one transaction) and checks the slot of `table` it makes live (as `live`),
     * replaying its journal: at every prefix where the slot's state reads live, every word of the
     * slot has its final value; a stale handle's check, its k-th read served at the k-th of any
     * two prefixes in order, fails; the fresh one's passes once committed. Returns what `commit` did.
     */
    const published = <T>(commit: () => T, table: Table, live: number): T => {
      words.fill(0, layout.journal, layout.journal + 2 * CAPS.journal); // a fresh journal: its end reads 0
      const before = words.slice();
      const result = commit();
      const pairs = journalOf(cb);
      const valueAt = (index: number, prefix: number): number => {
        let value = before[index]!;
        for (let k = 0; k < prefix; k++) if (pairs[k]![0] === index) value = pairs[k]![1];
        return value;
      };
      const made = Array.from({ length: table.capacity }, (_, s) => slotBase(table, s)).filter((base) => before[base] !== live && words[base] === live);
      expect(made.length).toBe(1);
      const base = made[0]!;
      const [stale, fresh] = [before[base + 1]!, words[base + 1]!];
      expect(fresh).not.toBe(stale);
      for (let prefix = 0; prefix <= pairs.length; prefix++) {
        if (valueAt(base, prefix) !== live) continue;
        for (let w = base; w < base + table.stride; w++) expect(valueAt(w, prefix), `word ${w - base} of the slot, live at prefix ${prefix} of ${pairs.length}`).toBe(words[w]);
      }
      for (let first = 0; first <= pairs.length; first++)
        for (let second = first; second <= pairs.length; second++) {
          const at = [first, second];
          let read = 0;
          const replay = (_: Int32Array, index: number): number => valueAt(index, at[read++]!);
          expect(slotIs(words, base, stale, live, replay), `generation ${stale} read live at prefixes ${first}, ${second} of ${pairs.length}`).toBe(false);
        }
      expect(slotIs(words, base, fresh, live)).toBe(true);
      return result;
    };
    const { space } = published(() => joinMm(cb.handle), layout.spaces, SPACE_LIVE);
    try {
      const old = space.make(8192);
      space.get(old.id, 'ro').attach({ offset: 64, length: 128 }).detach();
      await old.remove(); // its segment, grant and attachment slots are taken again below, with other words
      const seg = published(() => space.make(4096), layout.segments, SEG_LIVE);
      const permit = published(() => space.get(seg.id, 'rw'), layout.grants, GR_LIVE);
      const attachment = published(() => permit.attach(), layout.attachments, AT_LIVE);
      published(() => attachment.notifier({ invalidateStart: () => {} }), layout.notifiers, NT_LIVE);
    } finally {
      forget(cb.id);
    }
  });

  it('a join publishes its space whole: at every prefix of its commit, a live space has its process recorded', () => {
    const cb = controlBlock();
    const { words, layout } = cb;
    const before = words.slice();
    joinMm(cb.handle);
    forget(cb.id);
    const pairs = journalOf(cb); // a fresh block's journal ends at its first 0
    expect(pairs.length).toBeGreaterThan(0);
    const seen = before.slice();
    for (const [word, value] of pairs) {
      seen[word] = value; // what a reader without the mutex may see midway through the commit
      for (let s = 0; s < spaceTop(seen); s++) {
        const base = slotBase(layout.spaces, s);
        if (seen[base + SP_STATE] === SPACE_LIVE) expect(seen[base + SP_PID], `space ${s} live after ${word}`).toBe(process.pid);
      }
      expect(departed(seen, layout)).toEqual([]); // settled()'s scan: nothing to reap, and no process to look up
    }
  });
});
