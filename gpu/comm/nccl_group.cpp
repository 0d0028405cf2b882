#include "gpu/comm/nccl_group.h"

#include <fmt/format.h>

#include <algorithm>

#include "gpu/cuda_check.h"

namespace lms::gpu {

Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::Ok();
  return Status::Internal(fmt::format("NCCL error in {}: {}", what, ncclGetErrorString(r)));
}

#define LMS_NCCL_RETURN_IF_ERROR(expr) LMS_RETURN_IF_ERROR(::lms::gpu::NcclStatus((expr), #expr))

Result<std::unique_ptr<NcclGroup>> NcclGroup::Create(const std::vector<int>& devices) {
  if (devices.empty()) return Status::InvalidArgument("an NCCL group needs at least one GPU");
  int count = 0;
  LMS_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  std::vector<int> seen;
  for (int d : devices) {
    if (d < 0 || d >= count) return Status::InvalidArgument(fmt::format("no CUDA device {} ({} present)", d, count));
    if (std::find(seen.begin(), seen.end(), d) != seen.end()) {
      return Status::InvalidArgument(fmt::format("CUDA device {} given twice: NCCL puts one rank on a GPU; stages "
                                                 "sharing a GPU use the in-process transport", d));
    }
    seen.push_back(d);
  }
  std::unique_ptr<NcclGroup> g(new NcclGroup());
  g->devices_ = devices;
  g->comms_.assign(devices.size(), nullptr);
  LMS_NCCL_RETURN_IF_ERROR(ncclCommInitAll(g->comms_.data(), static_cast<int>(devices.size()), devices.data()));
  for (int d : devices) {
    LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(d));
    cudaStream_t s = nullptr;
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    g->streams_.push_back(s);
  }
  return g;
}

NcclGroup::~NcclGroup() {
  for (size_t r = 0; r < streams_.size(); ++r) {
    cudaSetDevice(devices_[r]);
    cudaStreamSynchronize(streams_[r]);
    cudaStreamDestroy(streams_[r]);
  }
  for (ncclComm_t c : comms_) {
    if (c) ncclCommDestroy(c);
  }
}

Status NcclGroup::CheckRank(int r, const char* what) const {
  if (r < 0 || r >= size()) return Status::InvalidArgument(fmt::format("{}: rank {} outside 0..{}", what, r, size() - 1));
  return Status::Ok();
}

Status NcclGroup::Send(int from, int to, const float* buf, size_t n) {
  LMS_RETURN_IF_ERROR(CheckRank(from, "NCCL send"));
  LMS_RETURN_IF_ERROR(CheckRank(to, "NCCL send"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[from]));
  LMS_NCCL_RETURN_IF_ERROR(ncclSend(buf, n, ncclFloat32, to, comms_[from], streams_[from]));
  return Status::Ok();
}

Status NcclGroup::Recv(int at, int from_peer, float* buf, size_t n) {
  LMS_RETURN_IF_ERROR(CheckRank(at, "NCCL receive"));
  LMS_RETURN_IF_ERROR(CheckRank(from_peer, "NCCL receive"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[at]));
  LMS_NCCL_RETURN_IF_ERROR(ncclRecv(buf, n, ncclFloat32, from_peer, comms_[at], streams_[at]));
  return Status::Ok();
}

Status NcclGroup::GroupStart() { return NcclStatus(ncclGroupStart(), "ncclGroupStart"); }
Status NcclGroup::GroupEnd() { return NcclStatus(ncclGroupEnd(), "ncclGroupEnd"); }

Status NcclGroup::Synchronize(int rank) {
  LMS_RETURN_IF_ERROR(CheckRank(rank, "NCCL synchronize"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[rank]));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(streams_[rank]));
  return Status::Ok();
}

}  // namespace lms::gpu
