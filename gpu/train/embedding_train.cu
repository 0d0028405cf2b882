// Token embedding: the forward gather, and the backward scatter-add without atomics. For the
// backward the host groups the positions by token (a CSR: distinct tokens, and for each the
// positions t in increasing order); one thread per (token, channel) then adds that token's rows
// in t order onto dwte, which is exactly the CPU's sequence of float additions.
#include <algorithm>
#include <climits>
#include <numeric>

#include "gpu/op_times.h"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingForwardKernel(float* out, const int32_t* tokens, const float* wte, int64_t C) {
  const int64_t t = blockIdx.x;
  const float* src = wte + static_cast<int64_t>(tokens[t]) * C;
  float* dst = out + t * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

// rows: positions grouped by token; uniq[u] the u-th distinct token, its positions
// rows[offsets[u] .. offsets[u+1]).
__global__ void EmbeddingBackwardKernel(float* dwte, const float* dout, const int32_t* rows, const int32_t* uniq,
                                        const int32_t* offsets, int64_t C) {
  const int64_t u = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float* d = dwte + static_cast<int64_t>(uniq[u]) * C + c;
  float acc = *d;
  for (int32_t i = offsets[u]; i < offsets[u + 1]; ++i) acc += dout[static_cast<int64_t>(rows[i]) * C + c];
  *d = acc;
}

}  // namespace

Status TrainKernels::EmbeddingForward(float* out, const int32_t* tokens, const float* wte, int64_t BT, int64_t C) {
  OpScope op_scope(impl_->times.get(), "embedding fwd", impl_->stream);
  if (BT <= 0 || C <= 0) return Status::Ok();
  if (BT > INT_MAX) return Status::InvalidArgument("EmbeddingForward: too many rows");
  EmbeddingForwardKernel<<<static_cast<unsigned>(BT), kThreads, 0, impl_->stream>>>(out, tokens, wte, C);
  return LaunchStatus(cudaGetLastError(), "EmbeddingForward");
}

Status TrainKernels::EmbeddingBackward(float* dwte, const float* dout, const int32_t* tokens_host, int64_t BT,
                                       int64_t C) {
  OpScope op_scope(impl_->times.get(), "embedding bwd", impl_->stream);
  Impl& d = *impl_;
  if (BT <= 0 || C <= 0) return Status::Ok();
  if (BT >= INT_MAX / 3) return Status::InvalidArgument("EmbeddingBackward: too many rows");
  // Staging layout (int32): rows [BT] | uniq [U] | offsets [U + 1], U ≤ BT distinct tokens.
  const size_t max_ints = static_cast<size_t>(3 * BT + 1);
  LMS_RETURN_IF_ERROR(d.ReserveHost(max_ints * sizeof(int32_t)));
  LMS_RETURN_IF_ERROR(d.Reserve(d.csr, max_ints * sizeof(int32_t)));
  int32_t* rows = static_cast<int32_t*>(d.csr_host);
  std::iota(rows, rows + BT, 0);
  std::stable_sort(rows, rows + BT, [&](int32_t a, int32_t b) { return tokens_host[a] < tokens_host[b]; });
  int32_t* uniq = rows + BT;
  int64_t U = 0;
  for (int64_t i = 0; i < BT; ++i) {
    if (i == 0 || tokens_host[rows[i]] != tokens_host[rows[i - 1]]) uniq[U++] = tokens_host[rows[i]];
  }
  int32_t* offsets = uniq + U;
  int64_t u = 0;
  for (int64_t i = 0; i < BT; ++i) {
    if (i == 0 || tokens_host[rows[i]] != tokens_host[rows[i - 1]]) offsets[u++] = static_cast<int32_t>(i);
  }
  offsets[U] = static_cast<int32_t>(BT);
  const size_t used = static_cast<size_t>(BT + 2 * U + 1) * sizeof(int32_t);
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(d.csr.p, d.csr_host, used, cudaMemcpyHostToDevice, d.stream));
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaEventRecord(d.csr_uploaded, d.stream));
  const int32_t* dev = d.csr.as<int32_t>();
  const dim3 grid(static_cast<unsigned>(U), static_cast<unsigned>((C + kThreads - 1) / kThreads));
  EmbeddingBackwardKernel<<<grid, kThreads, 0, d.stream>>>(dwte, dout, dev, dev + BT, dev + BT + U, C);
  return LaunchStatus(cudaGetLastError(), "EmbeddingBackward");
}

}  // namespace lms::gpu::train
