// RMSNorm forward (alone, or after the residual add) and backward. The forward: one block a row.
// The backward: one block a chunk of rows, each row's input gradient and its share of the weight
// gradient from one read of dy and x. Sums of squares and dot products in double, as on the CPU.
// The weight gradient sums over rows in a fixed order without atomics: each block sums its
// chunk's rows into a partial row, then one pass adds the partials in chunk order onto dw.
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

// y = x·s·w with s = (mean(x²)+eps)^-1/2:  dx = s·(dy·w) − x·s³·mean(dy·w·x), and dw = Σ_t dy·x·s.
// One block a chunk of consecutive rows, taken in order: a thread keeps its first kKeep columns
// of a row's dy and x in registers from the dot product to the update, and their dw sums across
// the chunk's rows, so each is read from memory once; columns beyond kKeep·blockDim are read
// again and summed in the chunk's partial row in memory (only this thread touches them).
// partial[chunk][c]: the chunk's dw sums. dinp16: the updated dinp in bf16 as well, or null.
constexpr int kKeep = 8;
__global__ void __launch_bounds__(kThreads, 4)
    RmsNormBackwardKernel(float* dinp, __nv_bfloat16* dinp16, float* partial, const float* dout, const float* inp,
                          const float* w, const float* rstd, int64_t BT, int64_t C, int64_t rows_per_chunk) {
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * rows_per_chunk, t1 = min(BT, t0 + rows_per_chunk);
  const int64_t bd = blockDim.x, beyond = threadIdx.x + kKeep * bd;
  float* part = partial + static_cast<int64_t>(blockIdx.x) * C;
  for (int64_t c = beyond; c < C; c += bd) part[c] = 0.0f;
  float dw[kKeep] = {};
  for (int64_t t = t0; t < t1; ++t) {
    const float* x = inp + t * C;
    const float* g = dout + t * C;
    const float s = rstd[t];
    float xk[kKeep] = {}, gk[kKeep] = {};
    double dot = 0.0;
#pragma unroll
    for (int j = 0; j < kKeep; ++j) {
      const int64_t c = threadIdx.x + j * bd;
      if (c < C) {
        xk[j] = x[c];
        gk[j] = g[c];
        dot += static_cast<double>(gk[j]) * w[c] * xk[j];
      }
    }
    for (int64_t c = beyond; c < C; c += bd) dot += static_cast<double>(g[c]) * w[c] * x[c];
    dot = BlockReduceSum(dot);
    const float k = static_cast<float>(dot / static_cast<double>(C)) * s * s * s;
    float* dx = dinp + t * C;
    __nv_bfloat16* dx16 = dinp16 ? dinp16 + t * C : nullptr;
    auto update = [&](int64_t c, float gv, float xv) {
      const float v = dx[c] + (s * gv * w[c] - k * xv);
      dx[c] = v;
      if (dx16) dx16[c] = __float2bfloat16_rn(v);
    };
#pragma unroll
    for (int j = 0; j < kKeep; ++j) {
      const int64_t c = threadIdx.x + j * bd;
      if (c < C) {
        update(c, gk[j], xk[j]);
        dw[j] += gk[j] * xk[j] * s;
      }
    }
    for (int64_t c = beyond; c < C; c += bd) {
      update(c, g[c], x[c]);
      part[c] += g[c] * x[c] * s;
    }
  }
#pragma unroll
  for (int j = 0; j < kKeep; ++j) {
    const int64_t c = threadIdx.x + j * bd;
    if (c < C) part[c] = dw[j];
  }
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
  // Chunks of at least 4 rows (the partial rows then hold a quarter of dy's size or less) and at
  // most 1024 of them (enough blocks to fill the GPU, each taking its rows in turn): the split,
  // and so every sum's order, depends on BT only.
  const int64_t rows_per_chunk = std::max<int64_t>(4, (BT + 1023) / 1024);
  const int64_t chunks = (BT + rows_per_chunk - 1) / rows_per_chunk;
  LMS_RETURN_IF_ERROR(d.Reserve(d.partials, static_cast<size_t>(chunks * C) * sizeof(float)));
  RmsNormBackwardKernel<<<static_cast<unsigned>(chunks), kThreads, 0, d.stream>>>(
      dinp, static_cast<__nv_bfloat16*>(dinp16), d.partials.as<float>(), dout, inp, w, rstd, BT, C, rows_per_chunk);
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaGetLastError());
  const unsigned cblocks = static_cast<unsigned>((C + kThreads - 1) / kThreads);
  RmsNormDwFinishKernel<<<cblocks, kThreads, 0, d.stream>>>(dw, d.partials.as<float>(), chunks, C);
  return LaunchStatus(cudaGetLastError(), "RmsNormBackward");
}

}  // namespace lms::gpu::train
