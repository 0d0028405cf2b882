#include "core/eval/job_workers.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace lms::eval {

Status RunUnits(size_t n_units, int workers, const std::atomic<bool>* stop, const std::function<Status(size_t)>& run_unit,
                const char* what) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first = Status::Ok();
  auto work = [&]() {
    while (!failed.load()) {
      if (stop && stop->load()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = Status::Cancelled(fmt::format("{} stopped", what));
        failed = true;
        return;
      }
      const size_t i = next.fetch_add(1);
      if (i >= n_units) return;
      Status s = run_unit(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = std::move(s);
        failed = true;
        return;
      }
    }
  };
  const size_t n_threads = std::min<size_t>(static_cast<size_t>(std::max(workers, 1)), std::max<size_t>(n_units, 1));
  if (n_threads <= 1) {
    work();
    return first;
  }
  std::vector<std::thread> threads;
  threads.reserve(n_threads);
  for (size_t t = 0; t < n_threads; ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return first;
}

}  // namespace lms::eval
