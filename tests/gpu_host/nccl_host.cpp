// NCCL's point-to-point calls on the host runtime's streams (host_streams.h), so that the NCCL
// transport and training over it run where no GPU is present. What it models:
//  - Communicators: ncclCommInitAll within a process; ncclCommInitRank joins a rank by unique id
//    (ranks are threads of this process here) and blocks until every rank has joined. A device
//    holds at most one rank of a communicator, as NCCL requires.
//  - Sends and receives: the k-th send from rank a to rank b matches the k-th receive at b from a.
//    A call outside a group is one piece of work on its stream; the calls between ncclGroupStart
//    and ncclGroupEnd become one piece per stream. A piece moves its data once the matching
//    side's stream has reached its own piece, in the stream model's order. So a send and a receive
//    of one stream outside a group, or two ranks that each send before they receive outside a
//    group, deadlock as they do on GPUs: found and aborted with a message.
//  - Buffers must be device memory of the communicator's device, the stream must be of that
//    device, and the two sides must agree on the size.
//  - ncclCommAbort (from any thread) ends that rank's work waiting for a peer; a peer waiting for
//    an aborted rank waits on (NCCL does), so every rank must be aborted. Later calls fail.
//  - Non-blocking communicators (ncclConfig_t.blocking = 0): initialization, an ungrouped call
//    and ncclGroupEnd return ncclInProgress, and their work reaches the streams only once
//    ncclCommGetAsyncError is polled (which reports ncclInProgress once more, then the outcome);
//    a call on a communicator still in progress is refused, as NCCL requires the caller to wait.
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host_streams.h"

namespace {

struct Clique;

// One stream's share of a group (or one ungrouped call): its queue and number once queued.
struct Piece {
  HostQueueRef queue;
  uint64_t seq = 0;
  bool queued = false;
};

// A send matched (or still to be matched) with its receive.
struct Transfer {
  const void* src = nullptr;
  void* dst = nullptr;
  size_t send_bytes = 0, recv_bytes = 0;
  std::shared_ptr<Piece> send_piece, recv_piece;  // null until that side is issued
  int from = 0, to = 0;
  bool done = false;
};

struct Clique {
  int nranks = 0;
  std::vector<int> device_of;  // per rank; -1 until it joins
  int joined = 0;
  std::vector<bool> aborted;  // per rank, by ncclCommAbort
  // Issued sides still waiting for their match, per (from, to), in issue order.
  std::map<std::pair<int, int>, std::vector<std::shared_ptr<Transfer>>> sends, recvs;
};

struct Part {
  bool send;
  std::shared_ptr<Transfer> t;
  cudaStream_t stream;
  std::shared_ptr<Clique> clique;
  int rank;  // the issuing rank
  HostNcclComm* comm;
};

// A non-blocking group's work, queued at the first poll of any of its communicators.
struct Launch {
  std::vector<Part> parts;
  bool queued = false;
};

}  // namespace

struct HostNcclComm {
  std::shared_ptr<Clique> clique;
  int rank = 0;
  int device = 0;
  bool blocking = true;
  // Non-blocking: a call returned ncclInProgress; polls still to report it, and its work.
  int pending_polls = 0;
  std::shared_ptr<Launch> launch;
};

namespace {

thread_local int g_group_depth = 0;
thread_local std::vector<Part> g_group;
thread_local std::vector<HostNcclComm*> g_group_inits;  // communicators joined in the group
auto& g_pending_ids = *new std::map<std::string, std::shared_ptr<Clique>>();
uint64_t g_next_id = 0;

// Runs one side of a transfer, from within its piece.
void RunPart(const Part& p, const Piece* mine) {
  Transfer& t = *p.t;
  for (;;) {
    if (t.done || p.clique->aborted[static_cast<size_t>(p.rank)]) return;
    const std::shared_ptr<Piece>& other = p.send ? t.recv_piece : t.send_piece;
    if (other && other.get() != mine && other->queued) {
      HostRunUntil(*other->queue, other->seq - 1);  // the peer's stream reaches its piece
      if (t.done || p.clique->aborted[static_cast<size_t>(p.rank)]) return;
    } else if (other.get() != mine) {
      char what[128];
      std::snprintf(what, sizeof what, "an NCCL %s waits for rank %d to issue the matching %s", p.send ? "send" : "receive",
                    p.send ? t.to : t.from, p.send ? "receive" : "send");
      HostWaitForWork(what);
      continue;
    }
    if (t.send_bytes != t.recv_bytes) {
      std::fprintf(stderr, "cuda_host: NCCL: rank %d sends %zu bytes to rank %d, which receives %zu\n", t.from,
                   t.send_bytes, t.to, t.recv_bytes);
      std::abort();
    }
    std::memmove(t.dst, t.src, t.send_bytes);
    t.done = true;
    return;
  }
}

// Queues the parts of a group, one piece per stream, in the order the streams first appear.
void Flush(std::vector<Part> parts) {
  std::vector<std::pair<cudaStream_t, std::vector<Part>>> by_stream;
  for (Part& p : parts) {
    auto it = std::find_if(by_stream.begin(), by_stream.end(), [&](const auto& e) { return e.first == p.stream; });
    if (it == by_stream.end()) {
      by_stream.emplace_back(p.stream, std::vector<Part>{});
      it = by_stream.end() - 1;
    }
    it->second.push_back(std::move(p));
  }
  for (auto& [stream, mine] : by_stream) {
    auto piece = std::make_shared<Piece>();
    for (const Part& p : mine) (p.send ? p.t->send_piece : p.t->recv_piece) = piece;
    piece->queue = HostQueueOf(stream);
    HostEnqueue(
        piece->queue,
        [mine, raw = piece.get()] {
          for (const Part& p : mine) RunPart(p, raw);
        },
        [&piece](uint64_t seq) {
          piece->seq = seq;
          piece->queued = true;
        });
  }
  HostNotifyWork();
}

bool Alive(ncclComm_t c) { return c != nullptr && !c->clique->aborted[static_cast<size_t>(c->rank)]; }

bool InProgress(const HostNcclComm& c) {
  return c.pending_polls > 0 || c.launch != nullptr || c.clique->joined < c.clique->nranks;
}

ncclResult_t EndGroup(std::vector<Part> parts);

ncclResult_t Issue(bool send, void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t s) {
  if (!Alive(comm)) return ncclInvalidUsage;
  if (InProgress(*comm)) {
    std::fprintf(stderr, "cuda_host: NCCL: a call on rank %d's communicator while its last call is still in progress "
                 "(poll ncclCommGetAsyncError until it is not)\n", comm->rank);
    return ncclInvalidUsage;
  }
  if (peer < 0 || peer >= comm->clique->nranks) return ncclInvalidArgument;
  const size_t width = type == ncclFloat32 ? 4 : (type == ncclFloat16 || type == ncclBfloat16) ? 2 : 0;
  if (width == 0) return ncclInvalidArgument;
  const int stream_device = s ? s->device : g_host_device;
  if (stream_device != comm->device) {
    std::fprintf(stderr, "cuda_host: NCCL: a stream of device %d used with the communicator of device %d\n",
                 stream_device, comm->device);
    return ncclInvalidUsage;
  }
  const size_t bytes = count * width;
  if (bytes > 0 && !HostIsDeviceMemory(buf, bytes, send ? "ncclSend" : "ncclRecv")) return ncclInvalidArgument;
  if (bytes > 0) HostCheckKernelPointer(send ? "ncclSend" : "ncclRecv", buf, comm->device);
  const std::pair<int, int> key = send ? std::make_pair(comm->rank, peer) : std::make_pair(peer, comm->rank);
  auto& waiting_other = send ? comm->clique->recvs[key] : comm->clique->sends[key];
  std::shared_ptr<Transfer> t;
  if (!waiting_other.empty()) {
    t = waiting_other.front();
    waiting_other.erase(waiting_other.begin());
  } else {
    t = std::make_shared<Transfer>();
    t->from = key.first;
    t->to = key.second;
    (send ? comm->clique->sends[key] : comm->clique->recvs[key]).push_back(t);
  }
  (send ? t->send_bytes : t->recv_bytes) = bytes;
  if (send) {
    t->src = buf;
  } else {
    t->dst = buf;
  }
  g_group.push_back(Part{send, t, s, comm->clique, comm->rank, comm});
  if (g_group_depth > 0) return ncclSuccess;
  std::vector<Part> parts = std::move(g_group);
  g_group.clear();
  return EndGroup(std::move(parts));
}

// The end of the outermost group (or an ungrouped call): blocking communicators' work is queued
// now; non-blocking ones' when polled.
ncclResult_t EndGroup(std::vector<Part> parts) {
  std::vector<HostNcclComm*> comms;
  for (const Part& p : parts) {
    if (std::find(comms.begin(), comms.end(), p.comm) == comms.end()) comms.push_back(p.comm);
  }
  const bool blocking = std::all_of(comms.begin(), comms.end(), [](const HostNcclComm* c) { return c->blocking; });
  if (!blocking && !std::none_of(comms.begin(), comms.end(), [](const HostNcclComm* c) { return c->blocking; })) {
    std::fprintf(stderr, "cuda_host: NCCL: a group mixes blocking and non-blocking communicators\n");
    return ncclInvalidUsage;
  }
  if (blocking) {
    Flush(std::move(parts));
    return ncclSuccess;
  }
  auto launch = std::make_shared<Launch>();
  launch->parts = std::move(parts);
  for (HostNcclComm* c : comms) {
    c->launch = launch;
    c->pending_polls = 1;
  }
  return ncclInProgress;
}

}  // namespace

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
  }
  return "unknown result code";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  std::memset(id->internal, 0, sizeof id->internal);
  std::snprintf(id->internal, sizeof id->internal, "lms-host-nccl-%llu", static_cast<unsigned long long>(++g_next_id));
  return ncclSuccess;
}

ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int* devlist) {
  if (comms == nullptr || ndev < 1) return ncclInvalidArgument;
  int count = 0;
  cudaGetDeviceCount(&count);
  auto clique = std::make_shared<Clique>();
  clique->nranks = clique->joined = ndev;
  clique->aborted.assign(static_cast<size_t>(ndev), false);
  for (int r = 0; r < ndev; ++r) {
    const int d = devlist ? devlist[r] : r;
    if (d < 0 || d >= count) return ncclInvalidArgument;
    for (int e : clique->device_of) {
      if (e == d) return ncclInvalidUsage;  // "Duplicate GPU detected"
    }
    clique->device_of.push_back(d);
  }
  for (int r = 0; r < ndev; ++r) {
    comms[r] = new HostNcclComm{clique, r, clique->device_of[static_cast<size_t>(r)], true, 0, nullptr};
  }
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank, ncclConfig_t* config) {
  if (comm == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (config != nullptr && (config->size != sizeof(ncclConfig_t) || config->magic != 0xcafebeef)) {
    return ncclInvalidArgument;  // not from NCCL_CONFIG_INITIALIZER
  }
  const bool blocking = config == nullptr || config->blocking != 0;
  const std::string key(id.internal, strnlen(id.internal, sizeof id.internal));
  if (key.rfind("lms-host-nccl-", 0) != 0) return ncclInvalidArgument;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  std::shared_ptr<Clique>& slot = g_pending_ids[key];
  if (!slot) {
    slot = std::make_shared<Clique>();
    slot->nranks = nranks;
    slot->device_of.assign(static_cast<size_t>(nranks), -1);
    slot->aborted.assign(static_cast<size_t>(nranks), false);
  }
  const std::shared_ptr<Clique> clique = slot;
  if (clique->nranks != nranks || clique->device_of[static_cast<size_t>(rank)] != -1) return ncclInvalidUsage;
  for (int d : clique->device_of) {
    if (d == g_host_device) return ncclInvalidUsage;  // "Duplicate GPU detected"
  }
  clique->device_of[static_cast<size_t>(rank)] = g_host_device;
  if (++clique->joined == clique->nranks) g_pending_ids.erase(key);
  HostNotifyWork();
  *comm = new HostNcclComm{clique, rank, g_host_device, blocking, 0, nullptr};
  if (!blocking) (*comm)->pending_polls = 1;
  if (g_group_depth > 0) {
    g_group_inits.push_back(*comm);  // ncclGroupEnd waits for the others (blocking) or reports progress
    return ncclSuccess;
  }
  if (!blocking) return ncclInProgress;
  while (clique->joined < clique->nranks) HostWaitForWork("ncclCommInitRank waits for the other ranks to join");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  return ncclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (comm == nullptr || async_error == nullptr) return ncclInvalidArgument;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  *async_error = ncclSuccess;
  if (comm->launch) {
    if (!comm->launch->queued) {
      comm->launch->queued = true;
      Flush(comm->launch->parts);
    }
    comm->launch = nullptr;
  }
  if (comm->pending_polls > 0) {
    --comm->pending_polls;
    *async_error = ncclInProgress;
  } else if (comm->clique->joined < comm->clique->nranks) {
    *async_error = ncclInProgress;
  }
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  if (InProgress(*comm)) return ncclInvalidUsage;
  if (comm->blocking) return ncclSuccess;
  comm->pending_polls = 1;
  return ncclInProgress;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  if (InProgress(*comm)) {
    std::fprintf(stderr, "cuda_host: NCCL: rank %d's communicator destroyed while a call is still in progress\n",
                 comm->rank);
    std::abort();
  }
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  comm->clique->aborted[static_cast<size_t>(comm->rank)] = true;  // this rank's waiting work ends
  HostNotifyWork();
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return ncclInvalidUsage;
  if (--g_group_depth > 0) return ncclSuccess;
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  std::vector<Part> parts = std::move(g_group);
  g_group.clear();
  std::vector<HostNcclComm*> inits = std::move(g_group_inits);
  g_group_inits.clear();
  bool in_progress = false;
  for (HostNcclComm* c : inits) {
    if (!c->blocking) {
      in_progress = true;
      continue;
    }
    while (c->clique->joined < c->clique->nranks) HostWaitForWork("ncclGroupEnd waits for the other ranks to join");
  }
  const ncclResult_t r = parts.empty() ? ncclSuccess : EndGroup(std::move(parts));
  return r == ncclSuccess && in_progress ? ncclInProgress : r;
}

ncclResult_t ncclSend(const void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  return Issue(true, const_cast<void*>(buf), count, type, peer, comm, s);
}

ncclResult_t ncclRecv(void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(HostWorkMutex());
  return Issue(false, buf, count, type, peer, comm, s);
}
