// The host runtime's stream queues (host_runtime.cpp), for the stand-ins built on them
// (nccl_host.cpp). Every function here is called with HostWorkMutex() held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cuda_host.h"

struct HostWork {
  uint64_t seq;
  std::function<void()> run;
};
// A stream's work not yet run, by number; `running` is the number of the work under way (0: none),
// run by `runner`.
struct HostQueue {
  int device = 0;
  bool legacy = false;    // the device's default (null) stream
  bool blocking = false;  // created without cudaStreamNonBlocking: ordered against the legacy stream
  std::deque<HostWork> work;
  uint64_t issued = 0, done = 0;
  uint64_t created = 0;  // order of first use, for draining several
  uint64_t running = 0;
  std::thread::id runner;
};
using HostQueueRef = std::shared_ptr<HostQueue>;

std::recursive_mutex& HostWorkMutex();
// The queue of stream s (null: the current device's legacy stream).
HostQueueRef HostQueueOf(cudaStream_t s);
// Queues `run` on q; returns its number, which `numbered` (if given) learns before `run` can run.
uint64_t HostEnqueue(const HostQueueRef& q, std::function<void()> run,
                     const std::function<void(uint64_t)>& numbered = nullptr);
// Runs q's work up to and including number `seq`; aborts when that needs work that waits for it
// (a deadlock on a GPU).
void HostRunUntil(HostQueue& q, uint64_t seq);
// Releases the mutex until other threads queue or finish work (or a short while passes); aborts
// naming `what` once nothing has happened for two minutes.
void HostWaitForWork(const char* what);
// Wakes HostWaitForWork's waiters (something they may wait for has changed).
void HostNotifyWork();
// Whether [p, p + bytes) lies in one live device allocation (a message naming `what` if not).
bool HostIsDeviceMemory(const void* p, size_t bytes, const char* what);
