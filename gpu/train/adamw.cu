// The optimizer's device side: Σ g² (double, fixed-order two-pass reduction) for the gradient
// norm, and the AdamW update with the float operations of core's AdamW::Step, each rounded
// separately (no fused multiply-adds) as the CPU's vector loop does.
#include "gpu/op_times.h"
#include "gpu/train/train_kernels_impl.h"
#include "gpu/train/train_reduce.cuh"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxSumBlocks = 1024;

__global__ void SumSquaresPartialKernel(const float* g, int64_t n, double* partial) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double s = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const double x = g[i];
    s += x * x;
  }
  s = BlockReduceSum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void SumSquaresFinishKernel(const double* partial, int64_t blocks, double* out) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = BlockReduceSum(s);
  if (threadIdx.x == 0) *out = s;
}

__global__ void AdamWKernel(lms::train::AdamWScalars s, float* p, float* g, float* m, float* v,
                            const uint8_t* decay, int64_t n) {
  const float ob1 = __fsub_rn(1.0f, s.beta1), ob2 = __fsub_rn(1.0f, s.beta2);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float gi = __fmul_rn(g[i], s.clip);
    g[i] = gi;
    const float mi = __fadd_rn(__fmul_rn(s.beta1, m[i]), __fmul_rn(ob1, gi));
    const float vi = __fadd_rn(__fmul_rn(s.beta2, v[i]), __fmul_rn(__fmul_rn(ob2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float mhat = __fdiv_rn(mi, s.bc1), vhat = __fdiv_rn(vi, s.bc2);
    const float pi = p[i];
    const float dec = decay[i] ? __fmul_rn(s.weight_decay, pi) : 0.0f;
    const float upd = __fadd_rn(__fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), s.eps)), dec);
    p[i] = __fsub_rn(pi, __fmul_rn(s.lr, upd));
  }
}

}  // namespace

Status TrainKernels::SumSquares(const float* g, int64_t n, double* out) {
  OpScope op_scope(impl_->times.get(), "grad norm", impl_->stream);
  Impl& d = *impl_;
  if (n <= 0) return LaunchStatus(cudaMemsetAsync(out, 0, sizeof(double), d.stream), "SumSquares");
  // The number of blocks depends on n only, so the order of the sum does too.
  int64_t blocks = (n + kThreads * 8 - 1) / (kThreads * 8);
  if (blocks > kMaxSumBlocks) blocks = kMaxSumBlocks;
  LMS_RETURN_IF_ERROR(d.Reserve(d.partials, static_cast<size_t>(blocks) * sizeof(double)));
  SumSquaresPartialKernel<<<static_cast<unsigned>(blocks), kThreads, 0, d.stream>>>(g, n, d.partials.as<double>());
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaGetLastError());
  SumSquaresFinishKernel<<<1, 1024, 0, d.stream>>>(d.partials.as<double>(), blocks, out);
  return LaunchStatus(cudaGetLastError(), "SumSquares");
}

Status TrainKernels::AdamW(const lms::train::AdamWScalars& s, float* p, float* g, float* m, float* v,
                           const uint8_t* decay, int64_t n) {
  OpScope op_scope(impl_->times.get(), "adamw", impl_->stream);
  if (n <= 0) return Status::Ok();
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  AdamWKernel<<<grid, kThreads, 0, impl_->stream>>>(s, p, g, m, v, decay, n);
  return LaunchStatus(cudaGetLastError(), "AdamW");
}

}  // namespace lms::gpu::train
