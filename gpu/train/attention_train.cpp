// Causal grouped-query attention, materialised as on the CPU: per (sequence b, query head h)
// the scores S = Q_h·K_kᵀ (T×T, k = h / (H/KV)) go into att, a causal softmax turns them into
// probabilities P in place, and out_h = P·V_k. Products are cuBLAS batched GEMMs over all
// (b, h) with device pointer arrays on fp32 operands: full fp32 in kF32, TF32 tensor cores in
// kBF16 (the mixed-precision mode). The full T×T square is multiplied; masked entries are exact zeros after the softmax,
// so they add nothing to the products that follow.
//
// Row-major (R, C) matrices with row stride ld read column-major as their transposes, so:
//   S (T×T, ld T) = Q_h·K_kᵀ      → Sᵀ = K_k·Q_hᵀ:  A = K_k read (hd×T, ld kvd) op T,
//                                     B = Q_h read (hd×T, ld qd) op N,  m = n = T, k = hd
//   out_h (T×hd, ld qd) = P·V_k    → outᵀ = V_kᵀ·Pᵀ: A = V_k read (hd×T, ld kvd) op N,
//                                     B = P read (T×T, ld T) op N,  m = hd, n = T, k = T
// and in the backward, with the same two shapes:
//   dP = dout_h·V_kᵀ (as S),  dQ_h = dS·K_k (as out),
//   dV_k += Pᵀ·dout_h  → dVᵀ = dout_hᵀ·P:  A = dout_h read (hd×T, ld qd) op N, B = P read op T
//   dK_k += dSᵀ·Q_h    → dKᵀ = Q_hᵀ·dS:    A = Q_h read (hd×T, ld qd) op N,   B = dS read op T
// dK and dV sum over the query heads of a group: one batched product per group member g, over
// all (b, k), in increasing g (the first overwrites with beta 0), which is a fixed order.
//
// The flash variant (attention_flash.cu) computes the same without the T×T matrices.
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include <cuda_bf16.h>

#include "gpu/op_times.h"
#include "gpu/train/train_kernels.h"
#include "gpu/cuda_check.h"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

Status CheckShape(int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld = {}) {
  if (KV <= 0 || H % KV != 0) return Status::InvalidArgument("attention: H must be a multiple of KV");
  if (B * H * T > INT_MAX) return Status::InvalidArgument("attention: too many rows");
  if ((ld.q != 0 && ld.q < H * hd) || (ld.kv != 0 && ld.kv < KV * hd)) {
    return Status::InvalidArgument("attention: rows closer than their heads");
  }
  return Status::Ok();
}

float* const* AsOut(const float** p) { return const_cast<float**>(p); }  // C arrays: same pointers

// Every per-head pointer (offsets of multiples of hd and T·T floats) 16-byte aligned, as TF32
// batched products want.
bool Tf32Aligned(int64_t T, int64_t hd) { return T % 4 == 0 && hd % 4 == 0; }

}  // namespace

Status TrainKernels::AttentionForward(float* out, float* att, const float* q, const float* k, const float* v,
                                      int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld) {
  OpScope op_scope(impl_->times.get(), "attention fwd", impl_->stream);
  Impl& d = *impl_;
  if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return Status::Ok();
  LMS_RETURN_IF_ERROR(CheckShape(B, T, H, KV, hd, ld));
  const int64_t group = H / KV, qd = H * hd, bh = B * H;
  const int64_t ldq = ld.q ? ld.q : qd, ldkv = ld.kv ? ld.kv : KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool tf32 = Tf32Aligned(T, hd) && ldq % 4 == 0 && ldkv % 4 == 0;
  LMS_RETURN_IF_ERROR(d.Reserve(d.ptrs, static_cast<size_t>(6 * bh) * sizeof(float*)));
  const float** P = d.ptrs.as<const float*>();
  const PtrSpec q_h{q, T * ldq, hd, 1}, k_h{k, T * ldkv, hd, group}, v_h{v, T * ldkv, hd, group};
  const PtrSpec att_h{att, H * T * T, T * T, 1}, out_h{out, T * qd, hd, 1};

  LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(P, k_h, q_h, att_h, bh, H, d.stream));
  LMS_RETURN_IF_ERROR(d.GemmBatched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, P, ldkv, P + bh, ldq, AsOut(P + 2 * bh), T,
                                    0.0f, bh, tf32));
  LMS_CUDA_RETURN_IF_ERROR(LaunchCausalSoftmax(att, bh * T, T, scale, d.stream));
  const float** P2 = P + 3 * bh;
  LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(P2, v_h, att_h, out_h, bh, H, d.stream));
  return d.GemmBatched(CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, P2, ldkv, P2 + bh, T, AsOut(P2 + 2 * bh), qd, 0.0f, bh,
                       tf32);
}

Status TrainKernels::AttentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                       const float* k, const float* v, const float* att, int64_t B, int64_t T,
                                       int64_t H, int64_t KV, int64_t hd, QkvStrides ld) {
  OpScope op_scope(impl_->times.get(), "attention bwd", impl_->stream);
  Impl& d = *impl_;
  if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return Status::Ok();
  LMS_RETURN_IF_ERROR(CheckShape(B, T, H, KV, hd, ld));
  const int64_t group = H / KV, qd = H * hd, bh = B * H, bkv = B * KV;
  const int64_t ldq = ld.q ? ld.q : qd, ldkv = ld.kv ? ld.kv : KV * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool tf32 = Tf32Aligned(T, hd) && ldq % 4 == 0 && ldkv % 4 == 0;
  // Pointer arrays: dP and dQ (3·bh each), then dV and dK for every group member (3·bkv each).
  LMS_RETURN_IF_ERROR(d.Reserve(d.ptrs, static_cast<size_t>(6 * bh + 6 * group * bkv) * sizeof(float*)));
  LMS_RETURN_IF_ERROR(d.Reserve(d.att_grad, static_cast<size_t>(bh * T * T) * sizeof(float)));
  const float** P = d.ptrs.as<const float*>();
  float* ds = d.att_grad.as<float>();
  const PtrSpec dout_h{dout, T * qd, hd, 1}, k_h{k, T * ldkv, hd, group}, v_h{v, T * ldkv, hd, group};
  const PtrSpec ds_h{ds, H * T * T, T * T, 1}, dq_h{dq, T * ldq, hd, 1};

  // dP = dout_h·V_kᵀ into ds, then dS in place.
  LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(P, v_h, dout_h, ds_h, bh, H, d.stream));
  LMS_RETURN_IF_ERROR(d.GemmBatched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, P, ldkv, P + bh, qd, AsOut(P + 2 * bh), T,
                                    0.0f, bh, tf32));
  LMS_CUDA_RETURN_IF_ERROR(LaunchCausalSoftmaxBackward(ds, att, bh * T, T, scale, d.stream));
  // dQ_h = dS·K_k (overwritten).
  const float** Pq = P + 3 * bh;
  LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(Pq, k_h, ds_h, dq_h, bh, H, d.stream));
  LMS_RETURN_IF_ERROR(d.GemmBatched(CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, Pq, ldkv, Pq + bh, T, AsOut(Pq + 2 * bh),
                                    ldq, 0.0f, bh, tf32));
  // dV_k = Σ_g P_hᵀ·dout_h and dK_k = Σ_g dS_hᵀ·Q_h over h = k·group + g, g increasing; the
  // problems run over (b, k), so `heads` is KV and a head's offsets step by `group` query heads.
  for (int64_t g = 0; g < group; ++g) {
    const float beta = g == 0 ? 0.0f : 1.0f;
    const float** Pv = P + 6 * bh + 6 * g * bkv;
    const float** Pk = Pv + 3 * bkv;
    const PtrSpec dout_g{dout + g * hd, T * qd, group * hd, 1}, q_g{q + g * hd, T * ldq, group * hd, 1};
    const PtrSpec att_g{att + g * T * T, H * T * T, group * T * T, 1};
    const PtrSpec ds_g{ds + g * T * T, H * T * T, group * T * T, 1};
    const PtrSpec dv_k{dv, T * ldkv, hd, 1}, dk_k{dk, T * ldkv, hd, 1};
    LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(Pv, dout_g, att_g, dv_k, bkv, KV, d.stream));
    LMS_RETURN_IF_ERROR(d.GemmBatched(CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, Pv, qd, Pv + bkv, T, AsOut(Pv + 2 * bkv),
                                      ldkv, beta, bkv, tf32));
    LMS_CUDA_RETURN_IF_ERROR(LaunchFillPointers(Pk, q_g, ds_g, dk_k, bkv, KV, d.stream));
    LMS_RETURN_IF_ERROR(d.GemmBatched(CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, Pk, ldq, Pk + bkv, T, AsOut(Pk + 2 * bkv),
                                      ldkv, beta, bkv, tf32));
  }
  return Status::Ok();
}

namespace {

Status CheckFlash(int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld) {
  LMS_RETURN_IF_ERROR(CheckShape(B, T, H, KV, hd, ld));
  if (ld.q % 4 != 0 || ld.kv % 4 != 0) {  // the kernels read rows 4 elements at a time
    return Status::InvalidArgument("flash attention: row strides must be multiples of 4 elements");
  }
  if (!TrainKernels::FlashAttentionSupports(hd)) {
    return Status::InvalidArgument(fmt::format("flash attention: head dim {} is not 32, 64, 96 or 128", hd));
  }
  if (B * std::max(H, KV) > 65535 || T > INT_MAX / 2) {  // grid rows: one per (sequence, head)
    return Status::InvalidArgument("flash attention: more than 65,535 (sequence, head) pairs or too many positions");
  }
  return Status::Ok();
}

// The flash operands' one element type: each given in fp32 alone (bf16 false) or each in bf16
// alone (true), and 16-byte aligned.
Status FlashOperands(std::initializer_list<Activation> in, std::initializer_list<Output> out, bool* bf16) {
  int n16 = 0, n32 = 0;
  std::vector<const void*> ptrs;
  for (const Activation& a : in) {
    n16 += a.bf16 != nullptr;
    n32 += a.f32 != nullptr;
    ptrs.push_back(a.bf16 ? a.bf16 : static_cast<const void*>(a.f32));
  }
  for (const Output& o : out) {
    n16 += o.bf16 != nullptr;
    n32 += o.f32 != nullptr;
    ptrs.push_back(o.bf16 ? o.bf16 : static_cast<const void*>(o.f32));
  }
  const int n = static_cast<int>(in.size() + out.size());
  if (!((n16 == n && n32 == 0) || (n32 == n && n16 == 0))) {
    return Status::InvalidArgument("flash attention: operands all in fp32 or all in bf16, one copy each");
  }
  *bf16 = n16 == n;
  for (const void* p : ptrs) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
      return Status::InvalidArgument("flash attention: operands must be 16-byte aligned");
    }
  }
  return Status::Ok();
}

const __nv_bfloat16* B16(const void* p) { return static_cast<const __nv_bfloat16*>(p); }
__nv_bfloat16* B16(void* p) { return static_cast<__nv_bfloat16*>(p); }

}  // namespace

bool TrainKernels::FlashAttentionSupports(int64_t hd) { return FlashAttentionSupportsHeadDim(hd); }

Status TrainKernels::FlashAttentionForward(Output out, float* lse2, Activation q, Activation k, Activation v,
                                           int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld) {
  OpScope op_scope(impl_->times.get(), "attention fwd (flash)", impl_->stream);
  if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return Status::Ok();
  LMS_RETURN_IF_ERROR(CheckFlash(B, T, H, KV, hd, ld));
  bool bf16 = false;
  LMS_RETURN_IF_ERROR(FlashOperands({q, k, v}, {out}, &bf16));
  const int b = static_cast<int>(B), t = static_cast<int>(T), h = static_cast<int>(H), kv = static_cast<int>(KV),
            d = static_cast<int>(hd);
  const cudaStream_t s = impl_->stream;
  if (bf16) {
    LMS_CUDA_RETURN_IF_ERROR(
        LaunchFlashAttentionForward(B16(q.bf16), B16(k.bf16), B16(v.bf16), B16(out.bf16), lse2, b, t, h, kv, d, s,
                                    ld.q, ld.kv));
  } else {
    LMS_CUDA_RETURN_IF_ERROR(
        LaunchFlashAttentionForward(q.f32, k.f32, v.f32, out.f32, lse2, b, t, h, kv, d, s, ld.q, ld.kv));
  }
  return Status::Ok();
}

Status TrainKernels::FlashAttentionBackward(Output dq, Output dk, Output dv, Activation dout, Activation q,
                                            Activation k, Activation v, Activation out, const float* lse2, int64_t B,
                                            int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld) {
  OpScope op_scope(impl_->times.get(), "attention bwd (flash)", impl_->stream);
  Impl& x = *impl_;
  if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return Status::Ok();
  LMS_RETURN_IF_ERROR(CheckFlash(B, T, H, KV, hd, ld));
  bool bf16 = false;
  LMS_RETURN_IF_ERROR(FlashOperands({dout, q, k, v, out}, {dq, dk, dv}, &bf16));
  LMS_RETURN_IF_ERROR(x.Reserve(x.row_dot, static_cast<size_t>(B * H * T) * sizeof(float)));
  float* D = x.row_dot.as<float>();
  const int b = static_cast<int>(B), t = static_cast<int>(T), h = static_cast<int>(H), kv = static_cast<int>(KV),
            d = static_cast<int>(hd);
  if (bf16) {
    LMS_CUDA_RETURN_IF_ERROR(LaunchFlashAttentionBackward(B16(q.bf16), B16(k.bf16), B16(v.bf16), B16(out.bf16),
                                                          B16(dout.bf16), lse2, D, B16(dq.bf16), B16(dk.bf16),
                                                          B16(dv.bf16), b, t, h, kv, d, x.stream, ld.q, ld.kv));
  } else {
    LMS_CUDA_RETURN_IF_ERROR(LaunchFlashAttentionBackward(q.f32, k.f32, v.f32, out.f32, dout.f32, lse2, D, dq.f32,
                                                          dk.f32, dv.f32, b, t, h, kv, d, x.stream, ld.q, ld.kv));
  }
  return Status::Ok();
}

}  // namespace lms::gpu::train
