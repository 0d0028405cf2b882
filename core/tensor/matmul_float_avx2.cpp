// AVX2 kernels for float weights (F32, F16, BF16) x f32 activations.
// Each output owns one 8-lane accumulator that sees k in steps of 8 (a zero-padded partial
// step last), whatever the tile shape: batch-invariant like the quantized kernels.
#include "core/tensor/matmul_avx2_common.h"
#include "core/tensor/matmul_internal.h"

namespace lms::kern {
namespace {

using namespace avx2;

enum class FW { kF32, kF16, kBF16 };

template <FW T>
constexpr size_t kElemBytes = T == FW::kF32 ? 4 : 2;

template <FW T>
inline __m256 Load8(const uint8_t* p) {
  if constexpr (T == FW::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (T == FW::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
}

// The last k % 8 elements, zero-padded to 8.
template <FW T>
inline __m256 LoadTail(const uint8_t* p, int n) {
  alignas(32) uint8_t tmp[32] = {};
  __builtin_memcpy(tmp, p, static_cast<size_t>(n) * kElemBytes<T>);
  return Load8<T>(tmp);
}

struct TileArgs {
  const uint8_t* w;
  size_t w_stride;
  const uint8_t* act;
  const ActLayout* L;
  float* y;
  int64_t ldy;
};

template <FW T, int R, int C>
void Tile(const TileArgs& t) {
  const ActLayout& L = *t.L;
  const float* a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = reinterpret_cast<const float*>(t.act + static_cast<size_t>(c) * L.stride);
  const uint8_t* w[R];
  LMS_UNROLL for (int r = 0; r < R; ++r) w[r] = t.w + static_cast<size_t>(r) * t.w_stride;
  __m256 acc[R][C];
  LMS_UNROLL for (int r = 0; r < R; ++r) LMS_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t k8 = L.k / 8 * 8;
  for (int64_t i = 0; i < k8; i += 8) {
    __m256 av[C];
    LMS_UNROLL for (int c = 0; c < C; ++c) av[c] = _mm256_loadu_ps(a[c] + i);
    LMS_UNROLL for (int r = 0; r < R; ++r) {
      const __m256 wv = Load8<T>(w[r] + static_cast<size_t>(i) * kElemBytes<T>);
      LMS_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(wv, av[c], acc[r][c]);
    }
  }
  if (k8 < L.k) {
    const int n = static_cast<int>(L.k - k8);
    __m256 av[C];
    LMS_UNROLL for (int c = 0; c < C; ++c) av[c] = LoadTail<FW::kF32>(reinterpret_cast<const uint8_t*>(a[c] + k8), n);
    LMS_UNROLL for (int r = 0; r < R; ++r) {
      const __m256 wv = LoadTail<T>(w[r] + static_cast<size_t>(k8) * kElemBytes<T>, n);
      LMS_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(wv, av[c], acc[r][c]);
    }
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) LMS_UNROLL for (int r = 0; r < R; ++r) t.y[c * t.ldy + r] = Hsum(acc[r][c]);
}

constexpr int kTileR = 4;
constexpr int kTileC = 3;
using TileFn = void (*)(const TileArgs&);

template <FW T, int R>
TileFn TileForC(int c) {
  switch (c) {
    case 1: return &Tile<T, R, 1>;
    case 2: return &Tile<T, R, 2>;
    default: return &Tile<T, R, 3>;
  }
}
template <FW T>
TileFn TileFor(int r, int c) {
  switch (r) {
    case 1: return TileForC<T, 1>(c);
    case 2: return TileForC<T, 2>(c);
    case 3: return TileForC<T, 3>(c);
    default: return TileForC<T, 4>(c);
  }
}

template <FW T>
void MatMulFloat(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                 int64_t m, float* y, int64_t ldy) {
  const size_t row_bytes = static_cast<size_t>(L.k) * kElemBytes<T>;
  int64_t chunk = 4 * kTileR;
  if (m > kTileC) chunk = Max<int64_t>(kTileR, static_cast<int64_t>((96 * 1024) / Max<size_t>(row_bytes, 1)) / kTileR * kTileR);
  for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
    const int64_t rows = Min(chunk, n1 - c0);
    for (int64_t i0 = 0; i0 < m; i0 += kTileC) {
      const int cc = static_cast<int>(Min<int64_t>(kTileC, m - i0));
      for (int64_t r0 = 0; r0 < rows; r0 += kTileR) {
        const int rr = static_cast<int>(Min<int64_t>(kTileR, rows - r0));
        TileArgs t{w + static_cast<size_t>(c0 + r0) * w_stride, w_stride, act + static_cast<size_t>(i0) * L.stride, &L,
                   y + i0 * ldy + c0 + r0, ldy};
        TileFor<T>(rr, cc)(t);
      }
    }
  }
}

}  // namespace

void MatMulF32Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                   int64_t m, float* y, int64_t ldy) {
  MatMulFloat<FW::kF32>(w, w_stride, n0, n1, act, L, m, y, ldy);
}
void MatMulF16Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                   int64_t m, float* y, int64_t ldy) {
  MatMulFloat<FW::kF16>(w, w_stride, n0, n1, act, L, m, y, ldy);
}
void MatMulBF16Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulFloat<FW::kBF16>(w, w_stride, n0, n1, act, L, m, y, ldy);
}

}  // namespace lms::kern
