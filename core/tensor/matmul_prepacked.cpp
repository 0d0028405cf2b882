// Prepacked weight layout for the 32-element block formats (Q8_0, Q4_0, Q4_1).
//
// Rows are taken 8 at a time (a group; the last group repeats its first row in the missing
// lanes). For each block b of the row length, a group stores one packed block:
//   fp16 d[8]               the 8 rows' scales, lane order
//   fp16 m[8]               Q4_1 only: the 8 rows' mins
//   chunk[g], 32 bytes each bytes 4g..4g+3 of every row's quants, rows in lane order
// Q8_0 has 8 chunks (its 32 int8 quants), Q4_0/Q4_1 have 4 (their 16 nibble bytes: the low
// nibbles are elements 4g..4g+3, the high nibbles elements 16+4g..16+4g+3). A 32-byte load of
// a chunk is then 4 elements of each of 8 output rows, ready for a lane-wise dot product.
#include <cassert>
#include <cstring>

#include "core/tensor/matmul.h"
#include "core/tensor/matmul_internal.h"

namespace lms {
namespace kern {

namespace {
struct PackShape {
  size_t scale_bytes;  // bytes of scales (and mins) at the start of a packed block
  int chunks;          // 32-byte chunks after them
  size_t src_block;    // bytes of one block in the file's layout
  size_t src_quants;   // offset of the quants inside a file block
};
PackShape ShapeOf(TensorType wt) {
  switch (wt) {
    case TensorType::kQ8_0: return {16, 8, 34, 2};
    case TensorType::kQ4_0: return {16, 4, 18, 2};
    case TensorType::kQ4_1: return {32, 4, 20, 4};
    default: return {0, 0, 0, 0};
  }
}
}  // namespace

size_t PackedGroupBytes(TensorType wt, int64_t k) {
  const PackShape s = ShapeOf(wt);
  return (s.scale_bytes + 32 * static_cast<size_t>(s.chunks)) * static_cast<size_t>(k / 32);
}

}  // namespace kern

bool CanPrepackWeights(TensorType wt) {
  return ActiveKernelIsa() == KernelIsa::kAvx2 &&
         (wt == TensorType::kQ8_0 || wt == TensorType::kQ4_0 || wt == TensorType::kQ4_1);
}

size_t PrepackedWeightBytes(TensorType wt, int64_t n, int64_t k) {
  return kern::PackedGroupBytes(wt, k) * static_cast<size_t>((n + 7) / 8);
}

void PrepackWeights(TensorType wt, const void* w, size_t w_stride, int64_t n, int64_t k, int64_t group_begin,
                    int64_t group_end, void* packed) {
  assert(ValidateMatMul(wt, k).ok() && n > 0);
  const kern::PackShape s = kern::ShapeOf(wt);
  assert(s.chunks > 0);
  const size_t packed_block = s.scale_bytes + 32 * static_cast<size_t>(s.chunks);
  const size_t group_bytes = kern::PackedGroupBytes(wt, k);
  const int64_t nb = k / 32;
  const auto* src = static_cast<const uint8_t*>(w);
  for (int64_t g = group_begin; g < group_end; ++g) {
    uint8_t* out = static_cast<uint8_t*>(packed) + static_cast<size_t>(g) * group_bytes;
    for (int r = 0; r < 8; ++r) {
      const int64_t j = g * 8 + r < n ? g * 8 + r : g * 8;
      const uint8_t* row = src + static_cast<size_t>(j) * w_stride;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + static_cast<size_t>(b) * s.src_block;
        uint8_t* dst = out + static_cast<size_t>(b) * packed_block;
        std::memcpy(dst + 2 * r, blk, 2);                                           // d
        if (wt == TensorType::kQ4_1) std::memcpy(dst + 16 + 2 * r, blk + 2, 2);     // m
        for (int c = 0; c < s.chunks; ++c) {
          std::memcpy(dst + s.scale_bytes + 32 * c + 4 * r, blk + s.src_quants + 4 * c, 4);
        }
      }
    }
  }
}

void MatMulPrepackedWeights(TensorType wt, const void* packed, int64_t n, int64_t n_begin, int64_t n_end,
                            const void* prepared, int64_t m, int64_t k, float* y, int64_t ldy) {
  assert(CanPrepackWeights(wt));
  assert(n_begin % 8 == 0 && 0 <= n_begin && n_begin <= n_end && n_end <= n);
  if (m == 0 || n_begin == n_end) return;
  const kern::ActLayout L = kern::GetActLayout(wt, k);
  kern::MatMulPrepackedAvx2(wt, static_cast<const uint8_t*>(packed), n, n_begin, n_end,
                            static_cast<const uint8_t*>(prepared), L, m, y, ldy);
}

}  // namespace lms
