// fileStat, pathStat, readPage, readText and kernelThread (files.h): plain system calls on the
// calling thread; none sleeps.
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <node.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Value;

namespace {

// The fd of args[0] in *fd; false (a TypeError thrown) when it is not one.
bool FdOf(const FunctionCallbackInfo<Value>& args, int* fd) {
  if (args[0]->IsInt32()) {
    *fd = args[0].As<v8::Int32>()->Value();
    return true;
  }
  Isolate* isolate = args.GetIsolate();
  isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8Literal(isolate, "expected (fd)")));
  return false;
}

constexpr size_t kPage = 4096;

// Reads the first kPage bytes of fd into `into` (pread, retried on EINTR): how many, or -1 (errno).
ssize_t ReadStart(int fd, uint8_t* into) {
  ssize_t got;
  do got = pread(fd, into, kPage, 0);
  while (got < 0 && errno == EINTR);
  return got;
}

}  // namespace

// [mode, uid, size, inode] of `st`.
Local<v8::Array> Fields(Isolate* isolate, const struct stat& st) {
  Local<Value> fields[] = {
      v8::Number::New(isolate, st.st_mode),
      v8::Number::New(isolate, st.st_uid),
      v8::Number::New(isolate, static_cast<double>(st.st_size)),
      v8::Number::New(isolate, static_cast<double>(st.st_ino)),
  };
  return v8::Array::New(isolate, fields, 4);
}

void FileStat(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  int fd;
  if (!FdOf(args, &fd)) return;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    isolate->ThrowException(node::ErrnoException(isolate, errno, "fstat"));
    return;
  }
  args.GetReturnValue().Set(Fields(isolate, st));
}

void PathStat(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsString()) {
    isolate->ThrowException(v8::Exception::TypeError(v8::String::NewFromUtf8Literal(isolate, "expected (path)")));
    return;
  }
  v8::String::Utf8Value path(isolate, args[0]);
  struct stat st;
  if (stat(*path, &st) == 0) args.GetReturnValue().Set(Fields(isolate, st));
}

void ReadPage(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  int fd;
  if (!FdOf(args, &fd)) return;
  uint8_t page[kPage];
  ssize_t got = ReadStart(fd, page);
  if (got < 0) {
    isolate->ThrowException(node::ErrnoException(isolate, errno, "pread"));
    return;
  }
  Local<v8::ArrayBuffer> bytes = v8::ArrayBuffer::New(isolate, static_cast<size_t>(got));
  if (got > 0) memcpy(bytes->Data(), page, static_cast<size_t>(got));  // an empty buffer's data may be null
  args.GetReturnValue().Set(bytes);
}

void ReadText(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsString()) return;
  v8::String::Utf8Value path(isolate, args[0]);
  int fd = open(*path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    args.GetReturnValue().Set(errno);
    return;
  }
  uint8_t text[kPage];
  ssize_t got = ReadStart(fd, text);
  int error = errno;
  close(fd);
  if (got < 0) {
    args.GetReturnValue().Set(error);
    return;
  }
  args.GetReturnValue().Set(v8::String::NewFromOneByte(isolate, text, v8::NewStringType::kNormal, static_cast<int>(got)).ToLocalChecked());
}

void KernelThread(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(static_cast<int32_t>(syscall(SYS_gettid)));
}
