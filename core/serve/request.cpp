#include "core/serve/request.h"

#include <fmt/format.h>

namespace lms::serve {

Status RequestParams::Validate() const {
  LMS_RETURN_IF_ERROR(sampling.Validate());
  if (max_tokens < 1) return Status::InvalidArgument(fmt::format("max_tokens {} must be at least 1", max_tokens));
  if (n < 1 || n > 16) return Status::InvalidArgument(fmt::format("n {} must be in [1, 16]", n));
  if (stop.size() > 16) return Status::InvalidArgument("stop: at most 16 stop strings");
  for (const auto& s : stop) {
    if (s.empty()) return Status::InvalidArgument("stop: a stop string is empty");
  }
  if (logprobs > 20) return Status::InvalidArgument(fmt::format("top logprobs {} must be in [0, 20]", logprobs));
  return Status::Ok();
}

void RequestChannel::Push(StreamEvent e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!e.finish_reason.empty()) --open_choices_;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool RequestChannel::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool RequestChannel::Next(StreamEvent& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || open_choices_ <= 0; });
  if (events_.empty()) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

bool RequestChannel::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.empty() && open_choices_ <= 0;
}

void RequestChannel::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

}  // namespace lms::serve
