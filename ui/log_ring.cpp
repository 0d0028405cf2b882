#include "ui/log_ring.h"

namespace lms::ui {

void LogRing::Add(int level, std::string text) {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.push_back({level, std::move(text)});
  while (lines_.size() > capacity_) lines_.pop_front();
  ++total_;
}

std::vector<LogLine> LogRing::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {lines_.begin(), lines_.end()};
}

uint64_t LogRing::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void LogRing::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.clear();
}

}  // namespace lms::ui
