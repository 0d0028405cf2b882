// RoPE: one thread per (token, head, rotated pair). theta follows the CPU's float recurrence
// theta_i = pos * theta_scale^i (repeated multiplication, not pow), so angles match it exactly.
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void RopeKernel(float* x, int64_t ld, int32_t n_heads, RopeArgs a, const int32_t* positions,
                           int32_t n_tokens) {
  const int half = a.n_dims / 2;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t total = static_cast<int64_t>(n_tokens) * n_heads * half;
  if (idx >= total) return;
  const int i = static_cast<int>(idx % half);
  const int h = static_cast<int>((idx / half) % n_heads);
  const int t = static_cast<int>(idx / (static_cast<int64_t>(half) * n_heads));
  float theta = static_cast<float>(positions[t]);
  for (int j = 0; j < i; ++j) theta *= a.theta_scale;
  const float th = theta * a.freq_scale;
  const float c = cosf(th), sn = sinf(th);
  float* v = x + t * ld + static_cast<int64_t>(h) * a.head_dim;
  const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + half : 2 * i + 1;
  const float x0 = v[ia], x1 = v[ib];
  v[ia] = x0 * c - x1 * sn;
  v[ib] = x0 * sn + x1 * c;
}

}  // namespace

cudaError_t LaunchRope(float* x, int64_t ld, int32_t n_heads, const RopeArgs& a, const DeviceBatch& b, cudaStream_t s) {
  const int64_t total = static_cast<int64_t>(b.n_tokens) * n_heads * (a.n_dims / 2);
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  RopeKernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, s>>>(x, ld, n_heads, a, b.positions,
                                                                                         b.n_tokens);
  return cudaGetLastError();
}

}  // namespace lms::gpu
