// RunUnits: every unit runs once, on up to `workers` threads; the first failure or a stop ends
// the job with that status and starts no new units.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "core/eval/job_workers.h"

namespace lms::eval {

TEST_CASE("RunUnits runs each unit once, at most `workers` at a time", "[eval][workers]") {
  for (int workers : {1, 3, 8}) {
    std::mutex mu;
    std::multiset<size_t> seen;
    std::atomic<int> active{0}, peak{0};
    Status s = RunUnits(20, workers, nullptr, [&](size_t i) {
      const int now = ++active;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.insert(i);
      }
      --active;
      return Status::Ok();
    });
    CHECK(s.ok());
    CHECK(seen.size() == 20);
    for (size_t i = 0; i < 20; ++i) CHECK(seen.count(i) == 1);
    CHECK(peak.load() <= workers);
    if (workers > 1) CHECK(peak.load() > 1);
  }
}

TEST_CASE("RunUnits stops at the first failure and on a stop request", "[eval][workers]") {
  std::atomic<int> ran{0};
  Status s = RunUnits(100, 4, nullptr, [&](size_t i) {
    ++ran;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return i == 5 ? Status::InvalidArgument("unit 5 is bad") : Status::Ok();
  });
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("unit 5") != std::string::npos);
  CHECK(ran.load() < 100);

  std::atomic<bool> stop{false};
  std::atomic<int> done{0};
  s = RunUnits(100, 2, &stop, [&](size_t i) {
    if (i == 10) stop = true;
    ++done;
    return Status::Ok();
  }, "answer job");
  CHECK(s.code() == StatusCode::kCancelled);
  CHECK(s.message() == "answer job stopped");
  CHECK(done.load() < 100);
  CHECK(RunUnits(0, 4, nullptr, [](size_t) { return Status::InvalidArgument("never"); }).ok());
}

}  // namespace lms::eval
