// RMSNorm forward (alone, or after the residual add) and backward. Per row: one block, the sums
// of squares and the dot product in double as on the CPU. The weight gradient sums over rows in a fixed order without atomics:
// each block column-sums one chunk of rows into a partial row, then one pass adds the partials
// in chunk order onto dw.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>

#include "gpu/op_times.h"
#include "gpu/train/element_access.cuh"
#include "gpu/train/train_kernels_impl.h"
#include "gpu/train/train_reduce.cuh"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

// out (fp32) and out16 (bf16): either may be null. With add, the row normed is inp + add, and
// it is written to sum first (the second pass reads it back: each thread its own elements).
template <typename TA>
__global__ void RmsNormForwardKernel(float* out, __nv_bfloat16* out16, float* rstd, const float* inp, const TA* add,
                                     float* sum, const float* w, int64_t C, float eps) {
  const int64_t t = blockIdx.x;
  const float* x = inp + t * C;
  double ss = 0.0;
  if (add) {
    float* xs = sum + t * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float v = x[c] + Ld(add, t * C + c);
      xs[c] = v;
      ss += static_cast<double>(v) * v;
    }
    x = xs;
  } else {
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += static_cast<double>(x[c]) * x[c];
  }
  ss = BlockReduceSum(ss);
  const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(C) + eps));
  if (threadIdx.x == 0) rstd[t] = s;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float y = x[c] * s * w[c];
    if (out) out[t * C + c] = y;
    if (out16) out16[t * C + c] = __float2bfloat16_rn(y);
  }
}

// y = x·s·w with s = (mean(x²)+eps)^-1/2:  dx = s·(dy·w) − x·s³·mean(dy·w·x); dinp16: the
// updated dinp in bf16 as well, or null.
__global__ void RmsNormBackwardInpKernel(float* dinp, __nv_bfloat16* dinp16, const float* dout, const float* inp,
                                         const float* w, const float* rstd, int64_t C) {
  const int64_t t = blockIdx.x;
  const float* x = inp + t * C;
  const float* g = dout + t * C;
  const float s = rstd[t];
  double dot = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dot += static_cast<double>(g[c]) * w[c] * x[c];
  dot = BlockReduceSum(dot);
  const float k = static_cast<float>(dot / static_cast<double>(C)) * s * s * s;
  float* dx = dinp + t * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = dx[c] + (s * g[c] * w[c] - k * x[c]);
    dx[c] = v;
    if (dinp16) dinp16[t * C + c] = __float2bfloat16_rn(v);
  }
}

// partial[chunk][c] = Σ over the chunk's rows t, in order, of dy·x·s.
__global__ void RmsNormDwPartialKernel(float* partial, const float* dout, const float* inp, const float* rstd,
                                       int64_t BT, int64_t C, int64_t rows_per_chunk) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t t0 = blockIdx.y * rows_per_chunk, t1 = min(BT, t0 + rows_per_chunk);
  float acc = 0.0f;
  for (int64_t t = t0; t < t1; ++t) acc += dout[t * C + c] * inp[t * C + c] * rstd[t];
  partial[blockIdx.y * C + c] = acc;
}

__global__ void RmsNormDwFinishKernel(float* dw, const float* partial, int64_t chunks, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * C + c];
  dw[c] += acc;
}

}  // namespace

Status TrainKernels::RmsNormForward(float* out, float* rstd, const float* inp, const float* w, int64_t BT, int64_t C,
                                    float eps, void* out16) {
  OpScope op_scope(impl_->times.get(), "rmsnorm fwd", impl_->stream);
  if (BT <= 0 || C <= 0) return Status::Ok();
  if (BT > INT_MAX) return Status::InvalidArgument("RmsNormForward: too many rows");
  RmsNormForwardKernel<float><<<static_cast<unsigned>(BT), kThreads, 0, impl_->stream>>>(
      out, static_cast<__nv_bfloat16*>(out16), rstd, inp, nullptr, nullptr, w, C, eps);
  return LaunchStatus(cudaGetLastError(), "RmsNormForward");
}

Status TrainKernels::AddRmsNormForward(float* sum, float* out, float* rstd, const float* inp, Activation add,
                                       const float* w, int64_t BT, int64_t C, float eps, void* out16) {
  OpScope op_scope(impl_->times.get(), "add + rmsnorm fwd", impl_->stream);
  if (BT <= 0 || C <= 0) return Status::Ok();
  if (BT > INT_MAX) return Status::InvalidArgument("AddRmsNormForward: too many rows");
  if ((add.f32 == nullptr) == (add.bf16 == nullptr) || sum == nullptr) {
    return Status::InvalidArgument("AddRmsNormForward: one addend, fp32 or bf16, and the sum");
  }
  auto* o16 = static_cast<__nv_bfloat16*>(out16);
  const unsigned grid = static_cast<unsigned>(BT);
  if (add.bf16) {
    RmsNormForwardKernel<__nv_bfloat16><<<grid, kThreads, 0, impl_->stream>>>(
        out, o16, rstd, inp, static_cast<const __nv_bfloat16*>(add.bf16), sum, w, C, eps);
  } else {
    RmsNormForwardKernel<float><<<grid, kThreads, 0, impl_->stream>>>(out, o16, rstd, inp, add.f32, sum, w, C, eps);
  }
  return LaunchStatus(cudaGetLastError(), "AddRmsNormForward");
}

Status TrainKernels::RmsNormBackward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                                     const float* rstd, int64_t BT, int64_t C, void* dinp16) {
  OpScope op_scope(impl_->times.get(), "rmsnorm bwd", impl_->stream);
  Impl& d = *impl_;
  if (BT <= 0 || C <= 0) return Status::Ok();
  if (BT > INT_MAX) return Status::InvalidArgument("RmsNormBackward: too many rows");
  RmsNormBackwardInpKernel<<<static_cast<unsigned>(BT), kThreads, 0, d.stream>>>(
      dinp, static_cast<__nv_bfloat16*>(dinp16), dout, inp, w, rstd, C);
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaGetLastError());
  // At most 1024 chunks of at least 32 rows: the split depends on BT only.
  const int64_t rows_per_chunk = std::max<int64_t>(32, (BT + 1023) / 1024);
  const int64_t chunks = (BT + rows_per_chunk - 1) / rows_per_chunk;
  LMS_RETURN_IF_ERROR(d.Reserve(d.partials, static_cast<size_t>(chunks * C) * sizeof(float)));
  const unsigned cblocks = static_cast<unsigned>((C + kThreads - 1) / kThreads);
  RmsNormDwPartialKernel<<<dim3(cblocks, static_cast<unsigned>(chunks)), kThreads, 0, d.stream>>>(
      d.partials.as<float>(), dout, inp, rstd, BT, C, rows_per_chunk);
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaGetLastError());
  RmsNormDwFinishKernel<<<cblocks, kThreads, 0, d.stream>>>(dw, d.partials.as<float>(), chunks, C);
  return LaunchStatus(cudaGetLastError(), "RmsNormBackward");
}

}  // namespace lms::gpu::train
