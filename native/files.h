// The file reads a shared domain's open makes (files.cc), done here rather than through node:fs:
// in a fresh process, the first fstatSync and readFileSync cost a few hundred microseconds each
// of JavaScript compiled on first use, and Domain.open makes them before anything else.
#ifndef XPMEM_FILES_H_
#define XPMEM_FILES_H_

#include <v8.h>

// fileStat(fd) -> [mode, uid, size, inode] of the open file fd (fstat); throws the errno otherwise.
void FileStat(const v8::FunctionCallbackInfo<v8::Value>& args);

// pathStat(path) -> [mode, uid, size, inode] of the file at path (stat), or undefined when there
// is none (or it cannot be reached).
void PathStat(const v8::FunctionCallbackInfo<v8::Value>& args);

// readPage(fd) -> the first 4 KiB of the open file fd (pread) as an ArrayBuffer of the bytes
// read, fewer at its end; throws the errno otherwise. A read, not a mapping: a mapped hole of a
// full tmpfs, or a file cut short meanwhile, would fault (SIGBUS) where a read comes back short.
void ReadPage(const v8::FunctionCallbackInfo<v8::Value>& args);

// readText(path) -> the first 4 KiB of the file at path as Latin-1, or the errno when it cannot
// be opened or read: ENOENT or ESRCH for a /proc/<pid>/stat of a process that is gone, others
// (EMFILE: out of file descriptors) when it could not be looked at.
void ReadText(const v8::FunctionCallbackInfo<v8::Value>& args);

// kernelThread() -> the calling thread's id as the kernel knows it (gettid): its
// /proc/<pid>/task/<tid> says whether it still runs.
void KernelThread(const v8::FunctionCallbackInfo<v8::Value>& args);

#endif  // XPMEM_FILES_H_
