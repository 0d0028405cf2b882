#include "core/train/transport.h"

#include <fmt/format.h>

namespace lms::train {

Status InProcessTransport::Send(int src, int dst, MessageKind kind, int mb, std::vector<float> data) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return Status::Cancelled("transport aborted");
    const Key key{src, dst, static_cast<int>(kind), mb};
    if (mailbox_.count(key)) {
      return Status::Internal(fmt::format("duplicate message {}→{} kind {} micro-batch {}", src, dst,
                                          static_cast<int>(kind), mb));
    }
    bytes_ += static_cast<int64_t>(data.size() * sizeof(float));
    mailbox_.emplace(key, std::move(data));
  }
  cv_.notify_all();
  return Status::Ok();
}

Result<std::vector<float>> InProcessTransport::Recv(int dst, int src, MessageKind kind, int mb) {
  std::unique_lock<std::mutex> lock(mu_);
  const Key key{src, dst, static_cast<int>(kind), mb};
  cv_.wait(lock, [&] { return aborted_ || mailbox_.count(key) > 0; });
  if (aborted_) return Status::Cancelled("transport aborted");
  auto node = mailbox_.extract(key);
  return std::move(node.mapped());
}

void InProcessTransport::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

void InProcessTransport::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = false;
  mailbox_.clear();
}

int64_t InProcessTransport::bytes_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace lms::train
