// Async futex waits through io_uring (IORING_OP_FUTEX_WAIT, Linux 6.7): the kernel queues the
// wait and posts its completion to a ring whose file descriptor the thread's event loop polls,
// so a wake from another process reaches the sleeping loop with no thread in between (the
// waiter-thread pool of xpmem.cc costs a second wake-up: about 70 µs a round trip against 20).
//
// One ring per JavaScript thread, used by that thread only (submissions, cancels and reaping
// all happen on it). The waits are never private: keyed by the mapped file, like the blocking
// waits of xpmem.cc, so a FUTEX_WAKE from any process ends them.
#pragma once

#include <linux/io_uring.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

// The wake bitset every futex wait of the addon sleeps with but a sliced waiter's (xpmem.cc),
// which sleeps with a bit of its own: the wake of a cancel, on that bit, reaches no other wait
// of any process (a plain wake matches every bit).
constexpr uint32_t kPlainBit = 1;

class FutexRing {
 public:
  // A ring whose futex waits work, or nullptr with `why` saying what the kernel refused.
  static std::unique_ptr<FutexRing> Open(std::string* why);
  FutexRing(const FutexRing&) = delete;
  FutexRing& operator=(const FutexRing&) = delete;
  ~FutexRing();

  // The descriptor that reads ready while completions wait to be reaped.
  int fd() const { return fd_; }

  // Queues a wait while *addr == expected; it completes as `id` (never 0): 0 once woken,
  // -EAGAIN if the word differed, -ECANCELED once cancelled. false if the kernel did not take
  // it: then it is withdrawn, and never completes.
  bool Wait(uint64_t id, int32_t* addr, int32_t expected);

  // Asks the kernel to end wait `id` (it completes with -ECANCELED, unless it completed first);
  // false if the kernel did not take the request (withdrawn, as for Wait).
  bool Cancel(uint64_t id);

  // The completions posted since the last call, as (id, result); cancel requests' own are left out.
  std::vector<std::pair<uint64_t, int32_t>> Reap();

 private:
  FutexRing() = default;
  bool Map(const io_uring_params& p);
  io_uring_sqe* Next();
  bool Submit(unsigned count, unsigned wait);

  int fd_ = -1;
  void* sq_ = nullptr;
  size_t sqBytes_ = 0;
  void* cq_ = nullptr;
  size_t cqBytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqesBytes_ = 0;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned* sqArray_ = nullptr;
  unsigned* sqFlags_ = nullptr;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};
