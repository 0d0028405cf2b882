// Where a stream's time goes: GPU time per op, from a pair of CUDA events recorded around the
// work each op enqueues. For profiling runs only (LMS_CUDA_OP_TIMES=1 turns it on where the
// backend or the trainer reads it): every op then records two events, a little host work and
// no synchronisation until Collect. One OpTimes serves one stream, from one thread at a time.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/util/status.h"
#include "gpu/op_time_total.h"

namespace lms::gpu {

// True when the environment asks for op times (LMS_CUDA_OP_TIMES=1).
bool OpTimesRequested();

class OpTimes {
 public:
  OpTimes() = default;
  ~OpTimes();
  OpTimes(const OpTimes&) = delete;
  OpTimes& operator=(const OpTimes&) = delete;

  // The op's work is what `stream` receives between Begin and End.
  Status Begin(cudaStream_t stream);
  Status End(const char* name, cudaStream_t stream);

  using Total = OpTimeTotal;
  // Waits for the ops recorded so far and adds their times to the totals.
  Status Collect();
  // The totals, most time first; Reset forgets them (and anything not yet collected).
  std::vector<Total> Totals() const;
  void Reset();

 private:
  static constexpr size_t kMaxPending = size_t{1} << 16;
  cudaEvent_t Take();
  struct Pending {
    const char* name;
    cudaEvent_t start, end;
  };
  cudaEvent_t open_ = nullptr;  // Begin's event, until End
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> free_;
  std::map<std::string, OpTimeTotal> totals_;
};

// Times the ops between its construction and destruction when `times` is set (a no-op else).
class OpScope {
 public:
  OpScope(OpTimes* times, const char* name, cudaStream_t stream) : times_(times), name_(name), stream_(stream) {
    if (times_) times_->Begin(stream_);
  }
  ~OpScope() {
    if (times_) times_->End(name_, stream_);
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpTimes* times_;
  const char* name_;
  cudaStream_t stream_;
};

}  // namespace lms::gpu
