/**
 * The domain mutex and its journal: the `mm` lock of the control block's tables.
 *
 * Contract: every [tx] word (see layout.ts) is written only inside `transact`, which holds the
 * mutex. The mutex is never held across a sleep other than waiting for the mutex itself, nor
 * across a user callback, so holders always finish quickly; waiters sleep on the mutex word.
 *
 * Writes are buffered in a Tx overlay and published at commit through a journal: the pairs are
 * written to the journal area, H_JOURNAL_LEN is set (the commit point), the pairs are applied,
 * H_JOURNAL_LEN is cleared. A thread terminated at any instant therefore leaves either nothing
 * (before the commit point) or a complete journal that `recover` replays (its values are
 * absolute, so replaying twice is harmless). A function that throws inside `transact` leaves
 * the control block exactly as it was: this is how a failed call leaves the domain unchanged.
 */
import { H_JOINER_OWNER, H_JOINER_START, H_JOINER_THREAD, H_JOURNAL_LEN, H_MUTEX, H_MUTEX_WAITERS, blame, type Layout } from '../layout.js';
import { blamed, xpmemError } from '../errors.js';
import { acrossProcesses, deadlineIn, notify, remaining, wait } from './futex.js';
import { holderDied, joiningThread } from './robust.js';
import { pause } from './pause.js';

const SPIN = 64;

/**
 * Buffered writes over the control block; reads see the buffer first. One Tx per thread and
 * control block, reused by each of its transactions (which never nest: the mutex is not
 * re-entrant): an open-addressed table of (word, value) whose slots count as empty unless they
 * carry the current transaction's stamp, so starting a transaction clears nothing and a
 * transaction allocates nothing. Writes are published in the order they were first made.
 *
 * Reads of words not written in this transaction are plain loads (Atomics.load is a builtin
 * call on Node 20, ~10 ns, and a transaction reads dozens of words): every [tx] word was last
 * written by a holder whose unlock happens-before our lock, so a plain load sees it; an
 * [atomic] word read here is a snapshot either way, and no Dekker pair goes through a Tx (the
 * protocol's store-then-load pairs use Atomics directly).
 */
export class Tx {
  readonly #cb: Int32Array;
  /** Table slots: the word written, its value, and the stamp of the transaction that wrote it. */
  #words = new Int32Array(MIN_SLOTS);
  #values = new Int32Array(MIN_SLOTS);
  #stamps = new Uint32Array(MIN_SLOTS);
  /** Table slots in first-write order; #n of them are this transaction's. */
  #order = new Int32Array(MIN_SLOTS / 2);
  #n = 0;
  /** 32 - log2(table slots). */
  #shift = 32 - Math.log2(MIN_SLOTS);
  #stamp = 1;
  /** What runs after commit and unlock; made only when a transaction registers something. */
  #after: (() => void)[] | undefined;

  constructor(cb: Int32Array) {
    this.#cb = cb;
  }

  /** Starts a transaction: forgets every buffered write. Caller holds the mutex. */
  begin(): void {
    this.#n = 0;
    this.#after = undefined;
    if (++this.#stamp > 0xffffffff) {
      this.#stamps.fill(0);
      this.#stamp = 1;
    }
  }

  get(index: number): number {
    const slot = this.#find(index);
    return this.#stamps[slot] === this.#stamp ? this.#values[slot]! : this.#cb[index]!;
  }

  set(index: number, value: number): void {
    const slot = this.#find(index);
    this.#values[slot] = value;
    if (this.#stamps[slot] === this.#stamp) return;
    this.#stamps[slot] = this.#stamp;
    this.#words[slot] = index;
    this.#order[this.#n++] = slot;
    if (2 * this.#n > this.#order.length) this.#grow();
  }

  /** Runs `fn` after commit and unlock (wakeups, notifications): never inside the mutex. */
  after(fn: () => void): void {
    (this.#after ??= []).push(fn);
  }

  /**
   * Caller holds the mutex. Publishes the buffered writes that change their word through the
   * journal; a write leaving its word as it was publishes nothing (a make() into a reused slot
   * writes back most fields as they were), so it takes no journal entry and no store.
   */
  commit(layout: Layout): void {
    const cb = this.#cb;
    const order = this.#order;
    const words = this.#words;
    const values = this.#values;
    const end = layout.journal + 2 * layout.caps.journal;
    let n = 0;
    for (let k = 0, j = layout.journal; k < this.#n; k++) {
      const slot = order[k]!;
      const word = words[slot]!;
      const value = values[slot]!;
      if (cb[word] === value) continue; // a plain load: the mutex orders [tx] words
      if (j === end) throw this.#overflow(layout, k);
      cb[j++] = word; // the journal area is scratch until H_JOURNAL_LEN says otherwise
      cb[j++] = value;
      order[n++] = slot;
    }
    if (n === 0) return;
    Atomics.store(cb, H_JOURNAL_LEN, n);
    for (let k = 0; k < n; k++) Atomics.store(cb, words[order[k]!]!, values[order[k]!]!);
    Atomics.store(cb, H_JOURNAL_LEN, 0);
  }

  /** ERR_XPMEM_NO_MEMORY for a transaction whose changes, counted from write `k` on, pass the journal. */
  #overflow(layout: Layout, k: number): Error {
    let changes = layout.caps.journal;
    for (; k < this.#n; k++) if (this.#cb[this.#words[this.#order[k]!]!] !== this.#values[this.#order[k]!]) changes++;
    return xpmemError('ERR_XPMEM_NO_MEMORY', `operation needs ${changes} control-block writes, journal holds ${layout.caps.journal}; raise capacity.journal`);
  }

  /** The functions registered with after(), handed over once (a later transaction may begin while they run). */
  takeAfter(): (() => void)[] | undefined {
    const after = this.#after;
    this.#after = undefined;
    return after;
  }

  /** The table slot holding `index` in this transaction, or the empty slot where it would go. */
  #find(index: number): number {
    const mask = this.#stamps.length - 1;
    let slot = Math.imul(index, 0x9e3779b1) >>> this.#shift; // Fibonacci hashing: the product's top bits
    while (this.#stamps[slot] === this.#stamp && this.#words[slot] !== index) slot = (slot + 1) & mask;
    return slot;
  }

  /** Doubles the table (kept at most half full) and re-inserts this transaction's writes. */
  #grow(): void {
    const { length } = this.#stamps;
    const words = this.#words;
    const values = this.#values;
    const order = this.#order.subarray(0, this.#n);
    this.#words = new Int32Array(2 * length);
    this.#values = new Int32Array(2 * length);
    this.#stamps = new Uint32Array(2 * length);
    this.#order = new Int32Array(length);
    this.#shift--;
    const n = this.#n;
    this.#n = 0;
    for (let k = 0; k < n; k++) this.set(words[order[k]!]!, values[order[k]!]!);
  }
}

/** Table slots of a fresh Tx (a power of two). */
const MIN_SLOTS = 128;

/** Replays a committed journal left by a holder that died. Caller owns the mutex word. */
function recover(cb: Int32Array, layout: Layout): void {
  const n = Atomics.load(cb, H_JOURNAL_LEN);
  for (let k = 0, j = layout.journal; k < n; k++, j += 2) Atomics.store(cb, cb[j]!, cb[j + 1]!);
  Atomics.store(cb, H_JOURNAL_LEN, 0);
}

/**
 * Takes the mutex for space `self` (a thread not yet joined passes its joiner identity,
 * robust.ts joinerOf). May sleep (synchronously, on the mutex word) for `deadlineMs`, counted
 * from when it stops spinning (an uncontended lock never reads the clock); throws
 * ERR_XPMEM_TIMEOUT naming the holder when it passes. A joiner of a shared domain publishes its
 * process's start time and its kernel thread once it holds the mutex, then its identity as their
 * owner: its identity names its pid only, which the kernel may hand to another process once it
 * died, and a worker that ends holding it leaves its process running (robust.ts holderDied).
 * They are worked out before the mutex is taken and stored with no call in between:
 * worker.terminate() stops a thread only where a function is entered or a loop turns, so it
 * cannot end one between the two.
 */
function lock(cb: Int32Array, layout: Layout, self: number, deadlineMs: number): void {
  const mine = self >= 0 ? self + 1 : self;
  const joiner = mine < 0 && acrossProcesses(cb) ? joiningThread() : undefined;
  let deadline = NaN;
  for (let i = 0; ; i++) {
    const holder = Atomics.compareExchange(cb, H_MUTEX, 0, mine);
    if (holder === 0) {
      if (joiner !== undefined) {
        Atomics.store(cb, H_JOINER_THREAD, joiner.thread);
        Atomics.store(cb, H_JOINER_START, joiner.start);
        Atomics.store(cb, H_JOINER_OWNER, mine); // last: the two above are this holding's
      }
      return;
    }
    if (holder === mine) throw xpmemError('ERR_XPMEM_WOULD_DEADLOCK', 'the domain mutex is already held by this thread (a library call from inside a library critical section)');
    if (i < SPIN) {
      pause();
      continue;
    }
    if (i === SPIN) deadline = deadlineIn(deadlineMs);
    const ms = remaining(deadline);
    if (ms === 0) throw heldTooLong(cb, layout, holder);
    sleeping(cb, 1);
    try {
      wait(cb, H_MUTEX, holder, deadlineIn(Math.min(ms, 50)));
    } finally {
      sleeping(cb, -1);
    }
    seizeIfDied(cb, layout, self);
  }
}

/**
 * In a shared domain, takes the mutex away from a holder whose process died (robust: what the
 * kernel's robust futex list does for a pthread mutex), replaying its journal, for `self` (then
 * releases it). Called by waiters after each slice of sleep on the mutex, and by each process's
 * watcher: a waiter blocked in this thread goes on within a slice of a death, without waiting for
 * a reaper. Returns true if it did. Never sleeps.
 */
export function seizeIfDied(cb: Int32Array, layout: Layout, self: number): boolean {
  if (!acrossProcesses(cb)) return false;
  const holder = Atomics.load(cb, H_MUTEX);
  return holder !== 0 && holderDied(cb, layout, holder) && seize(cb, layout, holder > 0 ? holder - 1 : holder, self);
}

/** ERR_XPMEM_TIMEOUT naming the mutex's holder (mutex word `holder`) by its public space id and its thread. */
function heldTooLong(cb: Int32Array, layout: Layout, holder: number): Error {
  if (holder < 0) return xpmemError('ERR_XPMEM_TIMEOUT', 'the domain mutex is held by a thread joining the domain, past the deadline');
  const about = blame(cb, layout, holder - 1);
  return xpmemError('ERR_XPMEM_TIMEOUT', `the domain mutex is held by ${blamed(about)} past the deadline`, about);
}

/**
 * Counts a sleeper on the mutex word in (+1) or out (-1). A sleeper counts itself in before it
 * sleeps and sleeps only on a holder it saw (never on 0): the unlock ending that holding comes
 * after the count, so it notifies, also when the holder unlocked and locked again in between
 * (a flag that the first unlock cleared lost that wake-up; test/model/mutex.pml). A thread
 * terminated while counted leaves the count high: unlocks then notify for nobody, which costs
 * time, never a wake-up. Never sleeps; callable from any thread.
 */
export function sleeping(cb: Int32Array, delta: 1 | -1): void {
  Atomics.add(cb, H_MUTEX_WAITERS, delta);
}

/** Releases the mutex (what a joiner published first). Never sleeps; wakes mutex sleepers. */
export function unlock(cb: Int32Array): void {
  if (cb[H_JOINER_OWNER] !== 0) unpublish(cb);
  Atomics.store(cb, H_MUTEX, 0);
  if (Atomics.load(cb, H_MUTEX_WAITERS) > 0) notify(cb, H_MUTEX);
}

/**
 * Clears what a joiner published with its hold, its owner first: what is read without it counts
 * for nothing. A seizer's identity is never the owner (it seized from another), so what the dead
 * joiner published says nothing of it. Never sleeps.
 */
function unpublish(cb: Int32Array): void {
  Atomics.store(cb, H_JOINER_OWNER, 0);
  Atomics.store(cb, H_JOINER_START, 0);
  Atomics.store(cb, H_JOINER_THREAD, 0);
}

/**
 * Takes the mutex away from a space (slot `dead`) or a joining thread (`dead` negative, its
 * identity as lock() took it) that died holding it (only a reaper calls this, once the death is
 * known), replaying its committed journal. Returns true if it did.
 */
export function seize(cb: Int32Array, layout: Layout, dead: number, self: number): boolean {
  const held = dead >= 0 ? dead + 1 : dead;
  if (Atomics.compareExchange(cb, H_MUTEX, held, self >= 0 ? self + 1 : self) !== held) return false;
  recover(cb, layout);
  unlock(cb);
  return true;
}

/**
 * Runs `fn` under the domain mutex with `tx` (this thread's, begun afresh) and commits it; if
 * `fn` throws, nothing is written. Callbacks registered with `tx.after` run once the mutex is released.
 * May sleep waiting for the mutex (bounded by `deadlineMs`).
 */
export function transact<T>(tx: Tx, cb: Int32Array, layout: Layout, self: number, deadlineMs: number, fn: (tx: Tx) => T): T {
  lock(cb, layout, self, deadlineMs);
  let result: T;
  let after: (() => void)[] | undefined;
  try {
    tx.begin();
    result = fn(tx);
    tx.commit(layout);
  } finally {
    after = tx.takeAfter();
    unlock(cb);
  }
  if (after !== undefined) for (const fn of after) fn();
  return result;
}
