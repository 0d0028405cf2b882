#include "core/train/rank_transport.h"

#include <fmt/format.h>

#include <cstring>

namespace lms::train {

uint64_t PipelineTag(int src, int dst, MessageKind kind, int microbatch) {
  // 14 bits each for the chunks, 20 for the micro-batch, 1 for the kind: below kEngineTagBase.
  uint64_t t = static_cast<uint64_t>(kind == MessageKind::kGradient);
  t = (t << 20) | static_cast<uint64_t>(microbatch & 0xfffff);
  t = (t << 14) | static_cast<uint64_t>(src & 0x3fff);
  t = (t << 14) | static_cast<uint64_t>(dst & 0x3fff);
  return t;
}

Status SumReportOverRanks(net::RankGroup& group, StepReport& rep) {
  const size_t S = rep.busy_s.size();
  std::vector<double> v = {rep.loss_sum, static_cast<double>(rep.tokens)};
  for (size_t s = 0; s < S; ++s) v.push_back(rep.busy_s[s]);
  for (size_t s = 0; s < S; ++s) v.push_back(rep.peak_in_flight[s]);
  v.push_back(rep.wall_s);
  LMS_RETURN_IF_ERROR(group.AllReduceSum(v.data(), v.size()));
  rep.loss_sum = v[0];
  rep.tokens = static_cast<int64_t>(v[1]);
  for (size_t s = 0; s < S; ++s) rep.busy_s[s] = v[2 + s];
  for (size_t s = 0; s < S; ++s) rep.peak_in_flight[s] = static_cast<int>(v[2 + S + s]);
  rep.wall_s = v[2 + 2 * S] / static_cast<double>(group.world());
  // Every rank's events, in rank order: the counts first, then each rank's in its own slice of
  // a sum (zeros elsewhere). Times are each process's own, from its own start of the step.
  constexpr size_t kFields = 6;
  std::vector<double> counts(static_cast<size_t>(group.world()), 0.0);
  counts[static_cast<size_t>(group.rank())] = static_cast<double>(rep.events.size());
  LMS_RETURN_IF_ERROR(group.AllReduceSum(counts.data(), counts.size()));
  size_t total = 0, mine = 0;
  for (int r = 0; r < group.world(); ++r) {
    if (r == group.rank()) mine = total;
    total += static_cast<size_t>(counts[static_cast<size_t>(r)]);
  }
  std::vector<double> ev(total * kFields, 0.0);
  for (size_t i = 0; i < rep.events.size(); ++i) {
    const TimelineEvent& e = rep.events[i];
    double* f = ev.data() + (mine + i) * kFields;
    f[0] = e.stage;
    f[1] = e.microbatch;
    f[2] = e.forward ? 1.0 : 0.0;
    f[3] = e.start_s;
    f[4] = e.end_s;
    f[5] = e.chunk;
  }
  LMS_RETURN_IF_ERROR(group.AllReduceSum(ev.data(), ev.size()));
  rep.events.clear();
  for (size_t i = 0; i < total; ++i) {
    const double* f = ev.data() + i * kFields;
    rep.events.push_back({static_cast<int>(f[0]), static_cast<int>(f[1]), f[2] != 0.0, f[3], f[4], static_cast<int>(f[5])});
  }
  return Status::Ok();
}

Status RankTransport::Send(int src, int dst, MessageKind kind, int microbatch, std::vector<float> data) {
  bytes_ += static_cast<int64_t>(data.size() * sizeof(float));
  return group_->SendFloats(dst % stages_, PipelineTag(src, dst, kind, microbatch), data.data(), data.size());
}

Result<std::vector<float>> RankTransport::Recv(int dst, int src, MessageKind kind, int microbatch) {
  LMS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, group_->Recv(src % stages_, PipelineTag(src, dst, kind, microbatch)));
  if (bytes.size() % sizeof(float) != 0) {
    return Status::Internal(fmt::format("a pipeline message of {} bytes from chunk {}", bytes.size(), src));
  }
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace lms::train
