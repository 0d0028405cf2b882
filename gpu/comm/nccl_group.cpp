#include "gpu/comm/nccl_group.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

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
  g->world_ = static_cast<int>(devices.size());
  for (int r = 0; r < g->world_; ++r) g->ranks_.push_back(r);
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

Result<std::vector<uint8_t>> NcclGroup::NewUniqueId() {
  ncclUniqueId id;
  LMS_NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(&id), reinterpret_cast<const uint8_t*>(&id) + sizeof id);
}

Result<std::unique_ptr<NcclGroup>> NcclGroup::JoinRank(const std::vector<uint8_t>& unique_id, int world, int rank,
                                                       int device) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof id) {
    return Status::InvalidArgument(fmt::format("an NCCL unique id has {} bytes, not {}", sizeof id, unique_id.size()));
  }
  if (world < 1 || rank < 0 || rank >= world) {
    return Status::InvalidArgument(fmt::format("rank {} of {}: out of range", rank, world));
  }
  int count = 0;
  LMS_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) return Status::InvalidArgument(fmt::format("no CUDA device {} ({} present)", device, count));
  std::memcpy(&id, unique_id.data(), sizeof id);
  std::unique_ptr<NcclGroup> g(new NcclGroup());
  g->world_ = world;
  g->ranks_ = {rank};
  g->devices_ = {device};
  g->comms_.assign(1, nullptr);
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  LMS_NCCL_RETURN_IF_ERROR(ncclCommInitRank(&g->comms_[0], world, id, rank));
  cudaStream_t s = nullptr;
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  g->streams_.push_back(s);
  return g;
}

NcclGroup::~NcclGroup() {
  for (size_t r = 0; r < streams_.size(); ++r) {
    cudaSetDevice(devices_[r]);
    if (!aborted_) cudaStreamSynchronize(streams_[r]);
    cudaStreamDestroy(streams_[r]);
  }
  if (aborted_) return;
  // Across processes, destroying is collective among a node's ranks and would hang when a peer
  // has already gone; aborting frees this rank's resources alone (its work is done by now).
  const bool spans_processes = world_ > static_cast<int>(ranks_.size());
  for (ncclComm_t c : comms_) {
    if (c) spans_processes ? ncclCommAbort(c) : ncclCommDestroy(c);
  }
}

cudaStream_t NcclGroup::stream(int rank) const {
  for (size_t i = 0; i < ranks_.size(); ++i)
    if (ranks_[i] == rank) return streams_[i];
  return nullptr;
}

void NcclGroup::Abort() {
  if (aborted_.exchange(true)) return;
  for (size_t i = 0; i < comms_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    if (comms_[i]) ncclCommAbort(comms_[i]);
    comms_[i] = nullptr;
  }
}

Status NcclGroup::CheckPeer(int r, const char* what) const {
  if (r < 0 || r >= world_) return Status::InvalidArgument(fmt::format("{}: rank {} outside 0..{}", what, r, world_ - 1));
  return Status::Ok();
}

Result<size_t> NcclGroup::Local(int rank, const char* what) const {
  if (aborted_) return Status::Cancelled(fmt::format("{}: the NCCL group was aborted", what));
  LMS_RETURN_IF_ERROR(CheckPeer(rank, what));
  for (size_t i = 0; i < ranks_.size(); ++i)
    if (ranks_[i] == rank) return i;
  return Status::InvalidArgument(fmt::format("{}: rank {} is driven by another process", what, rank));
}

Status NcclGroup::Send(int from, int to, const float* buf, size_t n) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(from, "NCCL send"));
  LMS_RETURN_IF_ERROR(CheckPeer(to, "NCCL send"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  LMS_NCCL_RETURN_IF_ERROR(ncclSend(buf, n, ncclFloat32, to, comms_[i], streams_[i]));
  return Status::Ok();
}

Status NcclGroup::Recv(int at, int from_peer, float* buf, size_t n) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(at, "NCCL receive"));
  LMS_RETURN_IF_ERROR(CheckPeer(from_peer, "NCCL receive"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  LMS_NCCL_RETURN_IF_ERROR(ncclRecv(buf, n, ncclFloat32, from_peer, comms_[i], streams_[i]));
  return Status::Ok();
}

Status NcclGroup::GroupStart() { return NcclStatus(ncclGroupStart(), "ncclGroupStart"); }
Status NcclGroup::GroupEnd() { return NcclStatus(ncclGroupEnd(), "ncclGroupEnd"); }

Status NcclGroup::Synchronize(int rank) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(rank, "NCCL synchronize"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(streams_[i]));
  return Status::Ok();
}

}  // namespace lms::gpu
