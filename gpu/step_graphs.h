// Replaying decode steps as CUDA graphs without capturing them again.
//
// A decode step of a given batch size launches the same kernels with the same arguments every
// time: what changes from step to step (token ids, positions, KV slots, block tables) lives in
// device memory that the step's upload rewrites. So while a step runs, the backend records each
// launch as a closure together with the bytes of its arguments (the step's signature) and
// launches nothing. When the step's results are needed, Flush looks the signature up: a graph
// recorded with exactly the same signature is launched as it is (one cudaGraphLaunch instead of
// hundreds of kernel launches). A signature seen for the first time runs its closures directly;
// the second time, they run once under stream capture, and the graph is instantiated, kept under
// that signature and launched. A step whose capture fails runs directly, then and afterwards.
//
// Signatures are compared byte for byte, so a step can only replay a graph whose every launch
// had the same arguments; anything else is a miss and costs one capture.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/util/status.h"
#include "gpu/ops/ops.h"

namespace lms::gpu {

struct CudaGraphStats;  // cuda_backend.h

// The bytes of a launch's arguments, field by field (never a struct's padding).
class ArgBytes {
 public:
  template <class T>
    requires(std::is_arithmetic_v<T> || std::is_pointer_v<T> || std::is_enum_v<T>)
  void Put(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void Put(const DeviceBatch& b);
  void Put(const DeviceMatrix& m);
  void Put(const RopeArgs& a);
  void Put(const AttentionArgs& a);
  void Put(const MatVecSet& s);
  void Put(const KvStoreArgs& a);
  void PutText(const char* s) { bytes_.append(s); bytes_.push_back('\0'); }
  const std::string& bytes() const { return bytes_; }
  void Clear() { bytes_.clear(); }

 private:
  std::string bytes_;
};

class StepGraphs {
 public:
  using Launch = std::function<Status(cudaStream_t)>;

  explicit StepGraphs(CudaGraphStats* stats) : stats_(stats) {}
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Records one launch: `name` and `args` become part of the step's signature.
  void Record(const char* name, const ArgBytes& args, Launch launch);
  bool empty() const { return launches_.empty(); }
  // Runs what was recorded since the last Flush on `stream` (replaying or capturing a graph) and
  // starts a new step. Nothing recorded: nothing to do.
  Status Flush(cudaStream_t stream);
  // Drops the recorded launches without running them (a step that failed on the host).
  void Discard();
  size_t cached() const { return graphs_.size(); }

 private:
  Status Capture(cudaStream_t stream, cudaGraphExec_t* exec);
  Status RunDirect(cudaStream_t stream);  // runs the recorded launches without a graph

  // More distinct steps than this (batch sizes × block-table widths × buffer moves) and the
  // cache starts again: an old graph is only device memory, but it is never used again.
  static constexpr size_t kMaxGraphs = 256;
  CudaGraphStats* stats_;
  std::string signature_;
  std::vector<Launch> launches_;
  std::vector<const char*> names_;
  std::unordered_map<std::string, cudaGraphExec_t> graphs_;
  std::unordered_set<std::string> seen_;          // signatures run once, not yet captured
  std::unordered_set<std::string> uncapturable_;  // signatures whose capture failed
};

}  // namespace lms::gpu
