// Dispatcher: validates shapes, chooses the kernel set at run time, lays out activations.
#include "core/tensor/matmul.h"

#include <atomic>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/tensor/matmul_internal.h"

namespace lms {
namespace kern {

ActLayout GetActLayout(TensorType wt, int64_t k) {
  ActLayout L;
  L.k = k;
  switch (wt) {
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_1:
      L.format = ActFormat::kQ8;
      L.blocks = k / 32;
      L.blocks_pad = RoundUp(L.blocks, 8);
      L.qs = 0;
      L.d = static_cast<size_t>(RoundUp(k, 32));
      L.s = L.d + 4 * static_cast<size_t>(L.blocks_pad);
      L.qsum = L.s + 4 * static_cast<size_t>(L.blocks_pad);
      L.stride = static_cast<size_t>(RoundUp(static_cast<int64_t>(L.qsum) + 4 * L.blocks_pad, 64));
      break;
    case TensorType::kQ4_K:
    case TensorType::kQ6_K:
      L.format = ActFormat::kQ8K;
      L.blocks = k / 256;
      L.blocks_pad = RoundUp(L.blocks, 8);
      L.qs = 0;
      L.d = static_cast<size_t>(RoundUp(k, 32));
      L.bsums = L.d + 4 * static_cast<size_t>(L.blocks_pad);
      L.stride = static_cast<size_t>(RoundUp(static_cast<int64_t>(L.bsums) + 2 * (k / 16), 64));
      break;
    default:
      L.format = ActFormat::kF32;
      L.stride = static_cast<size_t>(RoundUp(4 * k, 64));
      break;
  }
  return L;
}

float* ThreadScratchFloats(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace kern

namespace {

KernelIsa Detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return KernelIsa::kAvx2;
  }
#endif
  return KernelIsa::kScalar;
}

KernelIsa InitialIsa() {
  KernelIsa isa = DetectedKernelIsa();
  if (const char* env = std::getenv("LMS_KERNELS"); env != nullptr && std::string(env) == "scalar") {
    isa = KernelIsa::kScalar;
  }
  return isa;
}

std::atomic<int>& ActiveIsaStorage() {
  static std::atomic<int> isa{static_cast<int>(InitialIsa())};
  return isa;
}

kern::TypeKernels KernelsFor(TensorType wt) {
  kern::TypeKernels scalar = kern::ScalarKernels(wt);
  if (ActiveKernelIsa() == KernelIsa::kAvx2) {
    kern::TypeKernels fast = kern::Avx2Kernels(wt);
    if (fast.prepare == nullptr) fast.prepare = scalar.prepare;
    if (fast.matmul == nullptr) fast.matmul = scalar.matmul;
    return fast;
  }
  return scalar;
}

}  // namespace

const char* KernelIsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kScalar: return "scalar";
    case KernelIsa::kAvx2: return "avx2";
  }
  return "?";
}

KernelIsa DetectedKernelIsa() {
  static const KernelIsa isa = Detect();
  return isa;
}

KernelIsa ActiveKernelIsa() { return static_cast<KernelIsa>(ActiveIsaStorage().load(std::memory_order_relaxed)); }

void SetKernelIsa(KernelIsa isa) {
  if (static_cast<int>(isa) > static_cast<int>(DetectedKernelIsa())) isa = DetectedKernelIsa();
  ActiveIsaStorage().store(static_cast<int>(isa), std::memory_order_relaxed);
}

bool CanMatMul(TensorType wt) { return kern::ScalarKernels(wt).matmul != nullptr; }

Status ValidateMatMul(TensorType wt, int64_t k) {
  if (!CanMatMul(wt)) {
    return Status::Unsupported("no matmul kernel for weight type " + std::string(TensorTypeName(wt)));
  }
  const int64_t be = TypeInfo(wt).block_elems;
  if (k <= 0 || k % be != 0) {
    return Status::InvalidArgument("matmul row length " + std::to_string(k) + " is not a positive multiple of " +
                                   std::string(TensorTypeName(wt)) + "'s block size " + std::to_string(be));
  }
  return Status::Ok();
}

size_t ActivationBytes(TensorType wt, int64_t m, int64_t k) {
  return kern::GetActLayout(wt, k).stride * static_cast<size_t>(m);
}

void PrepareActivationRows(TensorType wt, const float* x, int64_t k, int64_t ldx, int64_t row_begin,
                           int64_t row_end, void* prepared) {
  assert(ValidateMatMul(wt, k).ok());
  assert(0 <= row_begin && row_begin <= row_end);
  const kern::ActLayout L = kern::GetActLayout(wt, k);
  KernelsFor(wt).prepare(x, ldx, row_begin, row_end, L, static_cast<uint8_t*>(prepared));
}

void MatMulPrepared(TensorType wt, const void* w, size_t w_stride, int64_t n_begin, int64_t n_end,
                    const void* prepared, int64_t m, int64_t k, float* y, int64_t ldy) {
  assert(ValidateMatMul(wt, k).ok());
  assert(0 <= n_begin && n_begin <= n_end && m >= 0);
  if (m == 0 || n_begin == n_end) return;
  const kern::ActLayout L = kern::GetActLayout(wt, k);
  KernelsFor(wt).matmul(static_cast<const uint8_t*>(w), w_stride, n_begin, n_end,
                        static_cast<const uint8_t*>(prepared), L, m, y, ldy);
}

Status MatMul(TensorType wt, const void* w, size_t w_stride, int64_t n, const float* x, int64_t m, int64_t k,
              int64_t ldx, float* y, int64_t ldy) {
  LMS_RETURN_IF_ERROR(ValidateMatMul(wt, k));
  if (n < 0 || m < 0) return Status::InvalidArgument("matmul with negative dimensions");
  if (w_stride < RowBytes(wt, k)) return Status::InvalidArgument("weight row stride smaller than a row");
  if (m > 1 && (ldx < k || ldy < n)) return Status::InvalidArgument("matmul leading dimension too small");
  // 64-byte aligned scratch: over-allocate and round the pointer up.
  std::vector<uint8_t> scratch(ActivationBytes(wt, m, k) + 64);
  uint8_t* act = scratch.data() + ((64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64);
  PrepareActivations(wt, x, m, k, ldx, act);
  MatMulPrepared(wt, w, w_stride, 0, n, act, m, k, y, ldy);
  return Status::Ok();
}

}  // namespace lms
