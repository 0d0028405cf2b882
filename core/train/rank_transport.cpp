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
