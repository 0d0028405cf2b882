// Softmax cross-entropy with the gradient written over the logits (fp32 or bf16), or as bf16
// elsewhere. One block per row: the max and the sum of exponentials in one pass (a running max
// per thread) and fixed-order block reductions; the row's loss goes to scratch, and one
// single-block pass adds the counted rows' losses (in double, fixed order) and their number onto
// the caller's device scalars.
#include <cuda_bf16.h>

#include <climits>

#include "gpu/op_times.h"
#include "gpu/train/element_access.cuh"
#include "gpu/train/train_kernels_impl.h"
#include "gpu/train/train_reduce.cuh"

namespace lms::gpu::train {
namespace {

constexpr int kRowThreads = 512;
constexpr int kSumThreads = 1024;

// Two passes over the row: each thread keeps a running max and sum of exponentials over its
// elements (rescaled when the max grows), the block combines them, then the gradient is written:
// over the logits in place (grad null), or to grad, which may be the logits themselves (bf16
// in place) or another buffer (the logits then stay as they were).
template <typename TL, typename TG>
__global__ void CrossEntropyRowKernel(TL* logits, const int32_t* targets, double* row_loss, int64_t V,
                                      float grad_scale, TG* grad) {
  const int64_t t = blockIdx.x;
  TL* l = logits + t * V;
  TG* g = grad + t * V;
  const int32_t y = targets[t];
  if (y < 0) {  // the same for the whole block
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) St(g, i, 0.0f);
    if (threadIdx.x == 0) row_loss[t] = 0.0;
    return;
  }
  const float ly = Ld(l, y);  // read before any thread overwrites the row (the reductions sync)
  float m = -INFINITY, part = 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float x = Ld(l, i);
    if (x > m) {
      part = part * expf(m - x) + 1.0f;  // 0 · … on the first element (m = −∞)
      m = x;
    } else if (m != -INFINITY) {  // (x = m = −∞ adds nothing)
      part += expf(x - m);
    }
  }
  const float mx = BlockReduceMax(m);
  const double scaled = m == -INFINITY ? 0.0 : static_cast<double>(part) * exp(static_cast<double>(m - mx));
  const double sum = BlockReduceSum(scaled);
  if (threadIdx.x == 0) row_loss[t] = log(sum) + mx - ly;  // lse − logit of the target
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float p = expf(Ld(l, i) - mx) * inv;  // each thread reads its element before writing it
    St(g, i, (p - (i == y ? 1.0f : 0.0f)) * grad_scale);
  }
}

__global__ void LossSumKernel(const double* row_loss, const int32_t* targets, int64_t BT, double* loss_sum,
                              int64_t* count) {
  double s = 0.0;
  long long n = 0;
  for (int64_t t = threadIdx.x; t < BT; t += blockDim.x) {
    if (targets[t] >= 0) {
      s += row_loss[t];
      ++n;
    }
  }
  s = BlockReduceSum(s);
  n = BlockReduceSum(n);
  if (threadIdx.x == 0) {
    *loss_sum += s;
    *count += n;
  }
}

}  // namespace

namespace {

// The row kernel on logits (BT, V) writing grad, then the loss sum.
template <typename TL, typename TG>
Status RunCrossEntropy(TrainKernels::Impl& d, TL* logits, TG* grad, const int32_t* targets, int64_t BT, int64_t V,
                       float grad_scale, double* loss_sum, int64_t* count) {
  if (BT <= 0 || V <= 0) return Status::Ok();
  if (BT > INT_MAX) return Status::InvalidArgument("CrossEntropyForwardBackward: too many rows");
  LMS_RETURN_IF_ERROR(d.Reserve(d.row_loss, static_cast<size_t>(BT) * sizeof(double)));
  double* rows = d.row_loss.as<double>();
  CrossEntropyRowKernel<TL, TG><<<static_cast<unsigned>(BT), kRowThreads, 0, d.stream>>>(logits, targets, rows, V,
                                                                                grad_scale, grad);
  LMS_TRAIN_RETURN_IF_CUDA_ERROR(cudaGetLastError());
  LossSumKernel<<<1, kSumThreads, 0, d.stream>>>(rows, targets, BT, loss_sum, count);
  return LaunchStatus(cudaGetLastError(), "CrossEntropyForwardBackward");
}

}  // namespace

Status TrainKernels::CrossEntropyForwardBackward(float* logits, const int32_t* targets, int64_t BT, int64_t V,
                                                 float grad_scale, double* loss_sum, int64_t* count, void* dlogits16) {
  OpScope op_scope(impl_->times.get(), "cross-entropy", impl_->stream);
  if (dlogits16) {
    return RunCrossEntropy(*impl_, logits, static_cast<__nv_bfloat16*>(dlogits16), targets, BT, V, grad_scale,
                           loss_sum, count);
  }
  return RunCrossEntropy(*impl_, logits, logits, targets, BT, V, grad_scale, loss_sum, count);
}

Status TrainKernels::CrossEntropyForwardBackwardBf16(void* logits16, const int32_t* targets, int64_t BT, int64_t V,
                                                     float grad_scale, double* loss_sum, int64_t* count) {
  OpScope op_scope(impl_->times.get(), "cross-entropy", impl_->stream);
  auto* l = static_cast<__nv_bfloat16*>(logits16);
  return RunCrossEntropy(*impl_, l, l, targets, BT, V, grad_scale, loss_sum, count);
}

}  // namespace lms::gpu::train
