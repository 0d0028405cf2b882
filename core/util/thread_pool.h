// A fixed pool of worker threads for data-parallel loops with low fork/join latency.
//
// Workers spin briefly on an atomic generation counter before sleeping, because a forward pass
// issues hundreds of short parallel regions per token and a condition-variable wake-up per
// region would cost more than the work. The calling thread takes part as worker 0.
// Thread-safety: Run() must not be called concurrently from several threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lms {

class ThreadPool {
 public:
  // n_threads includes the calling thread; 0 means the cores available to this process.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index, n_threads) on every thread, returns when all have finished.
  void Run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into contiguous chunks, one per thread: fn(begin, end).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // Cores usable by this process (sched affinity), at least 1.
  static int AvailableCores();

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> sleepers_{0};
};

}  // namespace lms
