#include "gpu/comm/nccl_group.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "gpu/cuda_check.h"

namespace lms::gpu {

Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::Ok();
  return Status::Internal(fmt::format("NCCL error in {}: {}", what, ncclGetErrorString(r)));
}

#define LMS_NCCL_RETURN_IF_ERROR(expr) LMS_RETURN_IF_ERROR(::lms::gpu::NcclStatus((expr), #expr))

namespace {

// This thread's open NcclGroup group: its depth and the local communicators used in it.
thread_local int t_depth = 0;
thread_local std::vector<size_t> t_touched;

// Every communicator here is non-blocking.
ncclConfig_t NonBlocking() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}
// A non-blocking call's result: started (maybe still in progress), or an error.
bool Started(ncclResult_t r) { return r == ncclSuccess || r == ncclInProgress; }

// Waits for what a non-blocking call on c started; for teardown, where nothing else may interrupt.
ncclResult_t WaitQuiet(ncclComm_t c) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c, &state);
    if (r != ncclSuccess) return r;
    if (state != ncclInProgress) return state;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace

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
  // ncclCommInitAll's work, with non-blocking communicators: every rank in one group.
  ncclUniqueId id;
  LMS_NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  ncclConfig_t config = NonBlocking();
  Status failed;
  LMS_NCCL_RETURN_IF_ERROR(ncclGroupStart());
  for (size_t r = 0; r < devices.size() && failed.ok(); ++r) {
    failed = CudaStatus(cudaSetDevice(devices[r]), "cudaSetDevice");
    if (!failed.ok()) break;
    const ncclResult_t x =
        ncclCommInitRankConfig(&g->comms_[r], g->world_, id, static_cast<int>(r), &config);
    if (!Started(x)) failed = NcclStatus(x, "ncclCommInitRankConfig");
  }
  const ncclResult_t end = ncclGroupEnd();
  if (failed.ok() && !Started(end)) failed = NcclStatus(end, "ncclGroupEnd");
  for (int d : devices) {
    if (!failed.ok()) break;
    failed = CudaStatus(cudaSetDevice(d), "cudaSetDevice");
    cudaStream_t s = nullptr;
    if (failed.ok()) failed = CudaStatus(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    if (failed.ok()) g->streams_.push_back(s);
  }
  std::vector<size_t> all(devices.size());
  for (size_t r = 0; r < all.size(); ++r) all[r] = r;
  if (failed.ok()) failed = g->Settle(all, "NCCL initialization");
  if (!failed.ok()) {
    g->Abort();  // frees whatever communicators were made
    return failed;
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
  ncclConfig_t config = NonBlocking();
  const ncclResult_t r = ncclCommInitRankConfig(&g->comms_[0], world, id, rank, &config);
  Status failed = Started(r) ? Status::Ok() : NcclStatus(r, "ncclCommInitRankConfig");
  cudaStream_t s = nullptr;
  if (failed.ok()) failed = CudaStatus(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  if (failed.ok()) g->streams_.push_back(s);
  if (failed.ok()) failed = g->Settle({0}, "NCCL initialization");  // every rank has joined
  if (!failed.ok()) {
    g->Abort();
    return failed;
  }
  return g;
}

NcclGroup::~NcclGroup() {
  for (size_t r = 0; r < streams_.size(); ++r) {
    cudaSetDevice(devices_[r]);
    if (!aborted_) cudaStreamSynchronize(streams_[r]);
    cudaStreamDestroy(streams_[r]);
  }
  if (aborted_) return;
  // Across processes, finalizing waits for the peers and would hang when one has already gone;
  // aborting frees this rank's resources alone (its work is done by now).
  const bool spans_processes = world_ > static_cast<int>(ranks_.size());
  if (spans_processes) {
    for (ncclComm_t c : comms_) {
      if (c) ncclCommAbort(c);
    }
    return;
  }
  // Non-blocking communicators are finalized (all of them, in one group, as one thread drives
  // them), waited for, then freed; one that fails to finalize is aborted instead.
  std::vector<bool> finalized(comms_.size(), false);
  ncclGroupStart();
  for (size_t i = 0; i < comms_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    finalized[i] = comms_[i] && Started(ncclCommFinalize(comms_[i]));
  }
  ncclGroupEnd();
  for (size_t i = 0; i < comms_.size(); ++i) {
    if (!comms_[i]) continue;
    cudaSetDevice(devices_[i]);
    if (finalized[i] && WaitQuiet(comms_[i]) == ncclSuccess) {
      ncclCommDestroy(comms_[i]);
    } else {
      ncclCommAbort(comms_[i]);
    }
  }
}

cudaStream_t NcclGroup::stream(int rank) const {
  for (size_t i = 0; i < ranks_.size(); ++i)
    if (ranks_[i] == rank) return streams_[i];
  return nullptr;
}

void NcclGroup::Abort() {
  std::lock_guard<std::recursive_mutex> lock(mu_);  // no NCCL call is in flight here meanwhile
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

Status NcclGroup::Settle(const std::vector<size_t>& locals, const char* what) {
  for (int polls = 0;; ++polls) {
    bool pending = false;
    {
      std::lock_guard<std::recursive_mutex> lock(mu_);
      if (aborted_) return Status::Cancelled(fmt::format("{}: the NCCL group was aborted", what));
      for (size_t i : locals) {
        ncclResult_t state = ncclSuccess;
        LMS_NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comms_[i], &state));
        if (state == ncclInProgress) {
          pending = true;
        } else if (state != ncclSuccess) {
          return NcclStatus(state, what);
        }
      }
    }
    if (!pending) return Status::Ok();
    if (polls < 100) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

Status NcclGroup::Issued(size_t i, const char* what) {
  if (t_depth > 0) {
    if (std::find(t_touched.begin(), t_touched.end(), i) == t_touched.end()) t_touched.push_back(i);
    return Status::Ok();
  }
  return Settle({i}, what);
}

Status NcclGroup::Send(int from, int to, const float* buf, size_t n) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(from, "NCCL send"));
  LMS_RETURN_IF_ERROR(CheckPeer(to, "NCCL send"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (aborted_) return Status::Cancelled("NCCL send: the NCCL group was aborted");
    const ncclResult_t r = ncclSend(buf, n, ncclFloat32, to, comms_[i], streams_[i]);
    if (!Started(r)) return NcclStatus(r, "ncclSend");
  }
  return Issued(i, "NCCL send");
}

Status NcclGroup::Recv(int at, int from_peer, float* buf, size_t n) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(at, "NCCL receive"));
  LMS_RETURN_IF_ERROR(CheckPeer(from_peer, "NCCL receive"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (aborted_) return Status::Cancelled("NCCL receive: the NCCL group was aborted");
    const ncclResult_t r = ncclRecv(buf, n, ncclFloat32, from_peer, comms_[i], streams_[i]);
    if (!Started(r)) return NcclStatus(r, "ncclRecv");
  }
  return Issued(i, "NCCL receive");
}

// The lock is held from here to GroupEnd, so an Abort never falls inside an open group.
Status NcclGroup::GroupStart() {
  mu_.lock();
  const ncclResult_t r = ncclGroupStart();
  if (r != ncclSuccess) {
    mu_.unlock();
    return NcclStatus(r, "ncclGroupStart");
  }
  if (t_depth++ == 0) t_touched.clear();
  return Status::Ok();
}

Status NcclGroup::GroupEnd() {
  const ncclResult_t r = ncclGroupEnd();
  const bool outermost = --t_depth == 0;
  std::vector<size_t> touched;
  if (outermost) touched.swap(t_touched);
  mu_.unlock();
  if (!Started(r)) return NcclStatus(r, "ncclGroupEnd");
  return outermost ? Settle(touched, "ncclGroupEnd") : Status::Ok();
}

Status NcclGroup::Synchronize(int rank) {
  LMS_ASSIGN_OR_RETURN(size_t i, Local(rank, "NCCL synchronize"));
  LMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices_[i]));
  LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(streams_[i]));
  return Status::Ok();
}

}  // namespace lms::gpu
