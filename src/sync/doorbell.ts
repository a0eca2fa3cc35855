/**
 * Doorbells: each space sleeps only on its own SP_DOORBELL word (a task's wait state). Whoever
 * changes something a space may wait for rings that space's doorbell; the sleeper re-checks
 * every condition it cares about, so one ring serves events, lock releases and acks alike.
 *
 * A ring wakes (a futex system call in a shared domain, about 1.4 µs even with nobody asleep)
 * only when a wait of the space may sleep: each counts itself in SP_SLEEPERS before it looks at
 * the doorbell to sleep on it (sleepers()), and a ring changes the doorbell before it reads the
 * count. Both are sequentially consistent, so either the ring sees the count, or the sleeper's
 * look (the kernel's or V8's, after the count) sees the changed doorbell and does not sleep:
 * the pattern of the domain mutex's sleepers (test/model/mutex.pml). Every function here may be
 * called from any thread and never sleeps.
 */
import { HELD_GRANTED, HELD_SEG_MASK, HELD_WANT, SEG_WAITERS, SP_DOORBELL, SP_EVENTS, SP_HELD, SP_SLEEPERS, SP_STATE, SP_WAIT_ANY, SPACE_LIVE, slotBase, spaceTop, type Layout } from '../layout.js';
import { notify } from './futex.js';

/** Wakes space `space` (sync and async sleepers alike). */
export function ring(words: Int32Array, layout: Layout, space: number): void {
  const base = slotBase(layout.spaces, space);
  Atomics.add(words, base + SP_DOORBELL, 1);
  if (Atomics.load(words, base + SP_SLEEPERS) !== 0) notify(words, base + SP_DOORBELL);
}

/**
 * Counts a wait of space `space` that may sleep on its doorbell in (+1, before the wait looks
 * at the doorbell to sleep) or out (-1, after it woke). Its own thread; never sleeps.
 */
export function sleepers(words: Int32Array, layout: Layout, space: number, delta: 1 | -1): void {
  Atomics.add(words, slotBase(layout.spaces, space) + SP_SLEEPERS, delta);
}

/** Rings every live space (a death or a close: every sleeper re-checks). */
export function ringAll(words: Int32Array, layout: Layout): void {
  for (let s = 0; s < layout.spaces.capacity; s++) if (Atomics.load(words, slotBase(layout.spaces, s) + SP_STATE) === SPACE_LIVE) ring(words, layout, s);
}

/** Tells space `space` that invalidation events may be waiting for it, and wakes it. */
export function post(words: Int32Array, layout: Layout, space: number): void {
  Atomics.store(words, slotBase(layout.spaces, space) + SP_EVENTS, 1);
  ring(words, layout, space);
}

/**
 * Rings every space waiting on segment `seg` (window end, operation lock release). Cheap when
 * nobody waits: one exchange. Waiters park (a held word with HELD_WANT, or SP_WAIT_ANY), then
 * set SEG_WAITERS, then re-check their condition.
 *
 * With `grant` (a window just ended, before any next window can open), section entries that
 * waited for it are let in: their held word turns HELD_GRANTED, which counts as a held section
 * (sync/rwlock.ts). This is the rwsem's reader hand-off: back-to-back VM operations cannot
 * starve the sections that queued behind a window.
 */
export function wakeSegmentWaiters(words: Int32Array, layout: Layout, seg: number, grant: boolean): void {
  if (Atomics.exchange(words, slotBase(layout.segments, seg) + SEG_WAITERS, 0) === 0) return;
  const { spaces } = layout;
  const depth = layout.caps.depth;
  for (let s = 0, top = spaceTop(words); s < top; s++) {
    const base = slotBase(spaces, s);
    if (Atomics.load(words, base + SP_STATE) !== SPACE_LIVE) continue;
    let wake = Atomics.load(words, base + SP_WAIT_ANY) > 0;
    for (let d = 0; d < depth; d++) {
      const v = Atomics.load(words, base + SP_HELD + d);
      if ((v & HELD_WANT) === 0 || (v & HELD_SEG_MASK) !== seg + 1) continue;
      if (grant) Atomics.compareExchange(words, base + SP_HELD + d, v, v | HELD_GRANTED);
      wake = true;
    }
    if (wake) ring(words, layout, s);
  }
}
