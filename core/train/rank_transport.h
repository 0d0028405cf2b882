// The pipeline's Transport between processes: pipeline device s is rank s of a RankGroup (one
// device per process), and a message goes to the rank of its destination chunk (chunk c runs
// on device c mod S), tagged with its source, destination, kind and micro-batch.
// Abort aborts the whole group: in a multi-process run a failed step ends the run on every
// rank (the others see the connection go and fail too, instead of waiting forever).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/net/rank_group.h"
#include "core/train/pipeline.h"
#include "core/train/transport.h"

namespace lms::train {

// Tags of the engine's own messages between ranks (the tied head's gradient and weights) lie
// above every pipeline message's tag.
inline constexpr uint64_t kEngineTagBase = uint64_t{1} << 62;
// The tag of one pipeline message (chunks below 2^14, micro-batches below 2^20).
uint64_t PipelineTag(int src, int dst, MessageKind kind, int microbatch);

// A multi-process step's report made whole on every rank: the loss and token count (from the
// last stage's rank), each device's busy time and peak (from its rank), the ranks' mean wall
// time, and every rank's timeline events (each timed from its own process's start of the step).
Status SumReportOverRanks(net::RankGroup& group, StepReport& rep);

class RankTransport final : public Transport {
 public:
  RankTransport(net::RankGroup* group, int stages) : group_(group), stages_(stages) {}

  Status Send(int src, int dst, MessageKind kind, int microbatch, std::vector<float> data) override;
  Result<std::vector<float>> Recv(int dst, int src, MessageKind kind, int microbatch) override;
  void Abort() override { group_->Abort(); }
  void Reset() override {}  // an aborted group stays aborted
  int64_t bytes_sent() const override { return bytes_.load(); }

 private:
  net::RankGroup* group_;
  int stages_;
  std::atomic<int64_t> bytes_{0};
};

}  // namespace lms::train
