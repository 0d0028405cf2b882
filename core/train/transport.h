// How pipeline stages exchange activations (forward) and their gradients (backward).
// In-process queues here; an NCCL transport between GPUs implements the same interface.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/util/status.h"

namespace lms::train {

enum class MessageKind : int { kActivation = 0, kGradient = 1 };

// Thread-safety: every method may be called from any stage's thread at once.
class Transport {
 public:
  virtual ~Transport() = default;
  // Delivers `data` from stage src to stage dst, tagged with its kind and micro-batch.
  virtual Status Send(int src, int dst, MessageKind kind, int microbatch, std::vector<float> data) = 0;
  // Blocks until the matching message arrives (or Abort); Cancelled after Abort.
  virtual Result<std::vector<float>> Recv(int dst, int src, MessageKind kind, int microbatch) = 0;
  // Wakes every waiter with Cancelled (a stage failed); Reset() makes it usable again.
  virtual void Abort() = 0;
  virtual void Reset() = 0;
  // Bytes moved since construction (for the timeline report).
  virtual int64_t bytes_sent() const = 0;
};

class InProcessTransport final : public Transport {
 public:
  Status Send(int src, int dst, MessageKind kind, int microbatch, std::vector<float> data) override;
  Result<std::vector<float>> Recv(int dst, int src, MessageKind kind, int microbatch) override;
  void Abort() override;
  void Reset() override;
  int64_t bytes_sent() const override;

 private:
  using Key = std::tuple<int, int, int, int>;  // src, dst, kind, microbatch
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, std::vector<float>> mailbox_;  // GUARDED_BY(mu_)
  bool aborted_ = false;                       // GUARDED_BY(mu_)
  int64_t bytes_ = 0;                          // GUARDED_BY(mu_)
};

}  // namespace lms::train
