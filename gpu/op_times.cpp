#include "gpu/op_times.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "gpu/cuda_check.h"

namespace lms::gpu {

bool OpTimesRequested() {
  const char* env = std::getenv("LMS_CUDA_OP_TIMES");
  return env != nullptr && std::string_view(env) == "1";
}

OpTimes::~OpTimes() {
  for (const Pending& p : pending_) {
    cudaEventSynchronize(p.end);
    cudaEventDestroy(p.start);
    cudaEventDestroy(p.end);
  }
  if (open_) cudaEventDestroy(open_);
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
}

cudaEvent_t OpTimes::Take() {
  if (!free_.empty()) {
    cudaEvent_t e = free_.back();
    free_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  if (cudaEventCreate(&e) != cudaSuccess) return nullptr;
  return e;
}

Status OpTimes::Begin(cudaStream_t stream) {
  if (open_) free_.push_back(open_);  // an op that never ended (it failed): drop its start
  open_ = Take();
  if (!open_) return Status::Internal("op times: cannot create a CUDA event");
  return CudaStatus(cudaEventRecord(open_, stream), "cudaEventRecord");
}

Status OpTimes::End(const char* name, cudaStream_t stream) {
  if (!open_) return Status::Ok();
  cudaEvent_t end = Take();
  if (!end) return Status::Internal("op times: cannot create a CUDA event");
  pending_.push_back(Pending{name, open_, end});
  open_ = nullptr;
  LMS_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(end, stream), "cudaEventRecord"));
  // A long run that never collects: fold the pairs into the totals now and then (this waits
  // for the stream) instead of holding events without bound.
  if (pending_.size() >= kMaxPending) return Collect();
  return Status::Ok();
}

Status OpTimes::Collect() {
  Status st = Status::Ok();
  for (const Pending& p : pending_) {
    float ms = 0;
    cudaError_t e = cudaEventSynchronize(p.end);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, p.start, p.end);
    if (e == cudaSuccess) {
      OpTimeTotal& t = totals_[p.name];
      t.name = p.name;
      ++t.calls;
      t.ms += ms;
    } else if (st.ok()) {
      st = CudaStatus(e, "op times");
    }
    free_.push_back(p.start);
    free_.push_back(p.end);
  }
  pending_.clear();
  return st;
}

std::vector<OpTimeTotal> OpTimes::Totals() const {
  std::vector<OpTimeTotal> out;
  for (const auto& [name, t] : totals_) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTimeTotal& a, const OpTimeTotal& b) { return a.ms > b.ms; });
  return out;
}

void OpTimes::Reset() {
  for (const Pending& p : pending_) {
    cudaEventSynchronize(p.end);
    free_.push_back(p.start);
    free_.push_back(p.end);
  }
  pending_.clear();
  totals_.clear();
}

void MergeOpTimes(const std::vector<OpTimeTotal>& other, std::vector<OpTimeTotal>& into) {
  for (const OpTimeTotal& t : other) {
    auto it = std::find_if(into.begin(), into.end(), [&](const OpTimeTotal& x) { return x.name == t.name; });
    if (it == into.end()) {
      into.push_back(t);
    } else {
      it->calls += t.calls;
      it->ms += t.ms;
    }
  }
  std::sort(into.begin(), into.end(), [](const OpTimeTotal& a, const OpTimeTotal& b) { return a.ms > b.ms; });
}

std::string OpTimesTable(const std::vector<OpTimeTotal>& totals) {
  double all = 0;
  for (const OpTimeTotal& t : totals) all += t.ms;
  std::string out = fmt::format("{:<22} {:>8} {:>11} {:>10} {:>7}\n", "op", "calls", "total ms", "ms/call", "share");
  for (const OpTimeTotal& t : totals) {
    out += fmt::format("{:<22} {:>8} {:>11.3f} {:>10.4f} {:>6.1f}%\n", t.name, t.calls, t.ms,
                       t.calls > 0 ? t.ms / static_cast<double>(t.calls) : 0.0, all > 0 ? 100.0 * t.ms / all : 0.0);
  }
  out += fmt::format("{:<22} {:>8} {:>11.3f}\n", "all ops", "", all);
  return out;
}

}  // namespace lms::gpu
