// AVX2 kernels for the 32-element block formats: Q8_0, Q4_0, Q4_1 weights x Q8 activations.
//
// Both kernels below put 8 consecutive weight rows (8 output columns) in the 8 lanes of a vector
// and finish each block with the canonical lane-wise arithmetic of matmul_internal.h:
//     y = fma(float(isum_b) * d_act[b], d_w[b], y)   [Q4_1: then y = fma(m_w[b], s_act[b], y)]
// The exact integer block sums isum_b are computed two ways, which cannot differ (integers):
//
//  * Direct (few activation rows, e.g. generation): weights are read in place. Per row and
//    block, maddubs + madd give 8 partial int32 sums; a horizontal-add transpose turns the 8 rows'
//    partials into one vector of 8 block sums; the 8 rows' scales are transposed into lanes the
//    same way. Weights stream once, with a software prefetch of the next group of rows.
//  * Packed (many activation rows, e.g. prompt processing): a chunk of rows (~128 KiB) is first
//    repacked so that one 32-byte vector holds 4 consecutive elements of each of 8 rows. A dot
//    step is then maddubs(packed weights, 4 activation bytes broadcast to all lanes): no
//    horizontal work at all, and for the 4-bit types the int16 products of a whole block can be
//    summed before widening (|sum| <= 8 * 2 * 15 * 127 < 2^15). The repack is paid once per
//    chunk and amortized over all activation rows, while the chunk stays in L2.
//
// maddubs multiplies unsigned by signed bytes: nibbles are unsigned already; for Q8_0 we use
// |w| (correct as u8 even for w = -128) times sign(a, w) (a is never -128, so no overflow).
// Q4_0's "-8" is folded in exactly: isum = sum(q*a) - 8*sum(a).
// Batch invariance follows: every output gets the same integers and the same float operations
// in the same order whatever m is, whichever kernel or tile computed it.
#include "core/tensor/matmul_avx2_common.h"
#include "core/tensor/matmul_internal.h"
#include "core/tensor/quant_blocks.h"

namespace lms::kern {
namespace {

using namespace quant;
using namespace avx2;

enum class Q8W { kQ8_0, kQ4_0, kQ4_1 };

template <Q8W T>
struct Traits;
template <>
struct Traits<Q8W::kQ8_0> {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static constexpr size_t kQsOffset = 2;
};
template <>
struct Traits<Q8W::kQ4_0> {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  static constexpr size_t kQsOffset = 2;
};
template <>
struct Traits<Q8W::kQ4_1> {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_1);
  static constexpr size_t kQsOffset = 4;
};

constexpr int kGroup = 8;             // weight rows per vector (one per lane)
constexpr int kPackedBlockBytes = 256;  // one block of 8 rows, repacked
constexpr int kDirectC = 2;           // activation rows per direct tile
constexpr int kPackedC = 4;           // activation rows per packed tile
constexpr int64_t kPackMinRows = 6;   // use the packed kernel from this many activation rows

// 32 weight values of a block in element order: int8 for Q8_0, 0..15 for the nibble types.
template <Q8W T>
inline __m256i LoadBlock(const uint8_t* blk) {
  if constexpr (T == Q8W::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    // Broadcast the 16 bytes to both halves, shift the upper half right by 4, keep nibbles:
    // low half = elements 0..15 (low nibbles), high half = elements 16..31 (high nibbles).
    const __m256i v = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + Traits<T>::kQsOffset)));
    const __m256i shifted = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
  }
}

// Pairs of int16 products summed to 8 int32 partial sums of one (weight block, activation block).
template <Q8W T>
inline __m256i BlockPartials(__m256i w, __m256i a) {
  __m256i p;
  if constexpr (T == Q8W::kQ8_0) {
    p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
  } else {
    p = _mm256_maddubs_epi16(w, a);
  }
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Lane r of the result = sum of the 8 lanes of v[r].
inline __m256i TransposeSum(__m256i h01, __m256i h23, __m256i h45, __m256i h67) {
  const __m256i h0123 = _mm256_hadd_epi32(h01, h23);  // per 128-bit half: rows 0..3
  const __m256i h4567 = _mm256_hadd_epi32(h45, h67);
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                          _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

// Keeps v in a register as it is: stops the compiler from hoisting a whole block's products
// ahead of their accumulation (which spills most of them to the stack).
inline void Pin(__m256i& v) { asm volatile("" : "+x"(v)); }

inline __m256i Broadcast32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The 8 rows' fp16 scales (and Q4_1 mins) as floats, lane-ordered: dwv[b*8 + r].
template <Q8W T>
void GroupScales(const uint8_t* const rows[kGroup], int64_t nb, float* dwv, float* mwv) {
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < kGroup; ++r) {
      const uint8_t* blk = rows[r] + static_cast<size_t>(b) * Traits<T>::kBlockBytes;
      uint16_t h;
      __builtin_memcpy(&h, blk, 2);
      dwv[b * kGroup + r] = HalfToFloat(h);
      if constexpr (T == Q8W::kQ4_1) {
        __builtin_memcpy(&h, blk + 2, 2);
        mwv[b * kGroup + r] = HalfToFloat(h);
      }
    }
  }
}

// Activation row pointers of a tile.
struct ActRow {
  const int8_t* q;
  const float* d;
  const float* s;
  const int32_t* qsum;
};
inline ActRow GetActRow(const uint8_t* act, const ActLayout& L, int64_t i) {
  const uint8_t* row = act + static_cast<size_t>(i) * L.stride;
  return {reinterpret_cast<const int8_t*>(row + L.qs), reinterpret_cast<const float*>(row + L.d),
          reinterpret_cast<const float*>(row + L.s), reinterpret_cast<const int32_t*>(row + L.qsum)};
}

// The canonical float step for 8 outputs (lanes) of one activation row and block b, given the
// 8 rows' scales dw (and Q4_1 mins mw) for that block.
template <Q8W T>
inline __m256 Accumulate(__m256 acc, __m256i isum, const ActRow& a, int64_t b, __m256 dw, __m256 mw) {
  if constexpr (T == Q8W::kQ4_0) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_set1_epi32(a.qsum[b]), 3));
  const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a.d[b]));
  acc = _mm256_fmadd_ps(t, dw, acc);
  if constexpr (T == Q8W::kQ4_1) acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(a.s[b]), acc);
  return acc;
}

// The fp16 scale (and Q4_1 min) of block `off` of 8 rows, as lane vectors: the first dword of
// each block (d, then m or two quant bytes) is loaded per row and transposed into lanes.
template <Q8W T>
inline void LoadGroupScales(const uint8_t* const rows[kGroup], size_t off, __m256* dw, __m256* mw) {
  __m128i v[kGroup];
  LMS_UNROLL for (int r = 0; r < kGroup; ++r) {
    int32_t x;
    __builtin_memcpy(&x, rows[r] + off, 4);
    v[r] = _mm_cvtsi32_si128(x);
  }
  const __m128i r0123 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[0], v[1]), _mm_unpacklo_epi32(v[2], v[3]));
  const __m128i r4567 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(v[4], v[5]), _mm_unpacklo_epi32(v[6], v[7]));
  const __m128i low16 = _mm_set1_epi32(0xFFFF);
  *dw = _mm256_cvtph_ps(_mm_packus_epi32(_mm_and_si128(r0123, low16), _mm_and_si128(r4567, low16)));
  if constexpr (T == Q8W::kQ4_1) {
    *mw = _mm256_cvtph_ps(_mm_packus_epi32(_mm_srli_epi32(r0123, 16), _mm_srli_epi32(r4567, 16)));
  } else {
    *mw = _mm256_setzero_ps();
  }
}

inline void StoreLanes(float* y, __m256 v, int valid) {
  if (valid == kGroup) {
    _mm256_storeu_ps(y, v);
  } else {
    alignas(32) float tmp[kGroup];
    _mm256_store_ps(tmp, v);
    for (int r = 0; r < valid; ++r) y[r] = tmp[r];
  }
}

// The 8 int32 block sums (one per lane, i.e. weight row) of one Q8_0 block of 8 interleaved
// rows (8 chunks of 4 elements per row) with C activation rows.
template <int C>
inline void Q8BlockSums(const __m256i* q, const ActRow* a, int64_t b, __m256i* sum) {
  const __m256i ones = _mm256_set1_epi16(1);
  LMS_UNROLL for (int g = 0; g < 8; ++g) {
    const __m256i wv = _mm256_loadu_si256(q + g);
    const __m256i wu = _mm256_abs_epi8(wv);
    LMS_UNROLL for (int c = 0; c < C; ++c) {
      const __m256i av = Broadcast32(a[c].q + b * kQK + 4 * g);
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wu, _mm256_sign_epi8(av, wv)), ones);
      sum[c] = g == 0 ? p : _mm256_add_epi32(sum[c], p);
      Pin(sum[c]);
    }
  }
}

// ---- direct kernel: 8 weight rows in place x C activation rows --------------------------------

// `next` (may be null): the first row of the group that comes after this one, to prefetch.
template <Q8W T, int C>
void DirectTile(const uint8_t* const rows[kGroup], size_t w_stride, const uint8_t* next, const uint8_t* act,
                const ActLayout& L, int64_t i0, float* y, int64_t ldy, int valid) {
  ActRow a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = GetActRow(act, L, i0 + c);
  __m256 acc[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < L.blocks; ++b) {
    const size_t off = static_cast<size_t>(b) * Traits<T>::kBlockBytes;
    if (next != nullptr && (off & 63) < Traits<T>::kBlockBytes) {
      // This block starts a new cache line of each row: fetch the same line of the next group.
      LMS_UNROLL for (int r = 0; r < kGroup; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * w_stride + off), _MM_HINT_T0);
    }
    __m256i av[C];
    LMS_UNROLL for (int c = 0; c < C; ++c) av[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[c].q + b * kQK));
    __m256 dw, mw;
    LoadGroupScales<T>(rows, off, &dw, &mw);
    __m256i h[C][4];
    LMS_UNROLL for (int rp = 0; rp < 4; ++rp) {
      const __m256i w0 = LoadBlock<T>(rows[2 * rp] + off);
      const __m256i w1 = LoadBlock<T>(rows[2 * rp + 1] + off);
      LMS_UNROLL for (int c = 0; c < C; ++c) {
        h[c][rp] = _mm256_hadd_epi32(BlockPartials<T>(w0, av[c]), BlockPartials<T>(w1, av[c]));
      }
    }
    LMS_UNROLL for (int c = 0; c < C; ++c) {
      acc[c] = Accumulate<T>(acc[c], TransposeSum(h[c][0], h[c][1], h[c][2], h[c][3]), a[c], b, dw, mw);
    }
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) StoreLanes(y + (i0 + c) * ldy, acc[c], valid);
}

template <Q8W T>
void MatMulDirect(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                  int64_t m, float* y, int64_t ldy) {
  for (int64_t j0 = n0; j0 < n1; j0 += kGroup) {
    const int valid = static_cast<int>(Min<int64_t>(kGroup, n1 - j0));
    const uint8_t* rows[kGroup];
    for (int r = 0; r < kGroup; ++r) rows[r] = w + static_cast<size_t>(j0 + (r < valid ? r : 0)) * w_stride;
    // Prefetch the next group only when it is complete (never read past the range's rows).
    const uint8_t* next = j0 + 2 * kGroup <= n1 ? w + static_cast<size_t>(j0 + kGroup) * w_stride : nullptr;
    for (int64_t i0 = 0; i0 < m; i0 += kDirectC) {
      if (m - i0 >= 2) {
        DirectTile<T, 2>(rows, w_stride, next, act, L, i0, y + j0, ldy, valid);
      } else {
        DirectTile<T, 1>(rows, w_stride, next, act, L, i0, y + j0, ldy, valid);
      }
    }
  }
}

// ---- packed kernel ------------------------------------------------------------------------------

// Repacks block b of 8 rows: out[g] (32 bytes) = elements 4g..4g+3 of rows 0..7, in lane order.
template <Q8W T>
void PackGroup(const uint8_t* const rows[kGroup], int64_t nb, uint8_t* dst) {
  for (int64_t b = 0; b < nb; ++b) {
    const size_t off = static_cast<size_t>(b) * Traits<T>::kBlockBytes;
    __m256i u[kGroup];
    LMS_UNROLL for (int r = 0; r < kGroup; ++r) u[r] = LoadBlock<T>(rows[r] + off);
    // 8x8 transpose of 32-bit elements.
    const __m256i t0 = _mm256_unpacklo_epi32(u[0], u[1]), t1 = _mm256_unpackhi_epi32(u[0], u[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(u[2], u[3]), t3 = _mm256_unpackhi_epi32(u[2], u[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(u[4], u[5]), t5 = _mm256_unpackhi_epi32(u[4], u[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(u[6], u[7]), t7 = _mm256_unpackhi_epi32(u[6], u[7]);
    const __m256i s0 = _mm256_unpacklo_epi64(t0, t2), s1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i s2 = _mm256_unpacklo_epi64(t1, t3), s3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i s4 = _mm256_unpacklo_epi64(t4, t6), s5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i s6 = _mm256_unpacklo_epi64(t5, t7), s7 = _mm256_unpackhi_epi64(t5, t7);
    __m256i* out = reinterpret_cast<__m256i*>(dst + b * kPackedBlockBytes);
    _mm256_storeu_si256(out + 0, _mm256_permute2x128_si256(s0, s4, 0x20));
    _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(s1, s5, 0x20));
    _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(s2, s6, 0x20));
    _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(s3, s7, 0x20));
    _mm256_storeu_si256(out + 4, _mm256_permute2x128_si256(s0, s4, 0x31));
    _mm256_storeu_si256(out + 5, _mm256_permute2x128_si256(s1, s5, 0x31));
    _mm256_storeu_si256(out + 6, _mm256_permute2x128_si256(s2, s6, 0x31));
    _mm256_storeu_si256(out + 7, _mm256_permute2x128_si256(s3, s7, 0x31));
  }
}

template <Q8W T, int C>
void PackedTile(const uint8_t* pk, const float* dwv, const float* mwv, const uint8_t* act, const ActLayout& L,
                int64_t i0, float* y, int64_t ldy, int valid) {
  ActRow a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = GetActRow(act, L, i0 + c);
  __m256 acc[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < L.blocks; ++b) {
    const __m256i* pb = reinterpret_cast<const __m256i*>(pk + b * kPackedBlockBytes);
    __m256i sum[C];
    if constexpr (T == Q8W::kQ8_0) {
      Q8BlockSums<C>(pb, a, b, sum);
    } else {
      LMS_UNROLL for (int g = 0; g < 8; ++g) {
        const __m256i wv = _mm256_loadu_si256(pb + g);
        LMS_UNROLL for (int c = 0; c < C; ++c) {
          const __m256i p = _mm256_maddubs_epi16(wv, Broadcast32(a[c].q + b * kQK + 4 * g));
          sum[c] = g == 0 ? p : _mm256_add_epi16(sum[c], p);
          Pin(sum[c]);
        }
      }
      LMS_UNROLL for (int c = 0; c < C; ++c) sum[c] = _mm256_madd_epi16(sum[c], ones);
    }
    const __m256 dw = _mm256_loadu_ps(dwv + b * kGroup);
    const __m256 mw = T == Q8W::kQ4_1 ? _mm256_loadu_ps(mwv + b * kGroup) : _mm256_setzero_ps();
    LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = Accumulate<T>(acc[c], sum[c], a[c], b, dw, mw);
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) StoreLanes(y + (i0 + c) * ldy, acc[c], valid);
}

template <Q8W T, int C>
void PackedTiles(const uint8_t* pk, const float* dwv, const float* mwv, const uint8_t* act, const ActLayout& L,
                 int64_t i0, int cc, float* y, int64_t ldy, int valid) {
  if constexpr (C > 1) {
    if (cc < C) return PackedTiles<T, C - 1>(pk, dwv, mwv, act, L, i0, cc, y, ldy, valid);
  }
  PackedTile<T, C>(pk, dwv, mwv, act, L, i0, y, ldy, valid);
}

template <Q8W T>
void MatMulPacked(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                  int64_t m, float* y, int64_t ldy) {
  const int64_t nb = L.blocks;
  const int64_t group_bytes = nb * kPackedBlockBytes;
  const int64_t groups_per_chunk = Max<int64_t>(1, (128 * 1024) / group_bytes);
  // Scratch: packed weights, then lane-ordered scales and mins, per group of the chunk.
  const int64_t group_floats = group_bytes / 4 + 2 * kGroup * nb;
  float* scratch = ThreadScratchFloats(static_cast<size_t>(groups_per_chunk * group_floats));
  for (int64_t c0 = n0; c0 < n1; c0 += groups_per_chunk * kGroup) {
    const int64_t groups = Min<int64_t>(groups_per_chunk, (n1 - c0 + kGroup - 1) / kGroup);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t j0 = c0 + g * kGroup;
      const int valid = static_cast<int>(Min<int64_t>(kGroup, n1 - j0));
      const uint8_t* rows[kGroup];
      for (int r = 0; r < kGroup; ++r) rows[r] = w + static_cast<size_t>(j0 + (r < valid ? r : 0)) * w_stride;
      float* base = scratch + g * group_floats;
      PackGroup<T>(rows, nb, reinterpret_cast<uint8_t*>(base));
      GroupScales<T>(rows, nb, base + group_bytes / 4, base + group_bytes / 4 + kGroup * nb);
    }
    for (int64_t i0 = 0; i0 < m; i0 += kPackedC) {
      const int cc = static_cast<int>(Min<int64_t>(kPackedC, m - i0));
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t j0 = c0 + g * kGroup;
        const int valid = static_cast<int>(Min<int64_t>(kGroup, n1 - j0));
        const float* base = scratch + g * group_floats;
        PackedTiles<T, kPackedC>(reinterpret_cast<const uint8_t*>(base), base + group_bytes / 4,
                                 base + group_bytes / 4 + kGroup * nb, act, L, i0, cc, y + j0, ldy, valid);
      }
    }
  }
}

// ---- prepacked weights (see PackWeightGroups in matmul_prepacked.cpp) -------------------------

// One packed block of 8 rows: fp16 scales d[8] (Q4_1: then mins m[8]), then 32-byte chunks;
// chunk g holds bytes 4g..4g+3 of each row's quants in lane order. Q8_0 has 8 chunks (int8
// elements 4g..4g+3); the nibble types have 4 (low nibbles: elements 4g..4g+3, high nibbles:
// elements 16+4g..16+4g+3). The integer sums are the same exact integers as above, and the
// float steps are Accumulate's: results equal the other kernels' bit for bit.
template <Q8W T, int C>
void PrepackedTile(const uint8_t* gp, const uint8_t* act, const ActLayout& L, int64_t i0, float* y, int64_t ldy,
                   int valid) {
  constexpr size_t kScaleBytes = T == Q8W::kQ4_1 ? 32 : 16;
  constexpr int kChunks = T == Q8W::kQ8_0 ? 8 : 4;
  constexpr size_t kBlockBytes = kScaleBytes + 32 * kChunks;
  ActRow a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = GetActRow(act, L, i0 + c);
  __m256 acc[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < L.blocks; ++b) {
    const uint8_t* pb = gp + static_cast<size_t>(b) * kBlockBytes;
    const __m256i* q = reinterpret_cast<const __m256i*>(pb + kScaleBytes);
    __m256i sum[C];
    if constexpr (T == Q8W::kQ8_0) {
      Q8BlockSums<C>(q, a, b, sum);
    } else {
      // int16 sums of a whole block cannot overflow: 8 * 2 * 15 * 127 < 2^15.
      LMS_UNROLL for (int g = 0; g < 4; ++g) {
        const __m256i v = _mm256_loadu_si256(q + g);
        const __m256i lo = _mm256_and_si256(v, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        LMS_UNROLL for (int c = 0; c < C; ++c) {
          const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Broadcast32(a[c].q + b * kQK + 4 * g)),
                                             _mm256_maddubs_epi16(hi, Broadcast32(a[c].q + b * kQK + 16 + 4 * g)));
          sum[c] = g == 0 ? p : _mm256_add_epi16(sum[c], p);
          Pin(sum[c]);
        }
      }
      LMS_UNROLL for (int c = 0; c < C; ++c) sum[c] = _mm256_madd_epi16(sum[c], ones);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb)));
    const __m256 mw = T == Q8W::kQ4_1 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + 16)))
                                      : _mm256_setzero_ps();
    LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = Accumulate<T>(acc[c], sum[c], a[c], b, dw, mw);
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) StoreLanes(y + (i0 + c) * ldy, acc[c], valid);
}

template <Q8W T, int C>
void PrepackedTiles(const uint8_t* gp, const uint8_t* act, const ActLayout& L, int64_t i0, int cc, float* y,
                    int64_t ldy, int valid) {
  if constexpr (C > 1) {
    if (cc < C) return PrepackedTiles<T, C - 1>(gp, act, L, i0, cc, y, ldy, valid);
  }
  PrepackedTile<T, C>(gp, act, L, i0, y, ldy, valid);
}

// Columns [n0, n1) of n; n0 is a multiple of 8. Groups are visited in chunks that stay in L2
// while every activation row passes over them.
template <Q8W T>
void MatMulPrepacked(const uint8_t* packed, int64_t n, int64_t n0, int64_t n1, const uint8_t* act,
                     const ActLayout& L, int64_t m, float* y, int64_t ldy) {
  const size_t group_bytes = PackedGroupBytes(T == Q8W::kQ8_0 ? TensorType::kQ8_0
                                              : T == Q8W::kQ4_0 ? TensorType::kQ4_0
                                                                : TensorType::kQ4_1,
                                              L.k);
  const int64_t groups_per_chunk = m <= kPackedC ? (n1 - n0 + kGroup - 1) / kGroup
                                                 : Max<int64_t>(1, static_cast<int64_t>((128 * 1024) / group_bytes));
  const int64_t g_end = (n1 + kGroup - 1) / kGroup;
  for (int64_t c0 = n0 / kGroup; c0 < g_end; c0 += groups_per_chunk) {
    const int64_t c1 = Min<int64_t>(g_end, c0 + groups_per_chunk);
    for (int64_t i0 = 0; i0 < m; i0 += kPackedC) {
      const int cc = static_cast<int>(Min<int64_t>(kPackedC, m - i0));
      for (int64_t g = c0; g < c1; ++g) {
        const int64_t j0 = g * kGroup;
        const int valid = static_cast<int>(Min<int64_t>(kGroup, Min<int64_t>(n, n1) - j0));
        PrepackedTiles<T, kPackedC>(packed + static_cast<size_t>(g) * group_bytes, act, L, i0, cc, y + j0, ldy,
                                    valid);
      }
    }
  }
}

template <Q8W T>
void MatMulQ8Family(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  if (m >= kPackMinRows) {
    MatMulPacked<T>(w, w_stride, n0, n1, act, L, m, y, ldy);
  } else {
    MatMulDirect<T>(w, w_stride, n0, n1, act, L, m, y, ldy);
  }
}

}  // namespace

void MatMulQ8_0Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulQ8Family<Q8W::kQ8_0>(w, w_stride, n0, n1, act, L, m, y, ldy);
}
void MatMulQ4_0Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulQ8Family<Q8W::kQ4_0>(w, w_stride, n0, n1, act, L, m, y, ldy);
}
void MatMulQ4_1Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulQ8Family<Q8W::kQ4_1>(w, w_stride, n0, n1, act, L, m, y, ldy);
}

void MatMulPrepackedAvx2(TensorType wt, const uint8_t* packed, int64_t n, int64_t n0, int64_t n1, const uint8_t* act,
                         const ActLayout& L, int64_t m, float* y, int64_t ldy) {
  switch (wt) {
    case TensorType::kQ8_0: return MatMulPrepacked<Q8W::kQ8_0>(packed, n, n0, n1, act, L, m, y, ldy);
    case TensorType::kQ4_0: return MatMulPrepacked<Q8W::kQ4_0>(packed, n, n0, n1, act, L, m, y, ldy);
    case TensorType::kQ4_1: return MatMulPrepacked<Q8W::kQ4_1>(packed, n, n0, n1, act, L, m, y, ldy);
    default: return;
  }
}

}  // namespace lms::kern
