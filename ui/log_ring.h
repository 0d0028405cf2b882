// The last lines the engines logged, for the Log panel. Thread-safe: engines log from any
// thread; the UI thread copies a snapshot each frame it draws the panel.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace lms::ui {

struct LogLine {
  int level = 0;  // 0 debug, 1 info, 2 warn, 3 error
  std::string text;
};

class LogRing {
 public:
  explicit LogRing(size_t capacity = 2000) : capacity_(capacity) {}
  void Add(int level, std::string text);
  std::vector<LogLine> Snapshot() const;
  uint64_t total() const;  // lines ever added (to notice new ones)
  void Clear();

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::deque<LogLine> lines_;  // GUARDED_BY(mu_)
  uint64_t total_ = 0;         // GUARDED_BY(mu_)
};

}  // namespace lms::ui
