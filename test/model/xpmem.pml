/*
 * xpmem-threads: the invalidation protocol (DESIGN section 4, docs/CONTRACT.md) as a Promela
 * model for spin. test/model/README.md maps every process, inline and label below to the
 * TypeScript it stands for, lists what is abstracted away, and explains how run.sh checks it.
 *
 * Cast: 3 spaces, 2 segments, 4 notifiers.
 *   space 0  main thread: owns seg 0 and runs VM operations on it (Owner); is the watcher that
 *            reaps space 2 (Reaper, another async task of the same thread); range notifier N4
 *            on its attachment of seg 1.
 *   space 1  attaches seg 0 and seg 1 (User1): range notifier N1 on seg 0; registers N2 on
 *            seg 0, enters a section on seg 0, unregisters N2 (and awaits it), enters a
 *            section on seg 1.
 *   space 2  owns seg 1 (User2): enters a section on seg 0, reads seg 0 in mapped mode,
 *            registers range notifier N3 on seg 0, invalidates seg 1; may die at any step
 *            (Killer), and is then reaped by space 0.
 * Which of these roles run is chosen by SCENARIO (1, 2, 3: see "scenarios" below).
 *
 * Build switches (run.sh passes them with -D):
 *   SCENARIO=n   1 "window" (default), 2 "an attacher dies", 3 "an invalidator dies",
 *                4 "an attach races an unwatched invalidation".
 *   NOTIMEOUT    no deadline ever expires: every wait must be ended by the protocol itself
 *                (strict liveness). Default: every wait that has a deadline in the code may time
 *                out at any moment (a nondeterministic choice), so no result depends on timing.
 *   BREAK_*      one deliberate break of one rule each (README.md, "Breaks"); `run.sh --mutants`
 *                checks that spin finds a counterexample for every one.
 */

/* ---------------------------------------------------------------- sizes and names ---- */

#define NSP    3            /* spaces */
#define NSEG   2            /* segments */
#define NREC   4            /* invalidation records (one per operation; R_D reused) */
#define NNOT   4            /* notifiers */
#define DEPTH  1            /* held-section words per space (sections do not nest here) */

#define R_A 0               /* Owner's first operation on seg 0 (migrate, protect, resize: what it changes is abstracted) */
#define R_B 1               /* Owner's second operation on seg 0, back to back with the first */
#define R_C 2               /* User2's operation on seg 1 (its own segment) */
#define R_D 3               /* Reaper's release of seg 1 (a removal); reused on a retry */
#define RSEG(r) ((r) < 2 -> 0 : 1)

#define N1 0                /* space 1, range on seg 0 (attachment A0), registered before */
#define N2 1                /* space 1, range on seg 0 (attachment A0), registered by User1 */
#define N3 2                /* space 2, range on seg 0 (attachment A2), registered by User2 */
#define N4 3                /* space 0, range on seg 1 (attachment A3), registered before */
#define NSPACE(n) ((n) < 2 -> 1 : ((n) == 2 -> 2 : 0))
#define NSEGOF(n) ((n) == 3 -> 1 : 0)
#define NATT(n)   ((n) < 2 -> 0 : ((n) == 2 -> 2 : 3))
#define NOTIFS(s) ((s) == 0 -> 8 : ((s) == 1 -> 3 : 4))   /* notifiers of space s */
#define ONSEG(g)  ((g) == 0 -> 7 : 8)                      /* notifiers on segment g */

/* attachments: A0 = (space 1, seg 0), A1 = (space 1, seg 1), A2 = (space 2, seg 0), A3 = (space 0, seg 1) */

#define B(x) (1 << (x))

/* invalidation record states (IV_STATE) */
#define IV_FREE   0
#define IV_START  1
#define IV_END    2

/* held words (SP_HELD): segment slot + 1, | HELD_WANT (parked), | HELD_GRANTED */
#define WANT     4
#define GRANTED  8
#define SEGMASK  3
#define PARKED(g)  ((g) + 1 + WANT)
#define GRANT(g)   ((g) + 1 + WANT + GRANTED)
#define HIDX(s, i) ((s) * DEPTH + (i))

/* threads' tasks and their doorbells: a ring of space s wakes every task of s */
#define OWNBIT  1           /* Owner  (space 0) */
#define REAPBIT 2           /* Reaper (space 0, another async task of the main thread) */
#define U1BIT   4           /* User1  (space 1) */
#define U2BIT   8           /* User2  (space 2) */
#define RING(s) ((s) == 0 -> 3 : ((s) == 1 -> 4 : 8))

#ifdef NOTIMEOUT
#define TMO false
#else
#define TMO true
#endif

/* ---------------------------------------------------------------- control block ------- */

bool spLive[NSP];           /* SP_STATE == SPACE_LIVE */
byte held[NSP * DEPTH];     /* SP_HELD words */
byte waitAny[NSP];          /* SP_WAIT_ANY */
bool events[NSP];           /* SP_EVENTS */
byte seq[NSEG];             /* SEG_SEQ (modulo 8 on seg 0, parity on seg 1: see SEQMASK) */
byte oplock[NSEG];          /* SEG_OPLOCK: space + 1 */
byte drainer[NSEG];         /* SEG_DRAINER: space + 1 */
bool segWaiters[NSEG];      /* SEG_WAITERS */
bool segLive[NSEG];         /* SEG_STATE == SEG_LIVE */
bool attLive[4];            /* AT_STATE */
byte atN[4];                /* AT_NOTIFIERS */
byte regseq;                /* H_REGSEQ */
bool nslot[NNOT];           /* NT_STATE (notifier table) */
byte nreg[NNOT];            /* NT_REGSEQ / LocalNotifier.regSeq */

byte rstate[NREC];          /* IV_STATE */
byte rsnap[NREC];           /* IV_SNAP */
byte rinv[NREC];            /* IV_INVALIDATOR */
bit  rgen[NREC];            /* IV_GEN (flips when a record slot is reused) */
byte rtgt[NREC];            /* TARGETS mask (bit per space) */
byte rack[2 * NREC];        /* ack masks: STARTED of r at [r], ENDED of r at [NREC + r] */
#define STARTED 0
#define ENDED   1
#define ACKS(w, r) rack[(w) * NREC + (r)]

/* ---------------------------------------------------------------- thread-local -------- */

bool nlive[NNOT];           /* LocalNotifier.live (in its space's Delivery list) */
byte ninfl[NNOT];           /* LocalNotifier.inflight */
byte flt[NSP];              /* Delivery.#inflight: records with an Inflight entry (bit per record) */
byte fgen[NSP];             /* Inflight.gen of those entries (bit per record) */
byte paired[NREC];          /* Inflight.paired: notifiers whose start ran (bit per notifier) */
byte wk;                    /* doorbells: a task's bit is set when its space is rung after it looked */
byte armed;                 /* tasks between their look at the doorbell (seen) and the end of their wait */
bool dead2;                 /* space 2's worker exited (the 'exit' event) */

/* ---------------------------------------------------------------- ghosts -------------- */

byte phase[NSEG];           /* 0 no window, 1 held off (steps 1-3), 2 applied (step 4 done) */
byte inSec[NSEG];           /* spaces whose section body runs on the segment (bit per space) */
#define RUNNING(g) (inSec[g] & ~(dead2 -> B(2) : 0))   /* a dead thread runs nothing */
byte applies[NSEG];         /* step 4 count (mapped-mode check) */
byte gStart[NNOT];          /* records whose invalidateStart ran on notifier n */
byte gEnd[NNOT];            /* records whose invalidateEnd ran on notifier n */
byte regAfter[NNOT];        /* records published before n was registered */
byte hoDone;                /* records published (holdOff transaction committed) */
byte regd;                  /* notifiers registered (register returned, not unregistered) */
byte mustStart[NREC];       /* notifiers registered and overlapping when record r was published */
byte applied;               /* records whose operation was applied */
byte mustWin[NSEG];         /* per segment: notifiers registered and on it when its open window opened */
bool unregDone[NNOT];       /* unregister() of n resolved */

/* ---------------------------------------------------------------- helpers ------------- */

#define ring(s) wk = wk | (RING(s) & armed)        /* a task that is not waiting has nothing to miss */
#define ARM(b)   armed = armed | (b); wk = wk & ~(b)  /* seen = Atomics.load(doorbell) */
#define UNARM(b) armed = armed & ~(b); wk = wk & ~(b) /* the wait is over */
#define SEQMASK(g) ((g) == 0 -> 7 : 1)                /* seg 0: modulo 8; seg 1 (no mapped reader): parity */
#define SEQNEXT(g) seq[g] = (seq[g] + 1) & SEQMASK(g)
#define FREEREC(r) rstate[r] = IV_FREE; rsnap[r] = 0; rinv[r] = 0; rtgt[r] = 0; ACKS(STARTED, r) = 0; ACKS(ENDED, r) = 0

inline post(s) {
  events[s] = 1;
  ring(s)
}

inline postAll(mask) {
  if :: (mask) & B(0) -> post(0) :: else fi;
  if :: (mask) & B(1) -> post(1) :: else fi;
  if :: (mask) & B(2) -> post(2) :: else fi
}

/* targetsOf: spaces with a notifier on an attachment of the segment (every range overlaps) */
#define TARGETS(g) ((g) == 0 -> \
    ((attLive[0] && atN[0] > 0 -> B(1) : 0) | (attLive[2] && atN[2] > 0 -> B(2) : 0)) : \
    ((attLive[1] && atN[1] > 0 -> B(1) : 0) | (attLive[3] && atN[3] > 0 -> B(0) : 0)))

#ifdef BREAK_SNAPSHOT
#define SNAPOK(n, r) true
#else
#define SNAPOK(n, r) (nreg[n] <= rsnap[r])
#endif

#ifdef BREAK_GRANT_UNCOUNTED
#define COUNTS(v, g) ((v) == (g) + 1)
#else
#define COUNTS(v, g) ((v) == (g) + 1 || (v) == GRANT(g))
#endif

#ifdef BREAK_REAP_HELD
#define LIVEHOLDER(s) true
#else
#define LIVEHOLDER(s) spLive[s]
#endif

/* wakeSegmentWaiters(seg, grant): doorbell.ts */
inline wakeSeg(g, grant) {
  if
  :: segWaiters[g] ->
     segWaiters[g] = 0;
     s_ = 0;
     do
     :: s_ < NSP ->
        if
        :: spLive[s_] ->
           w_ = (waitAny[s_] > 0);
           d_ = 0;
           do
           :: d_ < DEPTH ->
              x_ = held[HIDX(s_, d_)];
              if
              :: (x_ & WANT) && (x_ & SEGMASK) == g + 1 ->
                 if :: grant -> held[HIDX(s_, d_)] = x_ | GRANTED :: else fi;
                 w_ = 1
              :: else
              fi;
              d_++
           :: else -> break
           od;
           if :: w_ -> ring(s_) :: else fi
        :: else
        fi;
        s_++
     :: else -> break
     od;
     s_ = 0; d_ = 0; w_ = 0; x_ = 0
  :: else
  fi
}

/* ---------------------------------------------------------------- delivery ------------ */

/* Delivery.#ack */
inline ack(r, w, s) {
  ACKS(w, r) = ACKS(w, r) | B(s);
  ring(rinv[r])
}

/* Delivery.#finish (+ #release; a removal drops range notifiers of the gone segment) */
inline finish(s, r) {
  flt[s] = flt[s] & ~B(r);
  fgen[s] = fgen[s] & ~B(r);
  n_ = 0;
  do
  :: n_ < NNOT ->
     if
     :: (paired[r] & NOTIFS(s) & B(n_)) ->
        ninfl[n_]--;
        if :: r == R_D && !segLive[RSEG(r)] -> nlive[n_] = 0 :: else fi
     :: else
     fi;
     n_++
  :: else -> break
  od;
  n_ = 0;
  paired[r] = paired[r] & ~NOTIFS(s)
}

/* Delivery.#start: invalidateStart on every live, overlapping notifier registered before the snapshot */
inline dstart(s, r) {
  m_ = 0;
  n_ = 0;
  do
  :: n_ < NNOT ->
     if
     :: (NOTIFS(s) & B(n_)) && nlive[n_] && NSEGOF(n_) == RSEG(r) && SNAPOK(n_, r) ->
        m_ = m_ | B(n_);
        ninfl[n_]++;
        assert(!(regAfter[n_] & B(r)));   /* registered after the window was published: nothing of it */
        assert(!(gStart[n_] & B(r)));     /* one start per window */
        assert(!unregDone[n_]);           /* nothing after unregister() resolved */
        assert((gStart[n_] & ~gEnd[n_] & ~B(r)) == 0);   /* every earlier start of it has had its end */
        gStart[n_] = gStart[n_] | B(r)
     :: else
     fi;
     n_++
  :: else -> break
  od;
  paired[r] = (paired[r] & ~NOTIFS(s)) | m_;
  flt[s] = flt[s] | B(r);
  fgen[s] = (fgen[s] & ~B(r)) | (rgen[r] << r);
  m_ = 0; n_ = 0;
  ack(r, STARTED, s)
}

#ifdef BREAK_END_SET
/* the ends go to the notifiers live and overlapping now (kernel-style naive end) */
#define ENDSET(s, r) ((nlive[0] -> B(0) : 0) | (nlive[1] -> B(1) : 0) | (nlive[2] -> B(2) : 0) | (nlive[3] -> B(3) : 0)) & NOTIFS(s) & ONSEG(RSEG(r))
#else
#define ENDSET(s, r) (paired[r] & NOTIFS(s))
#endif

/* the END phase of Delivery.#step: invalidateEnd on exactly the notifiers whose start ran */
inline dend(s, r) {
  m_ = ENDSET(s, r);
  n_ = 0;
  do
  :: n_ < NNOT ->
     if
     :: m_ & B(n_) ->
        assert(gStart[n_] & B(r));        /* never an end without its start */
        assert(!(gEnd[n_] & B(r)));       /* exactly one end per start */
        assert(!unregDone[n_]);           /* nothing after unregister() resolved */
        gEnd[n_] = gEnd[n_] | B(r)
     :: else
     fi;
     n_++
  :: else -> break
  od;
  m_ = 0; n_ = 0;
  ack(r, ENDED, s)
}

/* Delivery.#step(r) for space s */
inline dstep(s, r) {
  if
  :: (flt[s] & B(r)) && (rstate[r] == IV_FREE || ((fgen[s] >> r) & 1) != rgen[r]) -> finish(s, r)
  :: else
  fi;
  if
  :: rstate[r] == IV_FREE || !(rtgt[r] & B(s)) -> skip
  :: rstate[r] == IV_START && (rtgt[r] & B(s)) ->
     if
     :: (flt[s] & B(r)) || (ACKS(STARTED, r) & B(s)) -> skip
     :: else -> dstart(s, r)
     fi
  :: rstate[r] == IV_END && (rtgt[r] & B(s)) ->
     if
     :: ACKS(ENDED, r) & B(s) -> skip
#ifdef BREAK_END_SET
     :: else -> dend(s, r); if :: flt[s] & B(r) -> finish(s, r) :: else fi
#else
     :: !(ACKS(ENDED, r) & B(s)) && !(flt[s] & B(r)) -> ack(r, ENDED, s)   /* never started here */
     :: !(ACKS(ENDED, r) & B(s)) && (flt[s] & B(r)) -> dend(s, r); finish(s, r)
#endif
     fi
  fi
}

/* Delivery.deliver: inline at library waits and section boundaries (embedded in d_steps) */
inline deliverBody(s) {
  if
  :: events[s] ->
     events[s] = 0;
     r_ = 0;
     do
     :: r_ < NREC -> dstep(s, r_); r_++
     :: else -> break
     od;
     r_ = 0
  :: else
  fi
}

/* Delivery.#dispatch: the idle-time dispatcher (blocks until events are posted) */
inline dispatch(s) {
  d_step {
    events[s] ->
    events[s] = 0;
    r_ = 0;
    do
    :: r_ < NREC -> dstep(s, r_); r_++
    :: else -> break
    od;
    r_ = 0
  }
}

/* ---------------------------------------------------------------- the mapping lock ---- */

#ifdef BREAK_WAKE_DRAINER
#define RINGDRAINER(g) skip
#else
#define RINGDRAINER(g) if :: (seq[g] & 1) && drainer[g] > 0 -> ring(drainer[g] - 1) :: else fi
#endif

/* rwlock.ts leaveShared / exitShared: store the held word, then ring the drainer if a window is open */
inline leaveShared(me, i, g, v) {
  held[HIDX(me, i)] = v;
  atomic { RINGDRAINER(g) }
}

/* a library wait that found its condition false: time out (where the code has a deadline) or sleep until rung */
#define WAITED(mebit) if :: ok -> UNARM(mebit) :: else fi
#define SLEEP(mebit, onTimeout) \
  if \
  :: TMO -> atomic { UNARM(mebit); onTimeout }; break \
  :: (wk & mebit) -> skip \
  fi

/*
 * One turn of the section entry's wait (wait.ts waitSync with attachment.ts #windowEnd):
 * arm SEG_WAITERS, seen = doorbell, deliverInline, then until() = rwlock.ts retryShared.
 * ok = 1 when the hold is taken (granted at a window's end, or no window open).
 */
inline retryShared(me, mebit, i, g) {
  atomic {
    segWaiters[g] = 1; ARM(mebit);
    deliverBody(me);
    if :: held[HIDX(me, i)] == PARKED(g) -> held[HIDX(me, i)] = g + 1; t = 1 :: else -> t = 0 fi   /* compareExchange */
  }
  do
  :: t == 0 ->                                          /* granted: the grant counted as a hold */
     atomic { held[HIDX(me, i)] = g + 1; assert(phase[g] != 2); ok = 1; UNARM(mebit) }
     break
  :: t == 1 ->
     atomic { t = seq[g]; if :: (t & 1) == 0 -> assert(phase[g] == 0); ok = 1; UNARM(mebit) :: else fi }
     if
     :: ok -> break
     :: else ->
        held[HIDX(me, i)] = PARKED(g);                  /* leaveShared(parked) */
#ifndef BREAK_RETRY_REARM
        segWaiters[g] = 1;                              /* re-arm: a window's end that passed the word unparked must look again */
#endif
        atomic { t = seq[g]; RINGDRAINER(g) }
        if
        :: (t & 1) -> break                             /* still open: false, the caller sleeps */
        :: else ->                                      /* closed meanwhile */
#ifndef BREAK_RETRY_REARM
           atomic { if :: held[HIDX(me, i)] == PARKED(g) -> held[HIDX(me, i)] = g + 1; t = 1 :: else -> t = 0 fi }
#else
           break                                        /* false all the same: the lost wake-up */
#endif
        fi
     fi
  od;
  t = 0
}

/*
 * A section on segment g through attachment att: attachment.ts #enterSync (#begin, #publish,
 * #windowEnd, #admit or #abandon) and #exit, held word i of space me, task bit mebit.
 * The section's fn runs between the two ghost steps.
 */
inline section(me, mebit, i, g, att) {
  held[HIDX(me, i)] = g + 1;                            /* #begin; #publish: enterShared */
  atomic { t = seq[g]; if :: (t & 1) == 0 -> assert(phase[g] == 0); ok = 1 :: else fi; t = 0 }
  if
  :: !ok ->
     leaveShared(me, i, g, PARKED(g));                   /* parked: (seg + 1) | HELD_WANT */
     do
     :: retryShared(me, mebit, i, g);
        if
        :: ok -> break
        :: else -> SLEEP(mebit, fail = 1)               /* ERR_XPMEM_TIMEOUT */
        fi
     od;
     if :: fail -> leaveShared(me, i, g, 0) :: else fi  /* wait.ts unregister / #abandon */
  :: else
  fi;
  if
  :: !fail ->
     if
     :: segLive[g] && attLive[att] ->                   /* #admit: #check */
        atomic { assert(phase[g] != 2); inSec[g] = inSec[g] | B(me) }    /* fn runs ... */
        atomic { assert(phase[g] != 2); inSec[g] = inSec[g] & ~B(me) }   /* ... and returns */
        held[HIDX(me, i)] = 0;                          /* #exit: exitShared, deliverInline */
        atomic { RINGDRAINER(g); deliverBody(me) }
     :: else -> leaveShared(me, i, g, 0)                /* ERR_XPMEM_REMOVED: #abandon */
     fi
  :: else
  fi;
  ok = 0; fail = 0
}

/* mapping.ts Mapping.refresh (read_begin, waiting out an open window), then one retry() after use */
inline mapped(me, mebit, g) {
  do
  :: atomic { deliverBody(me); mt = seq[g]; ma = applies[g] }    /* readBegin (ghost: applies so far) */
     if
     :: mt & 1 ->
        waitAny[me]++;                                  /* #windowEnd: wait.ts register */
        do
        :: atomic { segWaiters[g] = 1; ARM(mebit); deliverBody(me); ok = (seq[g] != mt); WAITED(mebit) }
           if
           :: ok -> break
           :: else -> SLEEP(mebit, fail = 1)
           fi
        od;
        atomic { waitAny[me]--; ok = 0 }
        if :: fail -> break :: else fi
     :: else ->
        atomic {                                        /* #check, then readRetry */
          if
          :: !segLive[g] -> fail = 1                    /* ERR_XPMEM_REMOVED */
          :: segLive[g] && seq[g] == mt -> ok = 1
          :: else
          fi
        }
        if :: fail || ok -> break :: else fi
     fi
  od;
  if
  :: !fail ->                                           /* the view is used, then retry() is asked */
     atomic { if :: (mt & 1) == 0 && seq[g] == mt -> assert(applies[g] == ma) :: else fi }
  :: else
  fi;
  mt = 0; ma = 0; fail = 0; ok = 0
}

/* ---------------------------------------------------------------- notifiers ----------- */

/* notifier.ts registerNotifier: one transaction (H_REGSEQ, count), then Delivery.add */
inline register(n) {
  atomic {
    regseq++;
    nreg[n] = regseq;
    nslot[n] = 1;
    atN[NATT(n)]++;
    nlive[n] = 1;
    regd = regd | B(n);
    regAfter[n] = hoDone
  }
}

/* Notifier.unregister: transaction, Delivery.remove, then await the promise (no deadline) */
inline unregister(me, n) {
  atomic {
    if :: nslot[n] -> nslot[n] = 0; atN[NATT(n)]-- :: else fi;
    nlive[n] = 0;
    regd = regd & ~B(n);
    r_ = 0;
    do
    :: r_ < NREC -> if :: !(gStart[n] & B(r_)) -> mustStart[r_] = mustStart[r_] & ~B(n) :: else fi; r_++
    :: else -> break
    od;
    r_ = 0
  }
#ifndef BREAK_UNREG_EARLY
  do
  :: ninfl[n] == 0 -> break
  :: dispatch(me)                                       /* the event loop runs while it awaits */
  od;
#endif
  unregDone[n] = 1
}

/* ---------------------------------------------------------------- invalidation -------- */

/* invalidate.ts acks().until(): every target acked (one no longer live is acked on its behalf) */
inline acked(r, w) {
  ok = 1;
  s_ = 0;
  do
  :: s_ < NSP ->
     if
     :: (rtgt[r] & B(s_)) && !(ACKS(w, r) & B(s_)) ->
#ifdef BREAK_DEAD_WAIT
        ok = 0
#else
        if :: spLive[s_] -> ok = 0 :: else -> ACKS(w, r) = ACKS(w, r) | B(s_) fi
#endif
     :: else
     fi;
     s_++
  :: else -> break
  od;
  s_ = 0
}

/*
 * invalidate.ts unwatched(): no range notifier on segment g (SEG_NOTIFIERS, the sum of its
 * attachments' AT_NOTIFIERS), so no notifier can hear its invalidation (the owner's space-wide
 * notifiers, the other half of the check, are not modeled).
 */
#define UNWATCHED(g) ((g) == 0 -> (atN[0] + atN[2] == 0) : (atN[1] + atN[3] == 0))

/* rwlock.ts holderOf, one space per step: h = the first live space holding segment g, else 9 */
#define HOLDS(s, g) (LIVEHOLDER(s) && COUNTS(held[HIDX(s, 0)], g))

/*
 * invalidate.ts invalidate(): one VM operation of space `me` (task bit mebit) on segment g with
 * record r; removal = the reaper's 'release' removal. Leaves fail: 0 applied, 1 timed out in
 * start or drain (rolled back), 2 operation lock timed out, 3 segment gone, 4 no free record.
 */
inline invalidate(me, mebit, g, r, removal) {
  fail = 0;
  /* lockOperation */
  if
  :: atomic { oplock[g] == 0 -> oplock[g] = me + 1 }
  :: else ->
     waitAny[me]++;
     do
     :: atomic {
          segWaiters[g] = 1; ARM(mebit); deliverBody(me);
          if :: oplock[g] == 0 -> oplock[g] = me + 1; ok = 1; UNARM(mebit) :: else fi
        }
        if
        :: ok -> break
        :: else -> SLEEP(mebit, fail = 2)
        fi
     od;
     atomic { waitAny[me]--; ok = 0 }
  fi;
  if
  :: fail == 0 && !segLive[g] -> fail = 3                /* prepare(): ERR_XPMEM_REMOVED */
  :: fail == 0 && segLive[g] ->
     /* step 1, openWindow: writeBegin, then unwatched(): nobody to tell skips the record */
#ifdef BREAK_UNWATCHED_EARLY
     atomic { u_ = UNWATCHED(g) }                        /* checked before the window opens */
#endif
#ifdef BREAK_HOLDOFF
     atomic { phase[g] = 1; mustWin[g] = regd & ONSEG(g) }  /* the window does not open here ... */
#else
     atomic { SEQNEXT(g); phase[g] = 1; mustWin[g] = regd & ONSEG(g) }
#endif
#if defined(BREAK_UNWATCHED_RMAP)
     u_ = 1;                                             /* the segment's notifiers not looked at */
#elif !defined(BREAK_UNWATCHED_EARLY)
     atomic { u_ = UNWATCHED(g) }
#endif
     assert(!u_ || (mustWin[g] & regd) == 0);             /* nobody registered when the window opened, and still, is passed over */
     mustWin[g] = 0;
     /* step 1, holdOff: the record's transaction, then post its targets */
#ifdef BREAK_TARGETS_UNLOCKED
     atomic { h = TARGETS(g) }                           /* targets chosen outside the transaction */
#endif
     if
     :: u_
     :: else ->
     atomic {
       if
#ifdef BREAK_FREE_EARLY
       :: rstate[r] == IV_END -> FREEREC(r)                                     /* freed with ends still to run */
#else
       :: rstate[r] == IV_END && (rtgt[r] & ~ACKS(ENDED, r)) == 0 -> FREEREC(r)  /* openRecord frees a record every target ended */
#endif
       :: else
       fi;
       if
       :: rstate[r] == IV_FREE ->
          n_ = 0;
          do
          :: n_ < NNOT ->
             if :: spLive[NSPACE(n_)] -> assert((gStart[n_] & B(r)) == (gEnd[n_] & B(r))) :: else fi;
             gStart[n_] = gStart[n_] & ~B(r); gEnd[n_] = gEnd[n_] & ~B(r); regAfter[n_] = regAfter[n_] & ~B(r);
             n_++
          :: else -> break
          od;
          n_ = 0;
          rstate[r] = IV_START;
          rgen[r] = 1 - rgen[r];
          rsnap[r] = regseq;
          rinv[r] = me;
          ACKS(STARTED, r) = 0;
          ACKS(ENDED, r) = 0;
#ifdef BREAK_TARGETS_UNLOCKED
          rtgt[r] = h;
          h = 0;
#else
          rtgt[r] = TARGETS(g);
#endif
          hoDone = hoDone | B(r);
          mustStart[r] = regd & ONSEG(g);
          postAll(rtgt[r])
       :: else -> fail = 4                               /* ERR_XPMEM_NO_MEMORY */
       fi
     }
     fi;
     if
     :: fail == 4 ->                                     /* holdOff's catch: the window closes again */
        atomic {
#ifndef BREAK_HOLDOFF
          SEQNEXT(g);
#endif
          phase[g] = 0;
          wakeSeg(g, 1)
        }
     :: else ->
        /* step 2, start: wait for every target's STARTED ack */
        do
        :: u_ -> break
        :: else ->
           atomic { ARM(mebit); deliverBody(me); acked(r, STARTED); WAITED(mebit) }
           if
           :: ok -> break
           :: else -> SLEEP(mebit, fail = 1)
           fi
        od;
        ok = 0;
        /* step 3, drain: wait until no live space holds a section on g */
#ifndef BREAK_DRAIN
        if
        :: fail == 0 ->
           drainer[g] = me + 1;
           do
           :: atomic { ARM(mebit); deliverBody(me); h = 9; if :: HOLDS(1, g) -> h = 1 :: else fi }
              atomic { if :: h == 9 && HOLDS(2, g) -> h = 2 :: else fi; if :: h == 9 -> UNARM(mebit) :: else fi }
              if
              :: h == 9 -> break
              :: else -> SLEEP(mebit, fail = 1)
              fi
           od;
           h = 0
        :: else
        fi;
#endif
#ifdef BREAK_HOLDOFF
        atomic { SEQNEXT(g) }                             /* ... but only after the drain */
#endif
        /* step 4, apply */
        if
        :: fail == 0 ->
           atomic {
             assert(RUNNING(g) == 0);                    /* never applied while a section runs */
             phase[g] = 2;
             applies[g]++;
             if :: !u_ -> applied = applied | B(r) :: else fi;
             if
             :: removal ->                               /* vm/operations.ts removal(): dropSegmentUsers, SEG_REMOVED */
                segLive[g] = 0;
                attLive[1] = 0; attLive[3] = 0; atN[1] = 0; atN[3] = 0;
                nslot[N4] = 0;
                regd = regd & ~B(N4)
             :: else
             fi
           }
        :: else
        fi;
        /* step 5, end: writeEnd and grant, then IV_END and post (record.ts endRecord); the ends are not waited for */
        atomic {
          drainer[g] = 0;
#ifdef BREAK_SEQ_REUSE
          seq[g] = (seq[g] + SEQMASK(g)) & SEQMASK(g);   /* back to the old even value */
#else
          SEQNEXT(g);
#endif
          phase[g] = 0;
          wakeSeg(g, 1)
        }
        if
        :: u_                                            /* no record: nobody to end */
#ifdef BREAK_ROLLBACK_END
        :: !u_ && fail -> atomic { FREEREC(r) }          /* rolled back: the record dropped, no ends */
        :: !u_ && !fail ->
#else
        :: else ->
#endif
        atomic { rstate[r] = IV_END; postAll(rtgt[r]) }
        fi;
        u_ = 0
     fi;
     /* unlockOperation */
     atomic { oplock[g] = 0; wakeSeg(g, 0) }
  :: else
  fi
}

/* ---------------------------------------------------------------- scenarios ----------- */

/*
 * SCENARIO 1 "window": the owner's two back-to-back operations on seg 0 against sections of
 *   spaces 1 and 2, the registration of N2 and N3, the unregistration of N2 and a mapped
 *   reader; nobody dies, seg 1 stays idle.
 * SCENARIO 2 "an attacher dies": space 2 enters a section on seg 0 and registers N3 and may
 *   die at any step, while the owner invalidates seg 0 once; the reaper cleans up and releases
 *   seg 1 (space 2's), against a section of space 1 on seg 1.
 * SCENARIO 3 "an invalidator dies": space 2 invalidates seg 1 (its own; N4 of space 0 is a
 *   target) and may die at any step; space 1 enters a section on seg 1; the reaper closes
 *   what it left open and releases seg 1.
 * SCENARIO 4 "an attach races an unwatched invalidation": seg 0 starts with no attachment, so
 *   the owner's operation on it may skip its record (unwatched); meanwhile space 2 attaches
 *   seg 0, enters a section on it and registers N3; nobody dies.
 */
#ifndef SCENARIO
#define SCENARIO 1
#endif

#if SCENARIO == 1
#define OPS0 2
#define U1_N1 1
#define U1_REG 1
#define U1_SEC0 1
#define U1_SEC1 0
#define U2_SEC 1
#define U2_REG 1
#define U2_MAP 1
#define U2_INV 0
#define DEATH 0
#elif SCENARIO == 2
#define OPS0 1
#define U1_N1 0
#define U1_REG 0
#define U1_SEC0 0
#define U1_SEC1 1
#define U2_SEC 1
#define U2_REG 1
#define U2_MAP 0
#define U2_INV 0
#define DEATH 1
#elif SCENARIO == 3
#define OPS0 0
#define U1_N1 0
#define U1_REG 0
#define U1_SEC0 0
#define U1_SEC1 1
#define U2_SEC 0
#define U2_REG 0
#define U2_MAP 0
#define U2_INV 1
#define DEATH 1
#else
#define OPS0 1
#define U1_N1 0
#define U1_REG 0
#define U1_SEC0 0
#define U1_SEC1 0
#define U2_ATTACH 1
#define U2_SEC 1
#define U2_REG 1
#define U2_MAP 0
#define U2_INV 0
#define DEATH 0
#endif
#ifndef U2_ATTACH
#define U2_ATTACH 0
#endif

/* ---------------------------------------------------------------- processes ---------- */

#define LOCALS byte t, ok, fail, h, mt, ma, r_, n_, m_, s_, d_, w_, x_, u_

/* space 0, main thread: the owner of seg 0 runs its VM operations, then idles */
proctype Owner() {
  LOCALS;
#if OPS0 > 0
  invalidate(0, OWNBIT, 0, R_A, 0);
#endif
#if OPS0 > 1
  invalidate(0, OWNBIT, 0, R_B, 0);
#endif
end_idle:
  do
  :: dispatch(0)
  od
}

/* space 1 */
proctype User1() {
  LOCALS;
#if U1_REG
  register(N2);
#endif
#if U1_SEC0
  section(1, U1BIT, 0, 0, 0);
#endif
#if U1_REG
  unregister(1, N2);
#endif
#if U1_SEC1
  section(1, U1BIT, 0, 1, 1);
#endif
end_idle:
  do
  :: dispatch(1)
  od
}

/* space 2: with DEATH, every step may be its last (Killer) */
proctype User2() {
  LOCALS;
  {
#if U2_ATTACH
    atomic { attLive[2] = 1 }                            /* attach(): one transaction links A2 into seg 0's rmap */
#endif
#if U2_SEC
    section(2, U2BIT, 0, 0, 2);
#endif
#if U2_MAP
    mapped(2, U2BIT, 0);
#endif
#if U2_REG
    register(N3);
#endif
#if U2_INV
    invalidate(2, U2BIT, 1, R_C, 0);
#endif
end_idle:
    do
    :: dispatch(2)
    od
  } unless { dead2 }
}

/* space 2's worker is terminated at any moment, or never */
proctype Killer() {
  if
  :: dead2 = 1
  :: skip
  fi
}

/* reap.ts reap(me = space 0, dead = space 2): in the main thread, after the worker's 'exit' */
proctype Reaper() {
  LOCALS;
  byte sg;
end_wait:
  dead2;
  atomic { spLive[2] = 0 }                               /* seize; transaction: SPACE_DEAD */
#ifndef BREAK_REAP_HELD
  held[HIDX(2, 0)] = 0;                                  /* its held sections stop counting */
#endif
  atomic { ring(0); ring(1) }                            /* wakeAll */
  /* releaseOperations: windows it left open close (and grant), its operation locks are freed */
  sg = 0;
  do
  :: sg < NSEG ->
     atomic {
       if
       :: oplock[sg] == 3 ->
          if
          :: seq[sg] & 1 -> SEQNEXT(sg); phase[sg] = 0; wakeSeg(sg, 1)
          :: else
          fi;
#ifndef BREAK_REAP_OPLOCK
          oplock[sg] = 0;
#endif
          wakeSeg(sg, 0)
       :: else
       fi
     }
     sg++
  :: else -> break
  od;
  sg = 0;
  /* settleRecords: its pending acks count as done ... */
  atomic {
    r_ = 0;
    do
    :: r_ < NREC ->
       if
#ifndef BREAK_DEAD_WAIT
       :: rstate[r_] != IV_FREE && (rtgt[r_] & B(2)) ->
          ACKS(STARTED, r_) = ACKS(STARTED, r_) | B(2); ACKS(ENDED, r_) = ACKS(ENDED, r_) | B(2); ring(rinv[r_])
#endif
       :: else
       fi;
       r_++
    :: else -> break
    od;
    r_ = 0
  }
  /* ... and the records it was starting are ended and posted: their targets get their ends */
#ifndef BREAK_REAP_END
  atomic {
    r_ = 0;
    do
    :: r_ < NREC ->
       if
       :: rstate[r_] == IV_START && rinv[r_] == 2 -> rstate[r_] = IV_END; postAll(rtgt[r_])
       :: else
       fi;
       r_++
    :: else -> break
    od;
    r_ = 0
  }
#endif
  /* dropUsers: its attachment (and so N3) goes; it owns seg 1 */
  atomic { attLive[2] = 0; atN[2] = 0; nslot[N3] = 0; regd = regd & ~B(N3) }
  /* release(): remove seg 1 with event 'release'; again after a timeout or a full table */
  do
  :: invalidate(0, REAPBIT, 1, R_D, 1);
     if
     :: fail == 1 || fail == 2 -> skip
     :: fail == 4 -> (rstate[R_D] != IV_END || (rtgt[R_D] & ~ACKS(ENDED, R_D)) == 0)   /* a later try finds the record freed */
     :: else -> break
     fi
  od;
  fail = 0
}

/* the final checks, once nothing can move any more */
proctype Checker() {
  byte n, r;
  timeout ->
  (armed & ~(dead2 -> U2BIT : 0)) == 0;   /* a live task asleep in a wait is a hang: left to spin's end-state check */
  atomic {
    n = 0;
    do
    :: n < NNOT ->
       /* every start got exactly one end (the notifiers of a dead space went with it) */
       assert(!spLive[NSPACE(n)] || gStart[n] == gEnd[n]);
       r = 0;
       do
       :: r < NREC ->
          /* a notifier registered before a window that was applied got that window's start */
          assert(!spLive[NSPACE(n)] || !(applied & B(r)) || !(mustStart[r] & B(n)) || (gStart[n] & B(r)));
          r++
       :: else -> break
       od;
       n++
    :: else -> break
    od;
    r = 0;
    do
    :: r < NREC ->
       /* nothing left in flight: every record is free, or ended by every live target */
       assert(rstate[r] != IV_START && (rstate[r] != IV_END || (rtgt[r] & ~ACKS(ENDED, r) & ((spLive[0] -> 1 : 0) | (spLive[1] -> 2 : 0) | (spLive[2] -> 4 : 0))) == 0));
       r++
    :: else -> break
    od
  }
}

init {
  atomic {
    spLive[0] = 1; spLive[1] = 1; spLive[2] = 1;
    segLive[0] = 1; segLive[1] = 1;
    attLive[1] = 1; attLive[3] = 1;
#if !U2_ATTACH
    attLive[0] = 1; attLive[2] = 1;                      /* scenario 4: seg 0 starts with no attachment */
#endif
    /* N4 (and in scenario 1, N1) were registered before */
    regseq = 2;
#if U1_N1
    nreg[N1] = 1; nslot[N1] = 1; nlive[N1] = 1; atN[0] = 1;
    regd = B(N1);
#endif
    nreg[N4] = 2; nslot[N4] = 1; nlive[N4] = 1; atN[3] = 1;
    regd = regd | B(N4)
  }
  atomic {
    run Owner();
    run User1();
    run User2();
#if DEATH
    run Killer();
    run Reaper();
#endif
    run Checker()
  }
}
