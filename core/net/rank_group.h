// A group of processes ("ranks") training one model together, possibly on several machines,
// connected by TCP: one connection between every pair.
//
// Joining: rank 0 listens at the rendezvous address; every other rank connects to it, says
// which rank it is and on which port it listens itself, and gets back everyone's address; then
// each rank connects to the ranks below it (rank 0 excepted: that connection exists already).
// Messages are tagged byte strings. A reader thread per connection files them by (sender, tag),
// so Recv can wait for one message while others arrive. A connection that breaks (a rank died)
// wakes whoever waits on that rank with an error; Abort closes every connection, which is how a
// failing rank makes the others stop instead of waiting forever.
//
// Collectives gather at rank 0, which adds the contributions in rank order and sends the result
// back, so every rank gets the same bits. They must be called in the same order on every rank.
//
// Thread-safety: Send, Recv and Abort from any thread; collectives from one thread at a time.
// Assumes every rank runs on a little-endian machine (x86-64, arm64).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/util/status.h"

namespace lms::net {

struct RankGroupOptions {
  int world = 1;                   // ranks in the group
  int rank = 0;                    // this process's rank, 0..world-1
  std::string host = "127.0.0.1";  // where rank 0 listens (rank 0 binds it; others connect)
  int port = 29500;                // rank 0's port; 0 on rank 0: any free port (see on_listen)
  double timeout_s = 300;          // for every rank to join
  // Rank 0: called with the port it listens on, before it waits for the others (tests).
  std::function<void(int port)> on_listen;
};

class RankGroup {
 public:
  // Blocks until all `world` ranks have joined (or the timeout).
  static Result<std::unique_ptr<RankGroup>> Join(const RankGroupOptions& o);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Tags below 2^63 (the upper half is the collectives'). A rank may send to itself.
  Status Send(int to, uint64_t tag, const void* data, size_t bytes);
  // The oldest message from `from` with `tag`; Cancelled after Abort, IoError when that rank's
  // connection broke first.
  Result<std::vector<uint8_t>> Recv(int from, uint64_t tag);
  Status SendFloats(int to, uint64_t tag, const float* data, size_t n) { return Send(to, tag, data, n * sizeof(float)); }
  // Receives exactly n floats into data.
  Status RecvFloats(int from, uint64_t tag, float* data, size_t n);

  // Element-wise sums over all ranks, in place.
  Status AllReduceSum(double* v, size_t n);
  Status AllReduceSum(float* v, size_t n);
  // Rank `root`'s bytes to every rank.
  Status Broadcast(std::vector<uint8_t>& bytes, int root);
  Status Barrier();

  // Closes every connection: this rank's waiters get Cancelled, the other ranks see it gone.
  // The group cannot be used afterwards.
  void Abort();
  // Called once, from a reader thread or Abort's caller, when the group breaks (a rank's
  // connection closed, or Abort): how a transport that waits elsewhere (NCCL on a GPU stream)
  // learns that a peer is gone and tears itself down. Null: nothing to call. Replacing the hook
  // waits until a call of the old one in progress has returned, so its owner may then go away.
  void SetOnBroken(std::function<void()> f);

 private:
  RankGroup() = default;
  template <typename T>
  Status AllReduce(T* v, size_t n);
  void StartReaders();
  void ReadLoop(int peer);
  void Deliver(int from, uint64_t tag, std::vector<uint8_t> bytes);

  int world_ = 1, rank_ = 0;
  std::vector<int> fds_;                      // by rank; -1 for self
  std::vector<std::unique_ptr<std::mutex>> write_mu_;
  std::vector<std::thread> readers_;
  uint64_t collective_seq_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<int, uint64_t>, std::deque<std::vector<uint8_t>>> mailbox_;  // GUARDED_BY(mu_)
  std::vector<std::string> broken_;                                              // GUARDED_BY(mu_), by rank
  bool aborted_ = false;                                                         // GUARDED_BY(mu_)
  std::function<void()> on_broken_;                                              // GUARDED_BY(mu_)
  bool broke_ = false;                                                           // GUARDED_BY(mu_): on_broken_ called
  bool in_hook_ = false;                                                         // GUARDED_BY(mu_): on_broken_ running
  std::thread::id hook_thread_;                                                  // GUARDED_BY(mu_): the thread running it
  void Broke();  // calls on_broken_ once (outside mu_)
};

// What a launcher says about this process: OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE, _RANK,
// _LOCAL_RANK), an MPICH/Hydra or PMI launcher (PMI_SIZE, PMI_RANK, MPI_LOCALRANKID) or Slurm's
// srun (SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID), first found in that order; world 1 and rank 0
// when none is there. local_rank is -1 when the launcher does not say.
struct LauncherInfo {
  int world = 1, rank = 0, local_rank = -1;
  std::string launcher;  // "mpirun", "pmi", "slurm" or empty
};
LauncherInfo FromLauncherEnvironment();

// "host:port" → (host, port); "[v6]:port" too.
Result<std::pair<std::string, int>> ParseHostPort(const std::string& text);

}  // namespace lms::net
