// FutexRing (ring.h): the io_uring system calls and the ring buffers they share with the kernel.
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

namespace {

// Newer than the headers some machines build with (Linux 6.7).
constexpr uint8_t kOpFutexWait = 51;
constexpr uint32_t kFutex2U32 = 0x02;
// The user_data of cancel requests, whose own completions Reap() drops.
constexpr uint64_t kCancelTag = 0;
// Submissions are made one at a time; completions of every wait in flight queue in the CQ (the
// kernel keeps any overflow: IORING_FEAT_NODROP, flushed in Reap).
constexpr unsigned kEntries = 64;

unsigned LoadAcquire(const unsigned* p) {
  return reinterpret_cast<const std::atomic<unsigned>*>(p)->load(std::memory_order_acquire);
}

void StoreRelease(unsigned* p, unsigned v) {
  reinterpret_cast<std::atomic<unsigned>*>(p)->store(v, std::memory_order_release);
}

void* MapRing(int fd, size_t bytes, off_t what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

std::unique_ptr<FutexRing> FutexRing::Open(std::string* why) {
  std::unique_ptr<FutexRing> ring(new FutexRing());
  io_uring_params p;
  memset(&p, 0, sizeof p);
  ring->fd_ = static_cast<int>(syscall(__NR_io_uring_setup, kEntries, &p));
  if (ring->fd_ < 0) {
    *why = std::string("io_uring_setup: ") + strerror(errno);
    return nullptr;
  }
  if (!(p.features & IORING_FEAT_NODROP) || !ring->Map(p)) {
    *why = "io_uring rings could not be mapped (Linux 5.5 or later needed)";
    return nullptr;
  }
  // The probe: a wait on a word that differs completes at once, with -EAGAIN where the kernel
  // knows IORING_OP_FUTEX_WAIT and -EINVAL where it does not.
  int32_t word = 0;
  if (!ring->Wait(1, &word, 1) || !ring->Submit(0, 1)) {  // (count 0, wait 1: the probe's completion)
    *why = std::string("io_uring_enter: ") + strerror(errno);
    return nullptr;
  }
  std::vector<std::pair<uint64_t, int32_t>> probe = ring->Reap();
  if (probe.size() != 1 || probe[0].second != -EAGAIN) {
    *why = "the kernel has no io_uring futex waits (Linux 6.7 or later needed)";
    return nullptr;
  }
  return ring;
}

bool FutexRing::Map(const io_uring_params& p) {
  sqBytes_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cqBytes_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP) sqBytes_ = cqBytes_ = std::max(sqBytes_, cqBytes_);
  sq_ = MapRing(fd_, sqBytes_, IORING_OFF_SQ_RING);
  if (sq_ == nullptr) return false;
  cq_ = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq_ : MapRing(fd_, cqBytes_, IORING_OFF_CQ_RING);
  sqesBytes_ = p.sq_entries * sizeof(io_uring_sqe);
  sqes_ = static_cast<io_uring_sqe*>(MapRing(fd_, sqesBytes_, IORING_OFF_SQES));
  if (cq_ == nullptr || sqes_ == nullptr) return false;
  char* sq = static_cast<char*>(sq_);
  char* cq = static_cast<char*>(cq_);
  sqHead_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
  sqTail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
  sqMask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
  sqArray_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
  sqFlags_ = reinterpret_cast<unsigned*>(sq + p.sq_off.flags);
  cqHead_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
  cqTail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
  cqMask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
  cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  return true;
}

FutexRing::~FutexRing() {
  if (sqes_ != nullptr) munmap(sqes_, sqesBytes_);
  if (cq_ != nullptr && cq_ != sq_) munmap(cq_, cqBytes_);
  if (sq_ != nullptr) munmap(sq_, sqBytes_);
  if (fd_ >= 0) close(fd_);  // the kernel cancels whatever is still in flight
}

// The next free submission entry, zeroed. Entries are submitted one at a time and withdrawn
// when the kernel does not take them (Submit), so the queue is empty and one is free.
io_uring_sqe* FutexRing::Next() {
  unsigned tail = *sqTail_;
  unsigned slot = tail & sqMask_;
  io_uring_sqe* sqe = &sqes_[slot];
  memset(sqe, 0, sizeof *sqe);
  sqArray_[slot] = slot;
  return sqe;
}

// Publishes the entries Next() gave (`count`) and enters the kernel; `wait` > 0 also waits for
// that many completions, and flushes completions kept in overflow into the CQ. Entries the
// kernel did not take (an error such as EAGAIN, EBUSY or ENOMEM) are withdrawn: without a
// polling kernel thread only this call consumes them, so none can be taken later, behind a
// caller that was told it failed, in place of the next entry.
bool FutexRing::Submit(unsigned count, unsigned wait) {
  unsigned tail = *sqTail_;
  if (count > 0) StoreRelease(sqTail_, tail + count);
  for (;;) {
    long rc = syscall(__NR_io_uring_enter, fd_, count, wait, count == 0 || wait > 0 ? IORING_ENTER_GETEVENTS : 0, nullptr, 0);
    if (rc < 0 && errno == EINTR) continue;
    if (LoadAcquire(sqHead_) == tail + count) return rc >= 0;
    StoreRelease(sqTail_, LoadAcquire(sqHead_));  // withdraw what is left
    return false;
  }
}

bool FutexRing::Wait(uint64_t id, int32_t* addr, int32_t expected) {
  io_uring_sqe* sqe = Next();
  sqe->opcode = kOpFutexWait;
  sqe->fd = static_cast<int32_t>(kFutex2U32);  // futex2 flags: a 32-bit word, not private
  sqe->addr = reinterpret_cast<uint64_t>(addr);
  sqe->off = static_cast<uint32_t>(expected);  // addr2: the value
  sqe->addr3 = kPlainBit;                      // the wake bitset
  sqe->user_data = id;
  return Submit(1, 0);
}

bool FutexRing::Cancel(uint64_t id) {
  io_uring_sqe* sqe = Next();
  sqe->opcode = IORING_OP_ASYNC_CANCEL;
  sqe->fd = -1;
  sqe->addr = id;
  sqe->user_data = kCancelTag;
  return Submit(1, 0);
}

std::vector<std::pair<uint64_t, int32_t>> FutexRing::Reap() {
  std::vector<std::pair<uint64_t, int32_t>> out;
  for (;;) {
    unsigned head = *cqHead_;
    unsigned tail = LoadAcquire(cqTail_);
    for (; head != tail; head++) {
      const io_uring_cqe& cqe = cqes_[head & cqMask_];
      if (cqe.user_data != kCancelTag) out.emplace_back(cqe.user_data, cqe.res);
    }
    StoreRelease(cqHead_, head);
    // Completions the full CQ could not take wait in the kernel until an enter flushes them.
    if (!(LoadAcquire(sqFlags_) & IORING_SQ_CQ_OVERFLOW) || !Submit(0, 0)) return out;
    if (LoadAcquire(cqTail_) == head) return out;
  }
}
