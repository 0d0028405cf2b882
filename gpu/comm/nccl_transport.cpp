#include "gpu/comm/nccl_transport.h"

#include <fmt/format.h>

#include "gpu/cuda_check.h"
#include "gpu/train/cuda_train_engine.h"

namespace lms::gpu {

Result<std::unique_ptr<NcclPipelineTransport>> NcclPipelineTransport::Create(const std::vector<int>& gpu_of_stage) {
  std::unique_ptr<NcclPipelineTransport> t(new NcclPipelineTransport());
  LMS_ASSIGN_OR_RETURN(t->group_, NcclGroup::Create(gpu_of_stage));  // refuses a GPU named twice
  t->gpus_ = gpu_of_stage;
  for (int gpu : gpu_of_stage) {
    LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(gpu));
    cudaEvent_t a = nullptr, b = nullptr;
    LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&a, cudaEventDisableTiming));
    LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&b, cudaEventDisableTiming));
    t->before_.push_back(a);
    t->after_.push_back(b);
  }
  return t;
}

Result<std::unique_ptr<NcclPipelineTransport>> NcclPipelineTransport::Join(net::RankGroup& ranks, int device) {
  std::vector<uint8_t> id;
  if (ranks.rank() == 0) {
    LMS_ASSIGN_OR_RETURN(id, NcclGroup::NewUniqueId());
  }
  LMS_RETURN_IF_ERROR(ranks.Broadcast(id, 0));
  std::unique_ptr<NcclPipelineTransport> t(new NcclPipelineTransport());
  LMS_ASSIGN_OR_RETURN(t->group_, NcclGroup::JoinRank(id, ranks.world(), ranks.rank(), device));
  const size_t me = static_cast<size_t>(ranks.rank());
  t->gpus_.assign(static_cast<size_t>(ranks.world()), -1);
  t->before_.assign(t->gpus_.size(), nullptr);
  t->after_.assign(t->gpus_.size(), nullptr);
  t->gpus_[me] = device;
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&t->before_[me], cudaEventDisableTiming));
  LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&t->after_[me], cudaEventDisableTiming));
  t->ranks_ = &ranks;
  NcclPipelineTransport* self = t.get();
  ranks.SetOnBroken([self] { self->Abort(); });
  return t;
}

NcclPipelineTransport::~NcclPipelineTransport() {
  if (ranks_) ranks_->SetOnBroken(nullptr);
  for (size_t s = 0; s < gpus_.size(); ++s) {
    if (gpus_[s] < 0) continue;
    cudaSetDevice(gpus_[s]);
    if (s < before_.size() && before_[s]) cudaEventDestroy(before_[s]);
    if (s < after_.size() && after_[s]) cudaEventDestroy(after_[s]);
  }
}

template <typename F>
Status NcclPipelineTransport::Bracketed(int stage, cudaStream_t stream, F issue) {
  if (aborted_.load()) return Status::Cancelled("the pipeline step was aborted");
  if (stage < 0 || stage >= static_cast<int>(gpus_.size()) || gpus_[static_cast<size_t>(stage)] < 0) {
    return Status::InvalidArgument(fmt::format("NCCL transport: no stage {} in this process", stage));
  }
  const size_t s = static_cast<size_t>(stage);
  cudaStream_t nccl = group_->stream(stage);
  // NCCL's stream starts once the stage's work so far (what a send reads) is done...
  LMS_CUDA_RETURN_IF_ERROR(cudaEventRecord(before_[s], stream));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(nccl, before_[s], 0));
  LMS_RETURN_IF_ERROR(group_->GroupStart());
  Status st = issue();
  const Status end = group_->GroupEnd();
  if (st.ok()) st = end;
  LMS_RETURN_IF_ERROR(st);
  // ...and the stage's next work (what reads a receive, or overwrites a sent buffer) waits for it.
  LMS_CUDA_RETURN_IF_ERROR(cudaEventRecord(after_[s], nccl));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream, after_[s], 0));
  return Status::Ok();
}

Status NcclPipelineTransport::Send(int src, int dst, lms::train::MessageKind, int, const float* buf, size_t n,
                                   cudaStream_t stream) {
  return Bracketed(src, stream, [&] { return group_->Send(src, dst, buf, n); });
}

Status NcclPipelineTransport::Recv(int dst, int src, lms::train::MessageKind, int, float* buf, size_t n,
                                   cudaStream_t stream) {
  return Bracketed(dst, stream, [&] { return group_->Recv(dst, src, buf, n); });
}

Status NcclPipelineTransport::SendRecv(int self, const Message& send, const Message& recv, cudaStream_t stream) {
  return Bracketed(self, stream, [&]() -> Status {
    LMS_RETURN_IF_ERROR(group_->Send(self, send.peer, send.buf, send.n));
    return group_->Recv(self, recv.peer, recv.buf, recv.n);
  });
}

void NcclPipelineTransport::Abort() {
  if (aborted_.exchange(true)) return;
  group_->Abort();
  if (ranks_) ranks_->Abort();  // the other processes stop too
}

void UseNcclForTraining(bool on) {
  if (!on) {
    train::SetMultiGpuTransport(nullptr);
    train::SetRankTransport(nullptr);
    return;
  }
  train::SetMultiGpuTransport([](const std::vector<int>& gpus) -> Result<std::unique_ptr<DeviceTransport>> {
    LMS_ASSIGN_OR_RETURN(auto t, NcclPipelineTransport::Create(gpus));
    return std::unique_ptr<DeviceTransport>(std::move(t));
  });
  train::SetRankTransport([](net::RankGroup& ranks, int gpu) -> Result<std::unique_ptr<DeviceTransport>> {
    LMS_ASSIGN_OR_RETURN(auto t, NcclPipelineTransport::Join(ranks, gpu));
    return std::unique_ptr<DeviceTransport>(std::move(t));
  });
}

}  // namespace lms::gpu
