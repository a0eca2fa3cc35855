/*
 * The domain mutex's sleepers (src/sync/mutex.ts lock / unlock / sleeping, and the asynchronous
 * wait for a free mutex in src/notifier/invalidate.ts mutexFree with notifier/wait.ts
 * waitAsyncFor). See README.md, "The mutex model".
 *
 * Three threads take the mutex twice each: threads 1 and 2 as a synchronous lock does, thread 3
 * as an asynchronous VM operation does (wait without blocking until the mutex is free, then
 * lock). No wait has a deadline: every sleeper must be woken by an unlock, so a lost wake-up
 * is an invalid end state. Two breaks restore the old code's two lost wake-ups:
 * BREAK_MUTEX_FLAG, a waiters flag that unlock cleared (lost the wake-up of a sleeper whose
 * holder unlocked and locked again before it slept), and BREAK_MUTEX_SEEN.
 */

#define THREADS 3
#define ROUNDS 2

byte M = 0;               /* H_MUTEX: holder id, 0 = free */
byte W = 0;               /* H_MUTEX_WAITERS */
bool asleep[THREADS + 1]; /* sleeping on the futex of M */
byte inside = 0;          /* ghost: threads holding the mutex */

/* Atomics.notify(M): wakes every sleeper. */
inline notifyAll() {
  asleep[1] = false; asleep[2] = false; asleep[3] = false
}

/* Atomics.wait(M, expected): returns at once if M differs, else sleeps until notified. */
inline futexWait(me, expected) {
  atomic { if :: M != expected -> skip :: else -> asleep[me] = true fi };
  !asleep[me]
}

/* sleeping(+1); with the break, the flag. */
inline countIn() {
#ifdef BREAK_MUTEX_FLAG
  W = 1
#else
  W++
#endif
}

/* sleeping(-1); the flag version had none. */
inline countOut() {
#ifdef BREAK_MUTEX_FLAG
  skip
#else
  W--
#endif
}

/* unlock: store 0, then notify if anybody sleeps (the break: exchange the flag to 0). */
inline unlock() {
  inside--;
  M = 0;
#ifdef BREAK_MUTEX_FLAG
  atomic { if :: W != 0 -> W = 0; notifyAll() :: else -> skip fi }
#else
  atomic { if :: W > 0 -> notifyAll() :: else -> skip fi }
#endif
}

/* lock: compare-exchange; when taken, count in, sleep on the holder seen, count out, retry. */
inline lock(me) {
  byte holder;
  do
  :: atomic { holder = M; if :: M == 0 -> M = me :: else -> skip fi };
     if
     :: holder == 0 -> break
     :: else -> countIn(); futexWait(me, holder); countOut()
     fi
  od;
  inside++;
  assert(inside == 1)
}

/*
 * mutexFree: count in before the wait; each turn reads the holder and, when there is one,
 * sleeps on that value. BREAK_MUTEX_SEEN: the old turn, which read `seen` first, then checked,
 * and slept on `seen` (possibly 0: a free mutex that no unlock would notify).
 */
inline mutexFree(me) {
  byte seen, saw;
  countIn();
  do
  :: seen = M;
#ifdef BREAK_MUTEX_FLAG
     countIn(); /* the old code set the flag at every check */
#endif
     saw = M;
     if
     :: saw == 0 -> break
#ifdef BREAK_MUTEX_SEEN
     :: else -> futexWait(me, seen)
#else
     :: else -> futexWait(me, saw)
#endif
     fi
  od;
  countOut()
}

proctype Sync(byte me) {
  byte round;
  for (round : 1 .. ROUNDS) {
    lock(me);
    unlock()
  }
}

proctype Async(byte me) {
  byte round;
  for (round : 1 .. ROUNDS) {
    mutexFree(me);
    lock(me);
    unlock()
  }
}

init {
  atomic {
    run Sync(1);
    run Sync(2);
    run Async(3)
  }
}
