// The native part of shared domains (src/sync/native.ts loads it): a SharedArrayBuffer over a
// mapping of a shared memory file, and futex waits and wakes that reach other processes.
//
// V8's Atomics.wait/notify keep one wait list per process, so a domain spread over processes
// sleeps and wakes through the futex system call instead: without FUTEX_PRIVATE_FLAG, the kernel
// keys a futex on a MAP_SHARED mapping by its file and offset, the same in every process.
//
// Exports (every index is an Int32 word index into the buffer, which map() made):
//   map(fd, offset, length)                  -> SharedArrayBuffer over mmap(MAP_SHARED) of fd (whole
//                                               numbers; RangeError past the file's end)
//   wait(sab, index, expected, ms)           -> 0 woken, 1 not equal, 2 timed out (ms < 0: none)
//   wake(sab, index)                         -> how many sleepers were woken (all of them)
//   waitAsync(sab, index, expected, fn)      -> id; fn(result) later on this thread's loop
//                                               (0 woken, 1 not equal, 3 cancelled)
//   cancel(id)                               -> the async wait ends soon with result 3 (cancelled)
//   waits()                                  -> how this thread's async waits sleep: "io_uring",
//                                               or "threads (why not io_uring)"
//   useWaiterThreads()                       -> this thread's async waits sleep in waiter threads,
//                                               not io_uring (before its first; the caller reads
//                                               XPMEM_ASYNC_WAITS: the addon reads no environment,
//                                               which another thread may be changing)
//   lock(fd, ms)                             -> flock(fd, LOCK_EX), trying for up to ms (ms < 0:
//                                               no bound): true once held; released by unlock(fd)
//                                               or by death (not by close alone while fd is mapped)
//   unlock(fd)                               -> flock(fd, LOCK_UN)
//   fileStat(fd), pathStat(path), readPage(fd), readText(path)
//                                            -> what Domain.open reads of files (files.h)
//   kernelThread()                           -> the calling thread's kernel id (gettid; files.h)
//
// An async wait is queued in the kernel through this thread's io_uring (ring.h), whose
// descriptor the thread's event loop polls: a wake from any process ends the loop's sleep
// directly. Where io_uring futex waits are missing (Linux before 6.7, io_uring disabled or
// filtered) or useWaiterThreads() asked for it, a wait sleeps in a waiter thread of a
// per-process pool instead (it grows to the number of async waits in flight; idle threads are
// reused, and end after kIdleMs), never in libuv's shared pool, and its result comes back
// through a uv_async handle of the thread that asked. A pool waiter sleeps on the word and on its request's cancel word at
// once (futex_waitv), so cancel() (set the cancel word, wake it) never races with the sleep; a
// kernel without futex_waitv gets slices (SlicedWait). Both handles are unreferenced: a pending
// wait does not keep the event loop alive, as with Atomics.waitAsync. When a thread's
// environment is torn down (a worker exits), its waits are cancelled and dropped. Waits and
// wakes take words of map()'s buffers only: their memory is unmapped by whichever thread lets
// go of it last (a waiter thread may), where a buffer V8 allocated must be freed by its
// isolate. The addon stays loaded for the life of the process (a waiter thread, or a closing
// handle of a worker that loaded it, may run its code after that worker unloaded it).
//
// The blocking calls (wait, lock) sleep in slices of at most kSliceMs and run a no-op script
// between them: V8 takes a terminate request (worker.terminate(), process.exit() ending the
// workers) only while JavaScript runs, so a thread asleep here would hold its exit up until
// its deadline.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <linux/futex.h>
#include <node.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <v8.h>

#include "files.h"
#include "ring.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using v8::BackingStore;
using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::Global;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::Value;

constexpr int kWoken = 0;
constexpr int kNotEqual = 1;
constexpr int kTimedOut = 2;
constexpr int kCancelled = 3;
constexpr int64_t kSliceMs = 100;
// An idle waiter thread ends after this long: the pool shrinks back after a burst of waits.
constexpr int64_t kIdleMs = 10000;
// A waiter thread's stack: a futex_waitv and a condition variable need little.
constexpr size_t kWaiterStack = 64 * 1024;

// FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait interrupted by a
// signal resumes with the same deadline.
timespec MonotonicIn(int64_t ms) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t ns = now.tv_nsec + (ms % 1000) * 1000000;
  timespec at;
  at.tv_sec = now.tv_sec + ms / 1000 + ns / 1000000000;
  at.tv_nsec = ns % 1000000000;
  return at;
}

bool Passed(const timespec& at) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > at.tv_sec || (now.tv_sec == at.tv_sec && now.tv_nsec >= at.tv_nsec);
}

// Sleeps while *addr == expected until `at` (nullptr: no deadline), woken by a wake of any of
// `bits` (ring.h kPlainBit). Never private: the wait is keyed by the mapped file, so a wake from
// any process reaches it.
int FutexWait(int32_t* addr, int32_t expected, const timespec* at, uint32_t bits = kPlainBit) {
  for (;;) {
    long rc = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expected, at, nullptr, bits);
    if (rc == 0) return kWoken;
    if (errno == EAGAIN) return kNotEqual;
    if (errno == ETIMEDOUT) return kTimedOut;
    if (errno != EINTR) return kWoken;  // EFAULT/EINVAL cannot happen on a checked address: wake, callers re-check
  }
}

// True once this thread's isolate is being terminated: runs a no-op script, in which V8 takes a
// pending terminate request; the termination is then thrown on to the caller's caller.
bool Terminating(Isolate* isolate) {
  v8::TryCatch tc(isolate);
  Local<Context> context = isolate->GetCurrentContext();
  Local<v8::Script> script;
  Local<Value> ran;
  if (v8::Script::Compile(context, v8::String::NewFromUtf8Literal(isolate, "0")).ToLocal(&script) && script->Run(context).ToLocal(&ran)) return false;
  if (!tc.HasTerminated()) return false;
  tc.ReThrow();
  return true;
}

// FutexWait until `at` (nullptr: no deadline) for the calling JavaScript thread: in slices of at
// most kSliceMs, checking between them that its isolate is not being terminated (then
// kTimedOut, with the termination pending).
int FutexWaitFor(Isolate* isolate, int32_t* addr, int32_t expected, const timespec* at) {
  for (;;) {
    timespec slice = MonotonicIn(kSliceMs);
    bool last = at != nullptr && (at->tv_sec < slice.tv_sec || (at->tv_sec == slice.tv_sec && at->tv_nsec <= slice.tv_nsec));
    int rc = FutexWait(addr, expected, last ? at : &slice);
    if (rc != kTimedOut || last || Terminating(isolate)) return rc;
  }
}

int FutexWake(int32_t* addr) {
  return static_cast<int>(syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0));
}

void Throw(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// The mappings map() made and not yet unmapped, by address (any thread; guarded by mappedMu).
// Leaked on purpose, as the pool: a waiter thread may unmap after static destruction.
std::mutex* const mappedMu = new std::mutex();
std::unordered_map<void*, size_t>* const mapped = new std::unordered_map<void*, size_t>();

bool Mapped(void* data) {
  std::lock_guard<std::mutex> lock(*mappedMu);
  return mapped->count(data) != 0;
}

// The word `index` of the SharedArrayBuffer `buffer` (one map() made), and the store that keeps
// its memory mapped.
bool WordAt(Isolate* isolate, Local<Value> buffer, Local<Value> index, int32_t** addr, std::shared_ptr<BackingStore>* store) {
  if (!buffer->IsSharedArrayBuffer() || !index->IsUint32()) {
    Throw(isolate, "expected (SharedArrayBuffer, word index)");
    return false;
  }
  std::shared_ptr<BackingStore> s = buffer.As<SharedArrayBuffer>()->GetBackingStore();
  if (!Mapped(s->Data())) {
    Throw(isolate, "expected a SharedArrayBuffer that map() made");
    return false;
  }
  uint32_t i = index.As<v8::Uint32>()->Value();
  if ((static_cast<size_t>(i) + 1) * 4 > s->ByteLength()) {
    Throw(isolate, "word index out of range");
    return false;
  }
  *addr = static_cast<int32_t*>(s->Data()) + i;
  if (store != nullptr) *store = std::move(s);
  return true;
}

// A bound in ms from JavaScript: -1 for none (negative, past 1e12, not a number, NaN).
int64_t MsOf(Local<Value> v) {
  double ms = v->IsNumber() ? v.As<Number>()->Value() : -1;
  return ms >= 0 && ms <= 1e12 ? static_cast<int64_t>(ms) : -1;
}

// args[i] as an Int32 in *out; false with the exception of its conversion pending (a Symbol, a
// throwing valueOf).
bool Int32Of(const FunctionCallbackInfo<Value>& args, int i, int32_t* out) {
  return args[i]->Int32Value(args.GetIsolate()->GetCurrentContext()).To(out);
}

// ---- async waits ----------------------------------------------------------------------------

struct Env;

struct Request {
  std::shared_ptr<BackingStore> store;
  int32_t* addr = nullptr;
  int32_t expected = 0;
  uint32_t id = 0;
  std::atomic<int32_t> cancel{0};  // 1 once cancelled: the second futex the waiter sleeps on
  std::shared_ptr<Env> env;
};

// One JavaScript thread's end of the async waits: results queue here and its loop runs them.
struct Env {
  uv_async_t async;
  uv_poll_t poll;                                   // the ring's descriptor, when there is a ring
  Isolate* isolate = nullptr;
  uv_loop_t* loop = nullptr;
  Global<Context> context;
  std::mutex mu;                                    // guards done, pending and closed
  std::deque<std::pair<uint32_t, int>> done;        // (id, result) for the loop to deliver
  std::unordered_map<uint32_t, Request*> pending;   // waits in flight (their cancel flags)
  bool closed = false;
  std::unordered_map<uint32_t, Global<Function>> callbacks;  // the JavaScript thread only
  uint32_t next = 0;
  // The JavaScript thread only: its ring (opened at the first async wait), why there is none,
  // and the memory each wait in the ring sleeps on, kept mapped until it completes.
  std::unique_ptr<FutexRing> ring;
  std::string noRing;
  bool ringTried = false;
  bool waiterThreads = false;  // useWaiterThreads(): no ring
  std::unordered_map<uint32_t, std::shared_ptr<BackingStore>> inRing;
  std::vector<uint32_t> uncancelled;  // waits in the ring whose cancel the kernel refused (RetryCancels)
  int handles = 1;  // open uv handles; the holder goes with the last
};

struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Request>> queue;
  int idle = 0;
};

// Leaked on purpose: waiter threads may outlive static destruction at process exit.
Pool* const pool = new Pool();

// futex_waitv(2) (Linux 5.16): one sleep on the word and on the request's cancel word, so a
// cancel can never slip in between a check and the sleep. Where the kernel lacks it, the waiter
// sleeps in slices and checks the cancel word between them (SlicedWait).
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
struct WaitV {  // struct futex_waitv
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
constexpr uint32_t kFutex2U32 = 0x02;
constexpr uint32_t kFutex2Private = 128;
std::atomic<bool> noWaitv{false};

// The wake bit of request `r`'s sliced sleeps: its own among 31, never kPlainBit.
uint32_t SliceBit(const Request& r) {
  return 1u << (1 + r.id % 31);
}

// Ends request `r` at once: where futex_waitv sleeps on its cancel word, by a wake of that word;
// a sliced waiter sleeps on the shared word alone, with a bit of its own, woken on that bit: no
// other wait of any process (kPlainBit) wakes, and a sliced one that shares the bit looks at
// its word and cancel again (a spurious wake-up). A cancel that lands just before a slice's
// sleep is seen at the slice's end.
void Cancel(Request* r) {
  r->cancel.store(1);
  syscall(SYS_futex, &r->cancel, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  if (noWaitv.load()) syscall(SYS_futex, r->addr, FUTEX_WAKE_BITSET, INT_MAX, nullptr, nullptr, SliceBit(*r));
}

// Sleeps while *addr == expected and the request is not cancelled; -1 where the kernel has no
// futex_waitv, or refuses it (ENOSYS, or a seccomp filter's EPERM or EACCES: any error but an
// interruption, as the call's arguments are always valid).
int WaitOrCancel(Request& r) {
  WaitV w[2] = {{static_cast<uint32_t>(r.expected), reinterpret_cast<uint64_t>(r.addr), kFutex2U32, 0},
                {0, reinterpret_cast<uint64_t>(&r.cancel), kFutex2U32 | kFutex2Private, 0}};
  for (;;) {
    long rc = syscall(SYS_futex_waitv, w, 2, 0, nullptr, CLOCK_MONOTONIC);
    if (rc == 0) return kWoken;
    if (rc == 1) return kCancelled;
    if (errno == EAGAIN) return r.cancel.load() != 0 ? kCancelled : kNotEqual;
    if (errno != EINTR) return -1;
  }
}

// The fallback: slices of at most kSliceMs, the cancel flag checked between them (a cancel that
// lands just before a slice's sleep is seen at its end).
int SlicedWait(Request& r) {
  for (;;) {
    if (r.cancel.load() != 0) return kCancelled;
    timespec at = MonotonicIn(kSliceMs);
    int rc = FutexWait(r.addr, r.expected, &at, SliceBit(r));
    if (rc != kTimedOut) return r.cancel.load() != 0 ? kCancelled : rc;
  }
}

// Queues result `result` of wait `id` for env's loop (any thread; env->mu held).
void Queue(Env* env, uint32_t id, int result) {
  env->done.emplace_back(id, result);
  uv_async_send(&env->async);
}

void RunWait(Request& r) {
  int result = noWaitv.load() ? -1 : WaitOrCancel(r);
  if (result < 0) {
    noWaitv.store(true);
    result = SlicedWait(r);
  }
  std::shared_ptr<Env> env = std::move(r.env);
  std::lock_guard<std::mutex> lock(env->mu);
  env->pending.erase(r.id);
  if (!env->closed) Queue(env.get(), r.id, result);
}

// A waiter thread: runs queued waits, and ends after kIdleMs without one.
void* Waiter(void*) {
  for (;;) {
    std::unique_ptr<Request> r;
    {
      std::unique_lock<std::mutex> lock(pool->mu);
      pool->idle++;
      bool got = pool->cv.wait_for(lock, std::chrono::milliseconds(kIdleMs), [] { return !pool->queue.empty(); });
      pool->idle--;
      if (!got) return nullptr;
      r = std::move(pool->queue.front());
      pool->queue.pop_front();
    }
    RunWait(*r);
  }
}

// Queues `r` for a waiter thread, starting one unless one is idle; false (nothing queued, errno
// set) when no thread can be made.
bool Submit(std::unique_ptr<Request>& r) {
  std::lock_guard<std::mutex> lock(pool->mu);
  if (pool->idle <= static_cast<int>(pool->queue.size())) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kWaiterStack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, Waiter, nullptr);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      errno = rc;
      return false;
    }
  }
  pool->queue.push_back(std::move(r));
  pool->cv.notify_one();
  return true;
}

// Runs the callbacks of `done` on env's JavaScript thread, each once (a result for a wait whose
// callback already ran is dropped).
void Run(Env* env, const std::deque<std::pair<uint32_t, int>>& done) {
  Isolate* isolate = env->isolate;
  HandleScope scope(isolate);
  Local<Context> context = env->context.Get(isolate);
  Context::Scope in(context);
  for (auto& [id, result] : done) {
    auto it = env->callbacks.find(id);
    if (it == env->callbacks.end()) continue;
    Local<Function> fn = it->second.Get(isolate);
    env->callbacks.erase(it);
    Local<Value> argv[] = {Integer::New(isolate, result)};
    // MakeCallback runs the microtasks the callback queued (the promise it resolves).
    (void)node::MakeCallback(isolate, context->Global(), fn, 1, argv, {0, 0});
  }
}

Env* EnvOf(uv_handle_t* handle) {
  return static_cast<std::shared_ptr<Env>*>(handle->data)->get();
}

// The loop's end of the pool's results (and of submissions the ring refused).
void Deliver(uv_async_t* handle) {
  Env* env = EnvOf(reinterpret_cast<uv_handle_t*>(handle));
  std::deque<std::pair<uint32_t, int>> done;
  {
    std::lock_guard<std::mutex> lock(env->mu);
    done.swap(env->done);
  }
  Run(env, done);
}

// Asks the kernel again to end the waits whose cancel it refused: they ended for their callers,
// but stay queued in the kernel, their memory mapped, until a wake of their word. At each
// submission and each reaping of the ring, while the kernel keeps refusing; an idle thread's
// stay until its next async wait, or its end.
void RetryCancels(Env* env) {
  auto& ids = env->uncancelled;
  ids.erase(std::remove_if(ids.begin(), ids.end(), [env](uint32_t id) { return env->inRing.count(id) == 0 || env->ring->Cancel(id); }), ids.end());
}

// The loop's end of the ring: its descriptor reads ready, completions wait.
void Reaped(uv_poll_t* handle, int status, int events) {
  Env* env = EnvOf(reinterpret_cast<uv_handle_t*>(handle));
  std::deque<std::pair<uint32_t, int>> done;
  for (auto& [id, res] : env->ring->Reap()) {
    env->inRing.erase(static_cast<uint32_t>(id));
    done.emplace_back(static_cast<uint32_t>(id), res == -EAGAIN ? kNotEqual : res == -ECANCELED ? kCancelled : kWoken);  // other errors: callers re-check
  }
  if (!env->uncancelled.empty()) RetryCancels(env);
  Run(env, done);
}

void Closed(uv_handle_t* handle);

// Opens env's ring at its first async wait, unless useWaiterThreads() asked for the pool.
void OpenRing(Env* env) {
  env->ringTried = true;
  if (env->waiterThreads) {
    env->noRing = "XPMEM_ASYNC_WAITS=threads";
    return;
  }
  env->ring = FutexRing::Open(&env->noRing);
  if (env->ring == nullptr) return;
  env->poll.data = env->async.data;
  int rc = uv_poll_init(env->loop, &env->poll, env->ring->fd());
  if (rc != 0) {
    env->noRing = std::string("uv_poll_init: ") + uv_strerror(rc);
    env->ring.reset();
    return;
  }
  env->handles++;
  uv_unref(reinterpret_cast<uv_handle_t*>(&env->poll));
  rc = uv_poll_start(&env->poll, UV_READABLE, Reaped);
  if (rc != 0) {
    env->noRing = std::string("uv_poll_start: ") + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&env->poll), Closed);
    env->ring.reset();
  }
}

void Closed(uv_handle_t* handle) {
  auto* holder = static_cast<std::shared_ptr<Env>*>(handle->data);
  if (--holder->get()->handles == 0) delete holder;
}

void Teardown(void* arg) {
  auto* holder = static_cast<std::shared_ptr<Env>*>(arg);
  Env* env = holder->get();
  {
    std::lock_guard<std::mutex> lock(env->mu);
    env->closed = true;
    for (auto& [id, r] : env->pending) Cancel(r);
  }
  env->callbacks.clear();
  env->context.Reset();
  if (env->ring != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(&env->poll), Closed);
  env->ring.reset();  // closing the ring ends its waits
  env->inRing.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&env->async), Closed);
}

// The Env holder a function's data carries (V8 14 wants a type tag on every External).
#if V8_MAJOR_VERSION >= 14
Local<v8::External> Wrap(Isolate* isolate, std::shared_ptr<Env>* holder) {
  return v8::External::New(isolate, holder, v8::kExternalPointerTypeTagDefault);
}
std::shared_ptr<Env>* HolderOf(const FunctionCallbackInfo<Value>& args) {
  return static_cast<std::shared_ptr<Env>*>(args.Data().As<v8::External>()->Value(v8::kExternalPointerTypeTagDefault));
}
#else
Local<v8::External> Wrap(Isolate* isolate, std::shared_ptr<Env>* holder) {
  return v8::External::New(isolate, holder);
}
std::shared_ptr<Env>* HolderOf(const FunctionCallbackInfo<Value>& args) {
  return static_cast<std::shared_ptr<Env>*>(args.Data().As<v8::External>()->Value());
}
#endif

// ---- exports ----------------------------------------------------------------------------------

void Map(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsInt32() || !args[1]->IsNumber() || !args[2]->IsNumber()) return Throw(isolate, "expected (fd, offset, length)");
  int fd = args[0].As<v8::Int32>()->Value();
  double offset = args[1].As<Number>()->Value();
  double length = args[2].As<Number>()->Value();
  auto whole = [](double x) { return std::isfinite(x) && x == std::trunc(x); };
  if (!whole(offset) || !whole(length) || offset < 0 || length <= 0 || offset + length > 9007199254740991.0) return Throw(isolate, "expected a whole offset >= 0 and length > 0");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    isolate->ThrowException(node::ErrnoException(isolate, errno, "fstat"));
    return;
  }
  if (offset + length > static_cast<double>(st.st_size)) {
    // A page past the end of a shared file faults (SIGBUS) when touched.
    isolate->ThrowException(v8::Exception::RangeError(v8::String::NewFromUtf8Literal(isolate, "the mapping would reach past the end of the file")));
    return;
  }
  void* p = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    isolate->ThrowException(node::ErrnoException(isolate, errno, "mmap"));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(*mappedMu);
    mapped->emplace(p, static_cast<size_t>(length));
  }
  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      p, static_cast<size_t>(length),
      [](void* data, size_t len, void*) {
        {
          std::lock_guard<std::mutex> lock(*mappedMu);
          mapped->erase(data);
        }
        munmap(data, len);
      },
      nullptr);
  args.GetReturnValue().Set(SharedArrayBuffer::New(isolate, std::move(store)));
}

void Wait(const FunctionCallbackInfo<Value>& args) {
  int32_t* addr;
  if (!WordAt(args.GetIsolate(), args[0], args[1], &addr, nullptr)) return;
  int32_t expected;
  if (!Int32Of(args, 2, &expected)) return;
  int64_t ms = MsOf(args[3]);
  timespec at = MonotonicIn(ms < 0 ? 0 : ms);
  args.GetReturnValue().Set(FutexWaitFor(args.GetIsolate(), addr, expected, ms < 0 ? nullptr : &at));
}

void Wake(const FunctionCallbackInfo<Value>& args) {
  int32_t* addr;
  if (!WordAt(args.GetIsolate(), args[0], args[1], &addr, nullptr)) return;
  args.GetReturnValue().Set(FutexWake(addr));
}

void WaitAsync(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  auto r = std::make_unique<Request>();
  if (!WordAt(isolate, args[0], args[1], &r->addr, &r->store)) return;
  if (!args[3]->IsFunction()) return Throw(isolate, "expected a callback");
  if (!Int32Of(args, 2, &r->expected)) return;
  std::shared_ptr<Env> env = *HolderOf(args);
  uint32_t id;
  do id = ++env->next;
  while (id == 0 || env->callbacks.count(id) != 0 || env->inRing.count(id) != 0);  // 0 tags the ring's cancel requests; a wrapped id may still wait
  r->id = id;
  env->callbacks.emplace(id, Global<Function>(isolate, args[3].As<Function>()));
  args.GetReturnValue().Set(id);
  if (!env->ringTried) OpenRing(env.get());
  if (env->ring != nullptr) {
    env->inRing.emplace(id, std::move(r->store));
    if (env->ring->Wait(id, r->addr, r->expected)) {
      if (!env->uncancelled.empty()) RetryCancels(env.get());
      return;
    }
    env->inRing.erase(id);  // withdrawn: it never completes
    std::lock_guard<std::mutex> lock(env->mu);
    Queue(env.get(), id, kWoken);  // a spurious wake-up instead: callers re-check
    return;
  }
  r->env = env;
  {
    std::lock_guard<std::mutex> lock(env->mu);
    env->pending.emplace(id, r.get());
  }
  if (Submit(r)) return;
  int error = errno;
  {
    std::lock_guard<std::mutex> lock(env->mu);
    env->pending.erase(id);
  }
  env->callbacks.erase(id);
  std::string message = std::string("no waiter thread for another async wait: ") + strerror(error);
  isolate->ThrowException(v8::Exception::RangeError(v8::String::NewFromUtf8(isolate, message.c_str()).ToLocalChecked()));
}

void UseWaiterThreads(const FunctionCallbackInfo<Value>& args) {
  HolderOf(args)->get()->waiterThreads = true;
}

void CancelWait(const FunctionCallbackInfo<Value>& args) {
  Env* env = HolderOf(args)->get();
  uint32_t id;
  if (!args[0]->Uint32Value(args.GetIsolate()->GetCurrentContext()).To(&id)) return;
  if (env->inRing.count(id) != 0) {
    if (env->ring->Cancel(id)) return;
    env->uncancelled.push_back(id);
    std::lock_guard<std::mutex> lock(env->mu);
    Queue(env, id, kCancelled);  // the kernel took no cancel: the wait ends now, its completion is dropped later
    return;
  }
  std::lock_guard<std::mutex> lock(env->mu);
  auto it = env->pending.find(id);
  if (it != env->pending.end()) Cancel(it->second);
}

void Waits(const FunctionCallbackInfo<Value>& args) {
  Env* env = HolderOf(args)->get();
  if (!env->ringTried) OpenRing(env);
  std::string how = env->ring != nullptr ? "io_uring" : "threads (" + env->noRing + ")";
  args.GetReturnValue().Set(v8::String::NewFromUtf8(args.GetIsolate(), how.c_str()).ToLocalChecked());
}

void Lock(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsInt32()) return Throw(isolate, "expected (fd, ms)");
  int fd = args[0].As<v8::Int32>()->Value();
  int64_t ms = MsOf(args[1]);
  timespec deadline = MonotonicIn(std::max<int64_t>(0, ms));
  timespec slice = MonotonicIn(kSliceMs);
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      isolate->ThrowException(node::ErrnoException(isolate, errno, "flock"));
      return;
    }
    if (ms >= 0 && Passed(deadline)) return args.GetReturnValue().Set(false);
    if (Passed(slice)) {
      if (Terminating(isolate)) return;
      slice = MonotonicIn(kSliceMs);
    }
    timespec pause = {0, 1000000};  // the holder decides in microseconds: poll each ms
    nanosleep(&pause, nullptr);
  }
  args.GetReturnValue().Set(true);
}

void Unlock(const FunctionCallbackInfo<Value>& args) {
  if (args[0]->IsInt32()) flock(args[0].As<v8::Int32>()->Value(), LOCK_UN);
}

// Keeps the addon loaded until the process ends (RTLD_NODELETE on the loaded object): Node
// unloads an addon with the last environment that loaded it, and a waiter thread or a handle
// closing after that environment's teardown would run code that is gone.
void Pin() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info self;
    if (dladdr(reinterpret_cast<void*>(&Pin), &self) != 0 && self.dli_fname != nullptr) dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

}  // namespace

// Context-aware: every worker thread that loads the addon gets its own Env.
NODE_MODULE_INIT() {
  Pin();
  Isolate* isolate = Isolate::GetCurrent();  // Context::GetIsolate is gone from V8 in Node 26
  auto* holder = new std::shared_ptr<Env>(std::make_shared<Env>());
  Env* env = holder->get();
  env->isolate = isolate;
  env->context.Reset(isolate, context);
  env->loop = node::GetCurrentEventLoop(isolate);
  env->async.data = holder;
  uv_async_init(env->loop, &env->async, Deliver);
  uv_unref(reinterpret_cast<uv_handle_t*>(&env->async));
  node::AddEnvironmentCleanupHook(isolate, Teardown, holder);
  Local<v8::External> data = Wrap(isolate, holder);
  auto set = [&](const char* name, v8::FunctionCallback fn) {
    Local<Function> f = v8::FunctionTemplate::New(isolate, fn, data)->GetFunction(context).ToLocalChecked();
    exports->Set(context, v8::String::NewFromUtf8(isolate, name).ToLocalChecked(), f).Check();
  };
  set("map", Map);
  set("wait", Wait);
  set("wake", Wake);
  set("waitAsync", WaitAsync);
  set("cancel", CancelWait);
  set("waits", Waits);
  set("useWaiterThreads", UseWaiterThreads);
  set("lock", Lock);
  set("unlock", Unlock);
  set("fileStat", FileStat);
  set("pathStat", PathStat);
  set("readPage", ReadPage);
  set("readText", ReadText);
  set("kernelThread", KernelThread);
}
