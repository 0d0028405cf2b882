// The trainer's CUDA ops (gpu/train/train_kernels.h) against the CPU ops of core/train on the
// same random inputs. Tolerances:
//  - exact (0) where both sides do the same float operations in the same order: the embedding
//    gather and scatter, the bf16 conversion;
//  - max error relative to max |ref| below 1e-5 for the row and element-wise ops (RMSNorm,
//    RoPE, SwiGLU): the same formulas, but reductions summed in another order and expf against
//    the CPU's exp differ in the last bits;
//  - NMSE below 1e-10 for fp32 products (cuBLAS with fp32 compute, no TF32) and attention in
//    kF32: only the order of the sums differs, ~1e-7 relative per element; attention in kBF16
//    runs its products on TF32 tensor cores (operands rounded to 10 mantissa bits): below 1e-5;
//  - NMSE below 1e-4 for bf16 products against the fp32 CPU: rounding both operands to 8 bits
//    of mantissa gives ~3e-6; and below 1e-9 against the CPU run on bf16-rounded inputs, which
//    checks that only the operand rounding differs (tensor cores' fp32 accumulation is not
//    quite IEEE, hence a little above the fp32 bound).
// Backward ops run on gradients that already hold values, to check that they accumulate. Every
// case skips without a GPU.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/tensor/fp16.h"
#include "core/train/optimizer.h"
#include "core/train/train_ops.h"
#include "core/util/thread_pool.h"
#include "gpu/train/train_kernels.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

using gpu::train::Activation;
using gpu::train::GemmPrecision;
using gpu::train::TrainKernels;

constexpr double kExactTol = 0.0;
constexpr double kRowOpTol = 1e-5;    // max |err| / max |ref|
constexpr double kF32Nmse = 1e-10;
constexpr double kBf16Nmse = 1e-4;
constexpr double kTf32Nmse = 1e-5;       // attention products in kBF16 (TF32 operands)
constexpr double kBf16RoundedNmse = 1e-9;  // bf16 products against fp32 on bf16-rounded inputs

#define REQUIRE_OK(expr)              \
  do {                                \
    const ::lms::Status st_ = (expr); \
    INFO(st_.ToString());             \
    REQUIRE(st_.ok());                \
  } while (0)

// A device copy of a host vector; freed at scope exit.
template <typename T>
class DeviceVec {
 public:
  explicit DeviceVec(const std::vector<T>& h) : n_(h.size()) {
    REQUIRE(cudaMalloc(&p_, bytes()) == cudaSuccess);
    REQUIRE(cudaMemcpy(p_, h.data(), bytes(), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);  // pageable copies may still be in flight
  }
  explicit DeviceVec(size_t n) : DeviceVec(std::vector<T>(n)) {}
  ~DeviceVec() { cudaFree(p_); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;

  T* get() const { return p_; }
  size_t bytes() const { return n_ * sizeof(T); }
  std::vector<T> Read() const {
    std::vector<T> h(n_);
    REQUIRE(cudaMemcpy(h.data(), p_, bytes(), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  void Write(const std::vector<T>& h) {
    REQUIRE(h.size() == n_);
    REQUIRE(cudaMemcpy(p_, h.data(), bytes(), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// TrainKernels on a stream of its own.
struct Gpu {
  explicit Gpu(GemmPrecision p) {
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    auto r = TrainKernels::Create(stream, p);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    k = std::move(r).value();
  }
  ~Gpu() {
    k.reset();
    cudaStreamDestroy(stream);
  }
  template <typename T>
  std::vector<T> Read(const DeviceVec<T>& d) {
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    return d.Read();
  }
  TrainKernels* operator->() { return k.get(); }

  cudaStream_t stream = nullptr;
  std::unique_ptr<TrainKernels> k;
};

double MaxRelErr(const std::vector<float>& ref, const std::vector<float>& got) {
  REQUIRE(ref.size() == got.size());
  double err = 0, mag = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(ref[i]) - got[i]));
    mag = std::max(mag, std::abs(static_cast<double>(ref[i])));
  }
  return mag > 0 ? err / mag : err;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<int32_t> RandomTokens(size_t n, int32_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  for (size_t i = 3; i < n; i += 5) t[i] = t[i / 2];  // repeats, so rows share a token
  return t;
}

// Sequences, positions, query heads, KV heads, head dim.
struct AttentionShape {
  int64_t B, T, H, KV, hd;
  int64_t qn() const { return B * T * H * hd; }
  int64_t kvn() const { return B * T * KV * hd; }
  int64_t an() const { return B * H * T * T; }
};

// Random q, k, v and dout (seeds seed .. seed + 3) and core's CPU attention of them.
struct CpuAttention {
  std::vector<float> q, k, v, dout, out, att, dq, dk, dv;
};
CpuAttention CpuAttentionOf(ThreadPool& pool, const AttentionShape& s, uint64_t seed) {
  CpuAttention a;
  a.q = RandomFloats(s.qn(), seed);
  a.k = RandomFloats(s.kvn(), seed + 1);
  a.v = RandomFloats(s.kvn(), seed + 2);
  a.dout = RandomFloats(s.qn(), seed + 3);
  a.out.resize(s.qn());
  a.att.resize(s.an());
  a.dq.resize(s.qn());
  a.dk.resize(s.kvn());
  a.dv.resize(s.kvn());
  train::AttentionForward(pool, a.out.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), s.B, s.T, s.H, s.KV,
                          s.hd);
  train::AttentionBackward(pool, a.dq.data(), a.dk.data(), a.dv.data(), a.dout.data(), a.q.data(), a.k.data(),
                           a.v.data(), a.att.data(), s.B, s.T, s.H, s.KV, s.hd);
  return a;
}

std::vector<float> RoundedToBf16(std::vector<float> v) {
  for (float& x : v) x = Bf16ToFp32(Fp32ToBf16(x));
  return v;
}

std::vector<uint16_t> Bf16Bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = Fp32ToBf16(v[i]);
  return b;
}

std::vector<float> FromBf16(const std::vector<uint16_t>& b) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = Bf16ToFp32(b[i]);
  return v;
}

Activation F32(const float* p) { return Activation{p, nullptr}; }

// The largest |bf16 − fp32| over the elements, in units of half a bf16 step at the fp32 value,
// after 1e-5 of the largest |fp32| is forgiven (a product that writes bf16 may sum in another
// order than the fp32 one). 1.0 is rounding to nearest; truncation or a wrong element shows as
// more.
double MaxBf16RoundingErr(const std::vector<float>& f32, const std::vector<uint16_t>& b16) {
  REQUIRE(f32.size() == b16.size());
  double scale = 0, worst = 0;
  for (float x : f32) scale = std::max(scale, static_cast<double>(std::abs(x)));
  for (size_t i = 0; i < f32.size(); ++i) {
    const double x = f32[i], half_step = std::ldexp(1.0, std::ilogb(x == 0 ? 1e-30 : x) - 8);
    const double err = std::max(0.0, std::abs(Bf16ToFp32(b16[i]) - x) - 1e-5 * scale);
    worst = std::max(worst, err / half_step);
  }
  return worst;
}

}  // namespace

TEST_CASE("train kernels: bf16 conversion rounds to nearest even", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  Gpu g(GemmPrecision::kBF16);
  std::vector<float> x = RandomFloats(1001, 1, 3.0f);
  x[0] = 1.0f + 1.0f / 256;  // a tie: rounds down to even
  x[1] = 1.0f + 3.0f / 256;  // a tie: rounds up to even
  DeviceVec<float> dx(x);
  DeviceVec<uint16_t> out(x.size());
  REQUIRE_OK(g->ToBf16(out.get(), dx.get(), static_cast<int64_t>(x.size())));
  const auto got = g.Read(out);
  size_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) mismatches += got[i] != Fp32ToBf16(x[i]);
  CHECK(mismatches == 0);
}

TEST_CASE("train kernels: embedding forward and backward", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  Gpu g(GemmPrecision::kF32);
  struct Shape {
    int64_t BT, C, V;
  };
  for (const Shape s : {Shape{1, 33, 300}, Shape{37, 33, 300}, Shape{37, 576, 300}, Shape{256, 576, 4096}}) {
    CAPTURE(s.BT, s.C, s.V);
    const auto tokens = RandomTokens(s.BT, static_cast<int32_t>(s.V), 2);
    const auto wte = RandomFloats(s.V * s.C, 3);
    const auto dout = RandomFloats(s.BT * s.C, 4);
    const auto dwte0 = RandomFloats(s.V * s.C, 5, 0.1f);  // backward accumulates onto this
    std::vector<float> out(s.BT * s.C), dwte = dwte0;
    train::EmbeddingForward(pool, out.data(), tokens.data(), wte.data(), s.BT, s.C);
    train::EmbeddingBackward(pool, dwte.data(), dout.data(), tokens.data(), s.BT, s.C);

    DeviceVec<int32_t> d_tokens(tokens);
    DeviceVec<float> d_wte(wte), d_out(out.size()), d_dout(dout), d_dwte(dwte0);
    REQUIRE_OK(g->EmbeddingForward(d_out.get(), d_tokens.get(), d_wte.get(), s.BT, s.C));
    REQUIRE_OK(g->EmbeddingBackward(d_dwte.get(), d_dout.get(), tokens.data(), s.BT, s.C));
    CHECK(MaxRelErr(out, g.Read(d_out)) == kExactTol);
    const auto got = g.Read(d_dwte);
    CHECK(MaxRelErr(dwte, got) == kExactTol);  // the same additions in the same order

    d_dwte.Write(dwte0);  // determinism: a second run gives the same bits
    REQUIRE_OK(g->EmbeddingBackward(d_dwte.get(), d_dout.get(), tokens.data(), s.BT, s.C));
    CHECK(BitwiseEqual(got, g.Read(d_dwte)));
  }
}

TEST_CASE("train kernels: RMSNorm forward and backward", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  Gpu g(GemmPrecision::kF32);
  // BT: one chunk of the backward's, chunks of 4 rows with a last one of 1, many chunks; C: a
  // thread's columns all kept in registers, or (2100 > 8 · 256) some summed in memory.
  for (int64_t BT : {1, 37, 256}) {
    for (int64_t C : {33, 576, 2100}) {
      CAPTURE(BT, C);
      const auto inp = RandomFloats(BT * C, 6, 2.0f), w = RandomFloats(C, 7), dout = RandomFloats(BT * C, 8);
      const auto dinp0 = RandomFloats(BT * C, 9, 0.5f), dw0 = RandomFloats(C, 10, 0.5f);
      std::vector<float> out(BT * C), rstd(BT), dinp = dinp0, dw = dw0;
      train::RmsNormForward(pool, out.data(), rstd.data(), inp.data(), w.data(), BT, C, 1e-5f);
      train::RmsNormBackward(pool, dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), BT, C);

      DeviceVec<float> d_inp(inp), d_w(w), d_dout(dout), d_out(out.size()), d_rstd(rstd.size());
      DeviceVec<float> d_dinp(dinp0), d_dw(dw0);
      REQUIRE_OK(g->RmsNormForward(d_out.get(), d_rstd.get(), d_inp.get(), d_w.get(), BT, C, 1e-5f));
      REQUIRE_OK(g->RmsNormBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(), d_rstd.get(),
                                    BT, C));
      CHECK(MaxRelErr(rstd, g.Read(d_rstd)) < kRowOpTol);
      const auto got_out = g.Read(d_out);
      CHECK(MaxRelErr(out, got_out) < kRowOpTol);
      // The output in bf16 alone: the fp32 output's bits rounded.
      DeviceVec<uint16_t> d_out16(out.size());
      REQUIRE_OK(g->RmsNormForward(nullptr, d_rstd.get(), d_inp.get(), d_w.get(), BT, C, 1e-5f, d_out16.get()));
      const auto out16 = g.Read(d_out16);
      size_t mismatches = 0;
      for (size_t i = 0; i < out16.size(); ++i) mismatches += out16[i] != Fp32ToBf16(got_out[i]);
      CHECK(mismatches == 0);
      const auto got_dinp = g.Read(d_dinp), got_dw = g.Read(d_dw);
      CHECK(MaxRelErr(dinp, got_dinp) < kRowOpTol);
      CHECK(MaxRelErr(dw, got_dw) < kRowOpTol);

      d_dinp.Write(dinp0);
      d_dw.Write(dw0);
      REQUIRE_OK(g->RmsNormBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(), d_rstd.get(),
                                    BT, C));
      CHECK(BitwiseEqual(got_dinp, g.Read(d_dinp)));
      CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
      // With dinp's bf16 copy: the same dinp and dw, and the copy is dinp's bits rounded.
      d_dinp.Write(dinp0);
      d_dw.Write(dw0);
      DeviceVec<uint16_t> d_dinp16(dinp0.size());
      REQUIRE_OK(g->RmsNormBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(), d_rstd.get(),
                                    BT, C, d_dinp16.get()));
      CHECK(BitwiseEqual(got_dinp, g.Read(d_dinp)));
      CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
      CHECK(g.Read(d_dinp16) == Bf16Bits(got_dinp));

      // The residual add fused in front: sum = a + b, then the norm of sum; the same bits as the
      // add and the norm apart, with the addend in fp32 or in bf16.
      const auto addend = RandomFloats(BT * C, 11, 1.5f);
      for (bool addend16 : {false, true}) {
        CAPTURE(addend16);
        const std::vector<float> add = addend16 ? RoundedToBf16(addend) : addend;
        DeviceVec<float> d_add(add), d_sum(add.size()), d_fout(out.size()), d_frstd(rstd.size());
        DeviceVec<uint16_t> d_add16(Bf16Bits(addend)), d_fout16(out.size());
        REQUIRE_OK(g->Add(d_sum.get(), d_inp.get(), F32(d_add.get()), BT * C));  // apart
        REQUIRE_OK(g->RmsNormForward(d_out.get(), d_rstd.get(), d_sum.get(), d_w.get(), BT, C, 1e-5f, d_out16.get()));
        const auto want_sum = g.Read(d_sum), want_out = g.Read(d_out), want_rstd = g.Read(d_rstd);
        const auto want_out16 = g.Read(d_out16);
        d_sum.Write(std::vector<float>(add.size(), 0.0f));
        const Activation a = addend16 ? Activation{nullptr, d_add16.get()} : F32(d_add.get());
        if (addend16) {  // Add takes the bf16 addend too
          REQUIRE_OK(g->Add(d_sum.get(), d_inp.get(), a, BT * C));
          CHECK(BitwiseEqual(want_sum, g.Read(d_sum)));
        }
        REQUIRE_OK(g->AddRmsNormForward(d_sum.get(), d_fout.get(), d_frstd.get(), d_inp.get(), a, d_w.get(), BT, C,
                                        1e-5f, d_fout16.get()));
        CHECK(BitwiseEqual(want_sum, g.Read(d_sum)));
        CHECK(BitwiseEqual(want_out, g.Read(d_fout)));
        CHECK(BitwiseEqual(want_rstd, g.Read(d_frstd)));
        CHECK(want_out16 == g.Read(d_fout16));
      }
      CHECK_FALSE(g->AddRmsNormForward(d_out.get(), d_out.get(), d_rstd.get(), d_inp.get(), Activation{}, d_w.get(),
                                       BT, C, 1e-5f)
                      .ok());
    }
  }
}

TEST_CASE("train kernels: matrix products in fp32 and bf16", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  struct Shape {
    int64_t BT, K, N;
  };
  for (GemmPrecision prec : {GemmPrecision::kF32, GemmPrecision::kBF16}) {
    Gpu g(prec);
    for (const Shape s : {Shape{37, 33, 47}, Shape{1, 64, 300}, Shape{256, 576, 1536}, Shape{256, 576, 4096}}) {
      for (bool with_bf16_copy : {false, true}) {
        if (prec == GemmPrecision::kF32 && with_bf16_copy) continue;
        CAPTURE(gpu::train::GemmPrecisionName(prec), s.BT, s.K, s.N, with_bf16_copy);
        const auto inp = RandomFloats(s.BT * s.K, 11), w = RandomFloats(s.N * s.K, 12, 0.05f);
        const auto dout = RandomFloats(s.BT * s.N, 13);
        const auto dinp0 = RandomFloats(s.BT * s.K, 14, 0.5f), dw0 = RandomFloats(s.N * s.K, 15, 0.5f);
        // The reference: fp32 on the inputs as they are, and (bf16) on the rounded inputs.
        std::vector<float> out(s.BT * s.N), dinp = dinp0, dw = dw0;
        train::MatMulForward(pool, out.data(), inp.data(), w.data(), s.BT, s.K, s.N);
        train::MatMulBackward(pool, dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), s.BT, s.K, s.N);
        const bool bf16 = prec == GemmPrecision::kBF16;
        const auto inp_r = RoundedToBf16(inp), w_r = RoundedToBf16(w), dout_r = RoundedToBf16(dout);
        std::vector<float> out_r(out.size()), dinp_r = dinp0, dw_r = dw0;
        if (bf16) {
          train::MatMulForward(pool, out_r.data(), inp_r.data(), w_r.data(), s.BT, s.K, s.N);
          train::MatMulBackward(pool, dinp_r.data(), dw_r.data(), dout_r.data(), inp_r.data(), w_r.data(), s.BT, s.K,
                                s.N);
        }

        DeviceVec<float> d_inp(inp), d_w(w), d_dout(dout), d_out(out.size()), d_dinp(dinp0), d_dw(dw0);
        DeviceVec<uint16_t> d_wb(w.size());
        gpu::train::Weight wt{d_w.get(), nullptr};
        if (with_bf16_copy) {
          REQUIRE_OK(g->ToBf16(d_wb.get(), d_w.get(), static_cast<int64_t>(w.size())));
          wt.bf16 = d_wb.get();
        }
        REQUIRE_OK(g->MatMulForward(d_out.get(), d_inp.get(), wt, s.BT, s.K, s.N));
        REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), wt, s.BT, s.K, s.N));
        const auto got_out = g.Read(d_out), got_dinp = g.Read(d_dinp), got_dw = g.Read(d_dw);
        const double tol = bf16 ? kBf16Nmse : kF32Nmse;
        CHECK(Nmse(out, got_out) < tol);
        CHECK(Nmse(dinp, got_dinp) < tol);
        CHECK(Nmse(dw, got_dw) < tol);
        if (bf16) {
          CHECK(Nmse(out_r, got_out) < kBf16RoundedNmse);
          CHECK(Nmse(dinp_r, got_dinp) < kBf16RoundedNmse);
          CHECK(Nmse(dw_r, got_dw) < kBf16RoundedNmse);
        }
        // dinp == nullptr: only dw accumulates.
        d_dw.Write(dw0);
        REQUIRE_OK(g->MatMulBackward(nullptr, d_dw.get(), d_dout.get(), d_inp.get(), wt, s.BT, s.K, s.N));
        CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
        // A gradient already in bf16 gives the bits of its fp32 equal.
        if (bf16) {
          std::vector<uint16_t> dout16(dout_r.size());
          for (size_t i = 0; i < dout_r.size(); ++i) dout16[i] = Fp32ToBf16(dout_r[i]);
          DeviceVec<float> d_dout_r(dout_r);
          DeviceVec<uint16_t> d_dout16(dout16);
          d_dinp.Write(dinp0);
          d_dw.Write(dw0);
          REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), d_dout_r.get(), d_inp.get(), wt, s.BT, s.K, s.N));
          const auto want_dinp = g.Read(d_dinp), want_dw = g.Read(d_dw);
          d_dinp.Write(dinp0);
          d_dw.Write(dw0);
          const gpu::train::Activation dout_b{nullptr, d_dout16.get()}, inp32{d_inp.get(), nullptr};
          REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), dout_b, inp32, wt, s.BT, s.K, s.N));
          CHECK(BitwiseEqual(want_dinp, g.Read(d_dinp)));
          CHECK(BitwiseEqual(want_dw, g.Read(d_dw)));
        } else {
          const gpu::train::Activation dout_b{nullptr, d_wb.get()}, inp32{d_inp.get(), nullptr};
          CHECK_FALSE(g->MatMulBackward(d_dinp.get(), d_dw.get(), dout_b, inp32, wt, s.BT, s.K, s.N).ok());
        }
        // accumulate = false: dinp overwritten (its old contents are garbage), dw still added to.
        {
          const gpu::train::Activation dout32{d_dout.get(), nullptr}, inp32{d_inp.get(), nullptr};
          d_dinp.Write(std::vector<float>(dinp0.size(), 0.0f));
          d_dw.Write(dw0);
          REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), dout32, inp32, wt, s.BT, s.K, s.N, true));
          const auto from_zero = g.Read(d_dinp);
          d_dinp.Write(RandomFloats(dinp0.size(), 77, 100.0f));
          d_dw.Write(dw0);
          REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), dout32, inp32, wt, s.BT, s.K, s.N, false));
          CHECK(from_zero == g.Read(d_dinp));  // values (beta 1 on zeros may turn −0 into +0)
          CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
          // Outputs in bf16 alone (kBF16): the fp32 results within bf16's rounding; an added-to
          // bf16 dinp and bf16 outputs in kF32 are refused.
          DeviceVec<uint16_t> d_out16(out.size()), d_dinp16(dinp0.size());
          const auto out16 = gpu::train::Output::Bf16(d_out16.get()), dinp16 = gpu::train::Output::Bf16(d_dinp16.get());
          if (bf16) {
            REQUIRE_OK(g->MatMulForward(out16, inp32, wt, s.BT, s.K, s.N));
            d_dw.Write(dw0);
            REQUIRE_OK(g->MatMulBackward(dinp16, d_dw.get(), dout32, inp32, wt, s.BT, s.K, s.N, false));
            CHECK(MaxBf16RoundingErr(got_out, g.Read(d_out16)) <= 1.0);
            CHECK(MaxBf16RoundingErr(from_zero, g.Read(d_dinp16)) <= 1.0);
            CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
            CHECK_FALSE(g->MatMulBackward(dinp16, d_dw.get(), dout32, inp32, wt, s.BT, s.K, s.N, true).ok());
          } else {
            CHECK_FALSE(g->MatMulForward(out16, inp32, wt, s.BT, s.K, s.N).ok());
            CHECK_FALSE(g->MatMulBackward(dinp16, d_dw.get(), dout32, inp32, wt, s.BT, s.K, s.N, false).ok());
          }
        }
        // An input given in bf16 alone gives the bits of its fp32 original (kBF16).
        if (bf16) {
          std::vector<uint16_t> inp16(inp.size());
          for (size_t i = 0; i < inp.size(); ++i) inp16[i] = Fp32ToBf16(inp[i]);
          DeviceVec<uint16_t> d_inp16(inp16);
          const gpu::train::Activation act{nullptr, d_inp16.get()};
          d_dinp.Write(dinp0);
          d_dw.Write(dw0);
          REQUIRE_OK(g->MatMulForward(d_out.get(), act, wt, s.BT, s.K, s.N));
          const gpu::train::Activation dout32{d_dout.get(), nullptr};
          REQUIRE_OK(g->MatMulBackward(d_dinp.get(), d_dw.get(), dout32, act, wt, s.BT, s.K, s.N));
          CHECK(BitwiseEqual(got_out, g.Read(d_out)));
          CHECK(BitwiseEqual(got_dinp, g.Read(d_dinp)));
          CHECK(BitwiseEqual(got_dw, g.Read(d_dw)));
        } else {
          const gpu::train::Activation none{nullptr, d_wb.get()};  // no fp32 input: refused in kF32
          CHECK_FALSE(g->MatMulForward(d_out.get(), none, wt, s.BT, s.K, s.N).ok());
        }
      }
    }
  }
}

TEST_CASE("train kernels: RoPE forward and inverse", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  Gpu g(GemmPrecision::kF32);
  struct Shape {
    int64_t B, T, H, hd;
  };
  for (const Shape s : {Shape{2, 5, 3, 16}, Shape{1, 1, 4, 16}, Shape{2, 128, 9, 64}}) {
    for (bool neox : {false, true}) {
      for (bool inverse : {false, true}) {
        CAPTURE(s.B, s.T, s.H, s.hd, neox, inverse);
        const train::RopeTable rt = train::MakeRopeTable(s.T, s.hd, 10000.0f, neox);
        std::vector<float> x = RandomFloats(s.B * s.T * s.H * s.hd, 16);
        DeviceVec<float> d_x(x), d_cos(rt.cos), d_sin(rt.sin);
        // In bf16: the fp32 kernel's result on the rounded input, rounded (the same arithmetic).
        DeviceVec<float> d_xr(RoundedToBf16(x));
        DeviceVec<uint16_t> d_x16(Bf16Bits(x));
        train::Rope(pool, x.data(), rt, s.B, s.T, s.H, s.hd, inverse);
        REQUIRE_OK(g->Rope(d_x.get(), d_cos.get(), d_sin.get(), s.B, s.T, s.H, s.hd, neox, inverse));
        CHECK(MaxRelErr(x, g.Read(d_x)) < kRowOpTol);
        REQUIRE_OK(g->Rope(d_xr.get(), d_cos.get(), d_sin.get(), s.B, s.T, s.H, s.hd, neox, inverse));
        REQUIRE_OK(g->Rope(gpu::train::Output::Bf16(d_x16.get()), d_cos.get(), d_sin.get(), s.B, s.T, s.H, s.hd, neox,
                           inverse));
        CHECK(g.Read(d_x16) == Bf16Bits(g.Read(d_xr)));
      }
    }
  }
}

TEST_CASE("train kernels: causal GQA attention forward and backward", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  using Shape = AttentionShape;
  const Shape shapes[] = {{2, 7, 4, 2, 16}, {1, 1, 3, 1, 16}, {3, 13, 3, 1, 64}, {1, 40, 4, 4, 16},
                          {2, 128, 9, 3, 64}};
  for (GemmPrecision prec : {GemmPrecision::kF32, GemmPrecision::kBF16}) {
    Gpu g(prec);
    const double tol = prec == GemmPrecision::kF32 ? kF32Nmse : kTf32Nmse;
    for (const Shape s : shapes) {
      CAPTURE(gpu::train::GemmPrecisionName(prec), s.B, s.T, s.H, s.KV, s.hd);
      const int64_t qn = s.qn(), kvn = s.kvn(), an = s.an();
      const CpuAttention ref = CpuAttentionOf(pool, s, 17);
      const auto &q = ref.q, &k = ref.k, &v = ref.v, &dout = ref.dout;
      const auto &att = ref.att, &out = ref.out, &dq = ref.dq, &dk = ref.dk, &dv = ref.dv;

      DeviceVec<float> d_q(q), d_k(k), d_v(v), d_dout(dout);
      // Outputs start as garbage: they are overwritten, not accumulated.
      DeviceVec<float> d_out(RandomFloats(qn, 21)), d_att(RandomFloats(an, 22));
      DeviceVec<float> d_dq(RandomFloats(qn, 23)), d_dk(RandomFloats(kvn, 24)), d_dv(RandomFloats(kvn, 25));
      REQUIRE_OK(g->AttentionForward(d_out.get(), d_att.get(), d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.H, s.KV,
                                     s.hd));
      REQUIRE_OK(g->AttentionBackward(d_dq.get(), d_dk.get(), d_dv.get(), d_dout.get(), d_q.get(), d_k.get(),
                                      d_v.get(), d_att.get(), s.B, s.T, s.H, s.KV, s.hd));
      const auto got_att = g.Read(d_att);
      CHECK(Nmse(att, got_att) < tol);
      size_t nonzero_above = 0;  // the masked triangle is exactly zero
      for (int64_t r = 0; r < s.B * s.H * s.T; ++r) {
        for (int64_t j = r % s.T + 1; j < s.T; ++j) nonzero_above += got_att[r * s.T + j] != 0.0f;
      }
      CHECK(nonzero_above == 0);
      CHECK(Nmse(out, g.Read(d_out)) < tol);
      CHECK(Nmse(dq, g.Read(d_dq)) < tol);
      CHECK(Nmse(dk, g.Read(d_dk)) < tol);
      CHECK(Nmse(dv, g.Read(d_dv)) < tol);
    }
  }
}

// Flash attention (bf16 operands, fp32 softmax and accumulation) against the CPU's fp32
// attention: the operand rounding alone gives NMSE ~1e-5, so kBf16Nmse. The saved log-sum-exp
// (base 2) is checked against one computed here in double, to 0.05 (absolute: a logarithm). The backward must give the same
// bits when run again (no atomics), and overwrite its outputs.
TEST_CASE("train kernels: flash attention forward and backward", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  using Shape = AttentionShape;
  const Shape shapes[] = {{2, 7, 4, 2, 32},   {1, 1, 3, 1, 64},   {3, 13, 3, 1, 64}, {1, 64, 2, 1, 64},
                          {1, 65, 2, 2, 64},  {2, 130, 4, 2, 64}, {1, 100, 2, 1, 128}, {1, 70, 2, 1, 96},
                          {1, 256, 12, 12, 64}, {1, 192, 9, 3, 64}};
  Gpu g(GemmPrecision::kBF16);
  for (const Shape s : shapes) {
    CAPTURE(s.B, s.T, s.H, s.KV, s.hd);
    REQUIRE(TrainKernels::FlashAttentionSupports(s.hd));
    const int64_t qn = s.qn(), kvn = s.kvn(), rows = s.B * s.H * s.T;
    const CpuAttention ref = CpuAttentionOf(pool, s, 31);
    const auto &q = ref.q, &k = ref.k, &v = ref.v, &dout = ref.dout;
    const auto &out = ref.out, &dq = ref.dq, &dk = ref.dk, &dv = ref.dv;
    std::vector<float> lse2(static_cast<size_t>(rows));
    const int64_t qd = s.H * s.hd, kvd = s.KV * s.hd, group = s.H / s.KV;
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.hd));
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t h = 0; h < s.H; ++h) {
        for (int64_t i = 0; i < s.T; ++i) {
          std::vector<double> sc;
          double mx = -1e300;
          for (int64_t j = 0; j <= i; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < s.hd; ++c) {
              dot += double{q[(b * s.T + i) * qd + h * s.hd + c]} * k[(b * s.T + j) * kvd + (h / group) * s.hd + c];
            }
            sc.push_back(dot * scale);
            mx = std::max(mx, sc.back());
          }
          double sum = 0;
          for (double x : sc) sum += std::exp(x - mx);
          lse2[static_cast<size_t>((b * s.H + h) * s.T + i)] = static_cast<float>((mx + std::log(sum)) / std::log(2.0));
        }
      }
    }

    DeviceVec<float> d_q(q), d_k(k), d_v(v), d_dout(dout);
    DeviceVec<float> d_out(RandomFloats(qn, 35)), d_lse(RandomFloats(rows, 36));
    DeviceVec<float> d_dq(RandomFloats(qn, 37)), d_dk(RandomFloats(kvn, 38)), d_dv(RandomFloats(kvn, 39));
    REQUIRE_OK(g->FlashAttentionForward(d_out.get(), d_lse.get(), d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.H,
                                        s.KV, s.hd));
    REQUIRE_OK(g->FlashAttentionBackward(d_dq.get(), d_dk.get(), d_dv.get(), d_dout.get(), d_q.get(), d_k.get(),
                                         d_v.get(), d_out.get(), d_lse.get(), s.B, s.T, s.H, s.KV, s.hd));
    const auto got_out = g.Read(d_out), got_dq = g.Read(d_dq), got_dk = g.Read(d_dk), got_dv = g.Read(d_dv);
    const double e_out = Nmse(out, got_out), e_dq = Nmse(dq, got_dq), e_dk = Nmse(dk, got_dk), e_dv = Nmse(dv, got_dv);
    double e_lse = 0;  // a logarithm: its error is absolute (log2 units)
    const auto got_lse = g.Read(d_lse);
    for (size_t i = 0; i < lse2.size(); ++i) e_lse = std::max(e_lse, double{std::fabs(got_lse[i] - lse2[i])});
    std::printf("flash attention B=%lld T=%lld H=%lld KV=%lld hd=%lld: NMSE out %.2e, lse within %.1e, dq %.2e dk %.2e dv %.2e\n",
                static_cast<long long>(s.B), static_cast<long long>(s.T), static_cast<long long>(s.H),
                static_cast<long long>(s.KV), static_cast<long long>(s.hd), e_out, e_lse, e_dq, e_dk, e_dv);
    CHECK(e_out < kBf16Nmse);
    CHECK(e_lse < 0.05);
    CHECK(e_dv < kBf16Nmse);
    if (s.T > 1) {
      CHECK(e_dq < kBf16Nmse);
      CHECK(e_dk < kBf16Nmse);
    } else {
      // One position: dQ and dK are exactly 0 (dS = P·(dP − D) with P = 1 and D = dP); what
      // comes back is dP's bf16 rounding against D's fp32, so compare absolutely.
      float most = 0;
      for (float x : got_dq) most = std::max(most, std::fabs(x));
      for (float x : got_dk) most = std::max(most, std::fabs(x));
      CHECK(most < 0.05f);
    }
    // Again, on outputs that hold the first run's values: the same bits.
    REQUIRE_OK(g->FlashAttentionBackward(d_dq.get(), d_dk.get(), d_dv.get(), d_dout.get(), d_q.get(), d_k.get(),
                                         d_v.get(), d_out.get(), d_lse.get(), s.B, s.T, s.H, s.KV, s.hd));
    CHECK(g.Read(d_dq) == got_dq);
    CHECK(g.Read(d_dk) == got_dk);
    CHECK(g.Read(d_dv) == got_dv);

    // Operands in bf16 alone (kBF16 stages): the kernels read the same bf16 values, so the
    // output and dV are the fp32 run's rounded to bf16, bit for bit, and the log-sum-exp is the
    // same; dQ and dK, whose D now comes from the rounded output and dO, are within kBf16Nmse.
    {
      using gpu::train::Output;
      DeviceVec<uint16_t> b_q(Bf16Bits(q)), b_k(Bf16Bits(k)), b_v(Bf16Bits(v)), b_dout(Bf16Bits(dout));
      DeviceVec<uint16_t> b_out(static_cast<size_t>(qn)), b_dq(static_cast<size_t>(qn));
      DeviceVec<uint16_t> b_dk(static_cast<size_t>(kvn)), b_dv(static_cast<size_t>(kvn));
      DeviceVec<float> b_lse(static_cast<size_t>(rows));
      const Activation q16{nullptr, b_q.get()}, k16{nullptr, b_k.get()}, v16{nullptr, b_v.get()};
      const Activation dout16{nullptr, b_dout.get()}, out16{nullptr, b_out.get()};
      REQUIRE_OK(g->FlashAttentionForward(Output::Bf16(b_out.get()), b_lse.get(), q16, k16, v16, s.B, s.T, s.H, s.KV,
                                          s.hd));
      REQUIRE_OK(g->FlashAttentionBackward(Output::Bf16(b_dq.get()), Output::Bf16(b_dk.get()),
                                           Output::Bf16(b_dv.get()), dout16, q16, k16, v16, out16, b_lse.get(), s.B,
                                           s.T, s.H, s.KV, s.hd));
      CHECK(g.Read(b_out) == Bf16Bits(got_out));
      CHECK(BitwiseEqual(got_lse, g.Read(b_lse)));
      CHECK(g.Read(b_dv) == Bf16Bits(got_dv));
      if (s.T > 1) {
        CHECK(Nmse(dq, FromBf16(g.Read(b_dq))) < kBf16Nmse);
        CHECK(Nmse(dk, FromBf16(g.Read(b_dk))) < kBf16Nmse);
      }
      // Operands of both types at once are refused.
      CHECK_FALSE(g->FlashAttentionForward(Output::Bf16(b_out.get()), b_lse.get(), d_q.get(), k16, v16, s.B, s.T, s.H,
                                           s.KV, s.hd)
                      .ok());
      CHECK_FALSE(g->FlashAttentionBackward(d_dq.get(), Output::Bf16(b_dk.get()), Output::Bf16(b_dv.get()), dout16, q16,
                                            k16, v16, out16, b_lse.get(), s.B, s.T, s.H, s.KV, s.hd)
                      .ok());
    }
  }
  // Head dims without a kernel are refused, not run.
  CHECK_FALSE(TrainKernels::FlashAttentionSupports(48));
  DeviceVec<float> x(std::vector<float>(4 * 48));
  CHECK_FALSE(g->FlashAttentionForward(x.get(), x.get(), x.get(), x.get(), x.get(), 1, 4, 1, 1, 48).ok());
}

// The stages keep q, k and v side by side in one product's output, rows (H + 2·KV)·hd apart:
// RoPE (q's and k's heads in one launch), the materialised attention and flash attention on that
// layout give the bits of the packed tensors, and write dq, dk, dv the same way.
TEST_CASE("train kernels: attention and RoPE on q, k, v side by side", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  using Shape = AttentionShape;
  using gpu::train::Output;
  using gpu::train::QkvStrides;
  for (const Shape s : {Shape{2, 70, 4, 2, 32}, Shape{1, 33, 3, 1, 64}}) {
    CAPTURE(s.B, s.T, s.H, s.KV, s.hd);
    const int64_t BT = s.B * s.T, qd = s.H * s.hd, kvd = s.KV * s.hd, ld = qd + 2 * kvd;
    const auto q = RandomFloats(s.qn(), 51), k = RandomFloats(s.kvn(), 52), v = RandomFloats(s.kvn(), 53);
    const auto dout = RandomFloats(s.qn(), 54);
    std::vector<float> qkv(static_cast<size_t>(BT * ld));
    for (int64_t r = 0; r < BT; ++r) {
      std::copy_n(q.begin() + r * qd, qd, qkv.begin() + r * ld);
      std::copy_n(k.begin() + r * kvd, kvd, qkv.begin() + r * ld + qd);
      std::copy_n(v.begin() + r * kvd, kvd, qkv.begin() + r * ld + qd + kvd);
    }
    // The side-by-side buffer's q, k and v parts as packed tensors.
    auto split = [&](const std::vector<float>& x, int64_t col, int64_t width) {
      std::vector<float> out(static_cast<size_t>(BT * width));
      for (int64_t r = 0; r < BT; ++r) std::copy_n(x.begin() + r * ld + col, width, out.begin() + r * width);
      return out;
    };
    for (GemmPrecision prec : {GemmPrecision::kF32, GemmPrecision::kBF16}) {
      CAPTURE(gpu::train::GemmPrecisionName(prec));
      Gpu g(prec);
      DeviceVec<float> d_q(q), d_k(k), d_v(v), d_dout(dout), d_qkv(qkv);
      // RoPE: q and k apart, and q's and k's heads in one launch over the shared rows.
      const train::RopeTable rt = train::MakeRopeTable(s.T, s.hd, 10000.0f, false);
      DeviceVec<float> d_cos(rt.cos), d_sin(rt.sin);
      REQUIRE_OK(g->Rope(d_q.get(), d_cos.get(), d_sin.get(), s.B, s.T, s.H, s.hd, false, false));
      REQUIRE_OK(g->Rope(d_k.get(), d_cos.get(), d_sin.get(), s.B, s.T, s.KV, s.hd, false, false));
      REQUIRE_OK(g->Rope(d_qkv.get(), d_cos.get(), d_sin.get(), s.B, s.T, s.H + s.KV, s.hd, false, false, ld));
      const auto rotated = g.Read(d_qkv);
      CHECK(BitwiseEqual(g.Read(d_q), split(rotated, 0, qd)));
      CHECK(BitwiseEqual(g.Read(d_k), split(rotated, qd, kvd)));
      CHECK(BitwiseEqual(v, split(rotated, qd + kvd, kvd)));  // v untouched
      const QkvStrides strides{ld, ld};
      float* base = d_qkv.get();
      // Materialised attention.
      DeviceVec<float> p_out(s.qn()), p_att(s.an()), p_dq(s.qn()), p_dk(s.kvn()), p_dv(s.kvn());
      DeviceVec<float> x_out(s.qn()), x_att(s.an()), x_dqkv(static_cast<size_t>(BT * ld));
      REQUIRE_OK(g->AttentionForward(p_out.get(), p_att.get(), d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.H, s.KV,
                                     s.hd));
      REQUIRE_OK(g->AttentionBackward(p_dq.get(), p_dk.get(), p_dv.get(), d_dout.get(), d_q.get(), d_k.get(),
                                      d_v.get(), p_att.get(), s.B, s.T, s.H, s.KV, s.hd));
      REQUIRE_OK(g->AttentionForward(x_out.get(), x_att.get(), base, base + qd, base + qd + kvd, s.B, s.T, s.H, s.KV,
                                     s.hd, strides));
      float* dbase = x_dqkv.get();
      REQUIRE_OK(g->AttentionBackward(dbase, dbase + qd, dbase + qd + kvd, d_dout.get(), base, base + qd,
                                      base + qd + kvd, x_att.get(), s.B, s.T, s.H, s.KV, s.hd, strides));
      CHECK(BitwiseEqual(g.Read(p_out), g.Read(x_out)));
      auto dqkv = g.Read(x_dqkv);
      CHECK(BitwiseEqual(g.Read(p_dq), split(dqkv, 0, qd)));
      CHECK(BitwiseEqual(g.Read(p_dk), split(dqkv, qd, kvd)));
      CHECK(BitwiseEqual(g.Read(p_dv), split(dqkv, qd + kvd, kvd)));
      if (prec != GemmPrecision::kBF16) continue;
      // Flash attention, fp32 operands.
      DeviceVec<float> p_lse(static_cast<size_t>(s.B * s.H * s.T)), x_lse(static_cast<size_t>(s.B * s.H * s.T));
      REQUIRE_OK(g->FlashAttentionForward(p_out.get(), p_lse.get(), d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.H,
                                          s.KV, s.hd));
      REQUIRE_OK(g->FlashAttentionBackward(p_dq.get(), p_dk.get(), p_dv.get(), d_dout.get(), d_q.get(), d_k.get(),
                                           d_v.get(), p_out.get(), p_lse.get(), s.B, s.T, s.H, s.KV, s.hd));
      REQUIRE_OK(g->FlashAttentionForward(x_out.get(), x_lse.get(), base, base + qd, base + qd + kvd, s.B, s.T, s.H,
                                          s.KV, s.hd, strides));
      REQUIRE_OK(g->FlashAttentionBackward(dbase, dbase + qd, dbase + qd + kvd, d_dout.get(), base, base + qd,
                                           base + qd + kvd, x_out.get(), x_lse.get(), s.B, s.T, s.H, s.KV, s.hd,
                                           strides));
      CHECK(BitwiseEqual(g.Read(p_out), g.Read(x_out)));
      CHECK(BitwiseEqual(g.Read(p_lse), g.Read(x_lse)));
      dqkv = g.Read(x_dqkv);
      CHECK(BitwiseEqual(g.Read(p_dq), split(dqkv, 0, qd)));
      CHECK(BitwiseEqual(g.Read(p_dk), split(dqkv, qd, kvd)));
      CHECK(BitwiseEqual(g.Read(p_dv), split(dqkv, qd + kvd, kvd)));
      // Flash attention, bf16 operands: the side-by-side run gives the packed run's bits.
      DeviceVec<uint16_t> b_q(Bf16Bits(g.Read(d_q))), b_k(Bf16Bits(g.Read(d_k))), b_v(Bf16Bits(v));
      DeviceVec<uint16_t> b_dout(Bf16Bits(dout)), b_qkv(Bf16Bits(rotated));
      DeviceVec<uint16_t> b_out(s.qn()), b_dq(s.qn()), b_dk(s.kvn()), b_dv(s.kvn());
      DeviceVec<uint16_t> bx_out(s.qn()), bx_dqkv(static_cast<size_t>(BT * ld));
      const Activation q16{nullptr, b_q.get()}, k16{nullptr, b_k.get()}, v16{nullptr, b_v.get()};
      const Activation dout16{nullptr, b_dout.get()};
      uint16_t* xb = b_qkv.get();
      uint16_t* dxb = bx_dqkv.get();
      const Activation xq{nullptr, xb}, xk{nullptr, xb + qd}, xv{nullptr, xb + qd + kvd};
      REQUIRE_OK(g->FlashAttentionForward(Output::Bf16(b_out.get()), p_lse.get(), q16, k16, v16, s.B, s.T, s.H, s.KV,
                                          s.hd));
      REQUIRE_OK(g->FlashAttentionBackward(Output::Bf16(b_dq.get()), Output::Bf16(b_dk.get()),
                                           Output::Bf16(b_dv.get()), dout16, q16, k16, v16,
                                           Activation{nullptr, b_out.get()}, p_lse.get(), s.B, s.T, s.H, s.KV, s.hd));
      REQUIRE_OK(g->FlashAttentionForward(Output::Bf16(bx_out.get()), x_lse.get(), xq, xk, xv, s.B, s.T, s.H, s.KV,
                                          s.hd, strides));
      REQUIRE_OK(g->FlashAttentionBackward(Output::Bf16(dxb), Output::Bf16(dxb + qd), Output::Bf16(dxb + qd + kvd),
                                           dout16, xq, xk, xv, Activation{nullptr, bx_out.get()}, x_lse.get(), s.B,
                                           s.T, s.H, s.KV, s.hd, strides));
      CHECK(g.Read(b_out) == g.Read(bx_out));
      const auto dqkv16 = g.Read(bx_dqkv);
      auto split16 = [&](int64_t col, int64_t width) {
        std::vector<uint16_t> out(static_cast<size_t>(BT * width));
        for (int64_t r = 0; r < BT; ++r) std::copy_n(dqkv16.begin() + r * ld + col, width, out.begin() + r * width);
        return out;
      };
      CHECK(g.Read(b_dq) == split16(0, qd));
      CHECK(g.Read(b_dk) == split16(qd, kvd));
      CHECK(g.Read(b_dv) == split16(qd + kvd, kvd));
      // Rows closer than their heads are refused.
      CHECK_FALSE(g->FlashAttentionForward(x_out.get(), x_lse.get(), base, base + qd, base + qd + kvd, s.B, s.T, s.H,
                                           s.KV, s.hd, QkvStrides{qd - 4, ld})
                      .ok());
    }
  }
}

TEST_CASE("train kernels: SwiGLU and add", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  Gpu g(GemmPrecision::kF32);
  for (int64_t n : {1, 1001, 37 * 1536}) {
    CAPTURE(n);
    const auto gate = RandomFloats(n, 26, 3.0f), up = RandomFloats(n, 27), dout = RandomFloats(n, 28);
    std::vector<float> out(n), dgate(n), dup(n);
    train::SwiGluForward(pool, out.data(), gate.data(), up.data(), n);
    train::SwiGluBackward(pool, dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
    DeviceVec<float> d_gate(gate), d_up(up), d_dout(dout), d_out(n), d_dgate(RandomFloats(n, 29)), d_dup(n);
    const Activation a_gate = F32(d_gate.get()), a_up = F32(d_up.get()), a_dout = F32(d_dout.get());
    REQUIRE_OK(g->SwiGluForward(d_out.get(), a_gate, a_up, n));
    {  // the output in bf16 alone: the fp32 output's bits rounded
      DeviceVec<uint16_t> d_out16(static_cast<size_t>(n));
      REQUIRE_OK(g->SwiGluForward(nullptr, a_gate, a_up, n, d_out16.get()));
      const auto f32 = g.Read(d_out);
      const auto b16 = g.Read(d_out16);
      size_t mismatches = 0;
      for (size_t i = 0; i < b16.size(); ++i) mismatches += b16[i] != Fp32ToBf16(f32[i]);
      CHECK(mismatches == 0);
    }
    REQUIRE_OK(g->SwiGluBackward(d_dgate.get(), d_dup.get(), a_dout, a_gate, a_up, n));
    {  // the gradients in bf16 alone: the fp32 results' bits rounded
      DeviceVec<uint16_t> d_dgate16(static_cast<size_t>(n)), d_dup16(static_cast<size_t>(n));
      REQUIRE_OK(g->SwiGluBackward(nullptr, nullptr, a_dout, a_gate, a_up, n, d_dgate16.get(), d_dup16.get()));
      const auto dg32 = g.Read(d_dgate), du32 = g.Read(d_dup);
      const auto dg16 = g.Read(d_dgate16), du16 = g.Read(d_dup16);
      size_t mismatches = 0;
      for (size_t i = 0; i < dg16.size(); ++i) {
        mismatches += dg16[i] != Fp32ToBf16(dg32[i]);
        mismatches += du16[i] != Fp32ToBf16(du32[i]);
      }
      CHECK(mismatches == 0);
    }
    CHECK(MaxRelErr(out, g.Read(d_out)) < kRowOpTol);
    CHECK(MaxRelErr(dgate, g.Read(d_dgate)) < kRowOpTol);
    CHECK(MaxRelErr(dup, g.Read(d_dup)) < kRowOpTol);
    {  // inputs in bf16 alone give the bits of their fp32 equals (the values rounded to bf16)
      const auto gate_r = RoundedToBf16(gate), up_r = RoundedToBf16(up), dout_r = RoundedToBf16(dout);
      DeviceVec<float> r_gate(gate_r), r_up(up_r), r_dout(dout_r), r_out(n), r_dgate(n), r_dup(n);
      REQUIRE_OK(g->SwiGluForward(r_out.get(), F32(r_gate.get()), F32(r_up.get()), n));
      REQUIRE_OK(g->SwiGluBackward(r_dgate.get(), r_dup.get(), F32(r_dout.get()), F32(r_gate.get()),
                                   F32(r_up.get()), n));
      DeviceVec<uint16_t> b_gate(Bf16Bits(gate)), b_up(Bf16Bits(up)), b_dout(Bf16Bits(dout));
      DeviceVec<float> b_out(n), b_dgate(n), b_dup(n);
      const Activation gate16{nullptr, b_gate.get()}, up16{nullptr, b_up.get()}, dout16{nullptr, b_dout.get()};
      REQUIRE_OK(g->SwiGluForward(b_out.get(), gate16, up16, n));
      CHECK(BitwiseEqual(g.Read(r_out), g.Read(b_out)));
      for (const Activation d : {dout16, F32(r_dout.get())}) {  // dout in bf16 or fp32
        REQUIRE_OK(g->SwiGluBackward(b_dgate.get(), b_dup.get(), d, gate16, up16, n));
        CHECK(BitwiseEqual(g.Read(r_dgate), g.Read(b_dgate)));
        CHECK(BitwiseEqual(g.Read(r_dup), g.Read(b_dup)));
      }
      REQUIRE_OK(g->SwiGluBackward(b_dgate.get(), b_dup.get(), dout16, a_gate, a_up, n));  // fp32 gate, bf16 dout
      DeviceVec<float> m_dgate(n), m_dup(n);
      REQUIRE_OK(g->SwiGluBackward(m_dgate.get(), m_dup.get(), F32(r_dout.get()), a_gate, a_up, n));
      CHECK(BitwiseEqual(g.Read(m_dgate), g.Read(b_dgate)));
      // gate and up of different types, or neither, are refused.
      CHECK_FALSE(g->SwiGluForward(b_out.get(), gate16, a_up, n).ok());
      CHECK_FALSE(g->SwiGluForward(b_out.get(), Activation{}, Activation{}, n).ok());
    }
    {  // gate and up side by side in rows of one buffer (as the stages keep them), and their
       // gradients written the same way: the same bits as apart
      const int64_t cols = n % 1536 == 0 ? 1536 : n, rows = n / cols;
      std::vector<float> gu(static_cast<size_t>(2 * n));
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(gate.begin() + r * cols, cols, gu.begin() + 2 * r * cols);
        std::copy_n(up.begin() + r * cols, cols, gu.begin() + (2 * r + 1) * cols);
      }
      DeviceVec<float> d_gu(gu), d_dgu(static_cast<size_t>(2 * n)), s_out(n);
      const gpu::train::RowLayout halves{cols, 2 * cols};
      REQUIRE_OK(g->SwiGluForward(s_out.get(), F32(d_gu.get()), F32(d_gu.get() + cols), n, nullptr, halves));
      REQUIRE_OK(g->SwiGluBackward(d_dgu.get(), d_dgu.get() + cols, a_dout, F32(d_gu.get()), F32(d_gu.get() + cols), n,
                                   nullptr, nullptr, halves));
      CHECK(BitwiseEqual(g.Read(d_out), g.Read(s_out)));
      const auto dgu = g.Read(d_dgu), dg = g.Read(d_dgate), du = g.Read(d_dup);
      size_t mismatches = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          mismatches += std::memcmp(&dgu[2 * r * cols + c], &dg[r * cols + c], sizeof(float)) != 0;
          mismatches += std::memcmp(&dgu[(2 * r + 1) * cols + c], &du[r * cols + c], sizeof(float)) != 0;
        }
      }
      CHECK(mismatches == 0);
      // Partial rows and rows closer than their width are refused.
      CHECK_FALSE(g->SwiGluForward(s_out.get(), F32(d_gu.get()), F32(d_gu.get()), n, nullptr, {cols, cols - 1}).ok());
      if (n > 1) {
        CHECK_FALSE(
            g->SwiGluForward(s_out.get(), F32(d_gu.get()), F32(d_gu.get()), n - 1, nullptr, {cols, 2 * cols}).ok());
      }
    }

    std::vector<float> sum = gate;
    for (int64_t i = 0; i < n; ++i) sum[i] += up[i];
    REQUIRE_OK(g->Add(d_gate.get(), d_gate.get(), F32(d_up.get()), n));
    CHECK(MaxRelErr(sum, g.Read(d_gate)) == kExactTol);
  }
}

// More elements than one grid covers (65,536 blocks of 256 threads), so each thread walks several
// rows of the side-by-side layout: the same bits as gate and up apart.
TEST_CASE("train kernels: SwiGLU over more elements than one grid", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  Gpu g(GemmPrecision::kF32);
  const int64_t cols = 1000, rows = 65536 * 256 / cols + 7, n = rows * cols;
  const auto gate = RandomFloats(n, 61, 3.0f), up = RandomFloats(n, 62), dout = RandomFloats(n, 63);
  std::vector<float> gu(static_cast<size_t>(2 * n));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(gate.begin() + r * cols, cols, gu.begin() + 2 * r * cols);
    std::copy_n(up.begin() + r * cols, cols, gu.begin() + (2 * r + 1) * cols);
  }
  DeviceVec<float> d_gate(gate), d_up(up), d_dout(dout), d_gu(gu), out(n), s_out(n), dg(n), du(n), d_dgu(2 * n);
  const gpu::train::RowLayout halves{cols, 2 * cols};
  REQUIRE_OK(g->SwiGluForward(out.get(), F32(d_gate.get()), F32(d_up.get()), n));
  REQUIRE_OK(g->SwiGluForward(s_out.get(), F32(d_gu.get()), F32(d_gu.get() + cols), n, nullptr, halves));
  CHECK(BitwiseEqual(g.Read(out), g.Read(s_out)));
  REQUIRE_OK(g->SwiGluBackward(dg.get(), du.get(), F32(d_dout.get()), F32(d_gate.get()), F32(d_up.get()), n));
  REQUIRE_OK(g->SwiGluBackward(d_dgu.get(), d_dgu.get() + cols, F32(d_dout.get()), F32(d_gu.get()),
                               F32(d_gu.get() + cols), n, nullptr, nullptr, halves));
  const auto dgu = g.Read(d_dgu), want_g = g.Read(dg), want_u = g.Read(du);
  size_t mismatches = 0;
  for (int64_t r = 0; r < rows; ++r) {
    mismatches += std::memcmp(&dgu[2 * r * cols], &want_g[r * cols], cols * sizeof(float)) != 0;
    mismatches += std::memcmp(&dgu[(2 * r + 1) * cols], &want_u[r * cols], cols * sizeof(float)) != 0;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("train kernels: cross-entropy with ignored rows", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  ThreadPool pool(2);
  Gpu g(GemmPrecision::kF32);
  struct Shape {
    int64_t BT, V;
  };
  for (const Shape s : {Shape{1, 300}, Shape{37, 300}, Shape{256, 4096}}) {
    CAPTURE(s.BT, s.V);
    const auto logits0 = RandomFloats(s.BT * s.V, 30, 4.0f);
    auto targets = RandomTokens(s.BT, static_cast<int32_t>(s.V), 31);
    for (int64_t t = 2; t < s.BT; t += 7) targets[t] = -1;
    const float grad_scale = 1.0f / static_cast<float>(s.BT);
    std::vector<float> dlogits = logits0;
    const train::LossSum ref =
        train::CrossEntropyForwardBackward(pool, dlogits.data(), targets.data(), s.BT, s.V, grad_scale);

    DeviceVec<float> d_logits(logits0);
    DeviceVec<int32_t> d_targets(targets);
    DeviceVec<double> d_sum(std::vector<double>{1.5});  // the op adds onto these
    DeviceVec<int64_t> d_count(std::vector<int64_t>{3});
    REQUIRE_OK(g->CrossEntropyForwardBackward(d_logits.get(), d_targets.get(), s.BT, s.V, grad_scale, d_sum.get(),
                                              d_count.get()));
    const auto got = g.Read(d_logits);
    CHECK(Nmse(dlogits, got) < kF32Nmse);
    const double first = g.Read(d_sum)[0], sum = first - 1.5;
    CHECK(std::abs(sum - ref.sum) <= kRowOpTol * std::abs(ref.sum));
    CHECK(g.Read(d_count)[0] - 3 == ref.count);
    for (int64_t t = 0; t < s.BT; ++t) {  // ignored rows: zero gradient
      if (targets[t] >= 0) continue;
      for (int64_t i = 0; i < s.V; ++i) REQUIRE(got[t * s.V + i] == 0.0f);
    }

    d_logits.Write(logits0);  // determinism
    d_sum.Write({1.5});
    REQUIRE_OK(g->CrossEntropyForwardBackward(d_logits.get(), d_targets.get(), s.BT, s.V, grad_scale, d_sum.get(),
                                              d_count.get()));
    CHECK(BitwiseEqual(got, g.Read(d_logits)));
    const double again = g.Read(d_sum)[0];
    CHECK(std::memcmp(&again, &first, sizeof(double)) == 0);

    // The gradient as bf16 elsewhere: the same values rounded, the logits left alone.
    d_logits.Write(logits0);
    DeviceVec<uint16_t> d_grad16(static_cast<size_t>(s.BT * s.V));
    REQUIRE_OK(g->CrossEntropyForwardBackward(d_logits.get(), d_targets.get(), s.BT, s.V, grad_scale, d_sum.get(),
                                              d_count.get(), d_grad16.get()));
    CHECK(BitwiseEqual(logits0, g.Read(d_logits)));
    const auto grad16 = g.Read(d_grad16);
    size_t mismatches = 0;
    for (size_t i = 0; i < grad16.size(); ++i) mismatches += grad16[i] != Fp32ToBf16(got[i]);
    CHECK(mismatches == 0);

    // bf16 logits with the gradient written over them: the bits and the loss of the fp32 op on
    // the logits rounded to bf16.
    DeviceVec<float> d_rounded(RoundedToBf16(logits0));
    d_sum.Write({1.5});
    d_count.Write({3});
    REQUIRE_OK(g->CrossEntropyForwardBackward(d_rounded.get(), d_targets.get(), s.BT, s.V, grad_scale, d_sum.get(),
                                              d_count.get(), d_grad16.get()));
    const auto want16 = g.Read(d_grad16);
    const auto want_sum = g.Read(d_sum);
    const auto want_count = g.Read(d_count);
    DeviceVec<uint16_t> d_logits16(Bf16Bits(logits0));
    d_sum.Write({1.5});
    d_count.Write({3});
    REQUIRE_OK(g->CrossEntropyForwardBackwardBf16(d_logits16.get(), d_targets.get(), s.BT, s.V, grad_scale,
                                                  d_sum.get(), d_count.get()));
    CHECK(want16 == g.Read(d_logits16));
    CHECK(std::memcmp(want_sum.data(), g.Read(d_sum).data(), sizeof(double)) == 0);
    CHECK(want_count == g.Read(d_count));
    // and near the fp32 loss: rounding the logits moves it little
    CHECK(std::abs(want_sum[0] - 1.5 - ref.sum) <= 1e-2 * std::abs(ref.sum));
  }
}

TEST_CASE("train kernels: gradient norm and AdamW steps match core's AdamW", "[gpu][train_kernels]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  Gpu g(GemmPrecision::kF32);
  // One matrix (decayed) and one vector (not), 1037 parameters in all.
  train::ParamLayout layout;
  layout.token_embd = {"token_embd", 0, 37, 20, true};
  layout.output_norm = {"output_norm", 740, 1, 297, false};
  layout.total = 1037;
  train::OptimConfig cfg;
  cfg.warmup_steps = 2;
  cfg.total_steps = 5;
  cfg.grad_clip = 1.0f;  // the random gradients' norm is ~32: clipping applies
  train::AdamW opt(cfg, layout);
  std::vector<float> params = RandomFloats(layout.total, 32);
  std::vector<uint8_t> decay(layout.total, 0);
  std::fill_n(decay.begin(), 740, uint8_t{1});

  DeviceVec<float> d_p(params), d_g(layout.total), d_m(layout.total), d_v(layout.total);
  DeviceVec<uint8_t> d_decay(decay);
  DeviceVec<double> d_ss(1);
  for (int64_t step = 0; step < 4; ++step) {
    CAPTURE(step);
    std::vector<float> grads = RandomFloats(layout.total, 40 + step);
    d_g.Write(grads);
    REQUIRE_OK(g->SumSquares(d_g.get(), layout.total, d_ss.get()));
    const double norm = std::sqrt(g.Read(d_ss)[0]);
    CHECK(std::abs(norm - train::GlobalNorm(grads)) <= 1e-12 * norm);
    const double ref_norm = opt.Step(step, params, grads);
    CHECK(std::abs(norm - ref_norm) <= 1e-12 * ref_norm);
    // The scalars as AdamW::Step derives them.
    const float clip = (cfg.grad_clip > 0.0f && norm > cfg.grad_clip) ? static_cast<float>(cfg.grad_clip / norm) : 1.0f;
    const int64_t t = step + 1;
    const train::AdamWScalars s{clip,
                                train::LearningRate(cfg, step),
                                cfg.beta1,
                                cfg.beta2,
                                1.0f - static_cast<float>(std::pow(cfg.beta1, t)),
                                1.0f - static_cast<float>(std::pow(cfg.beta2, t)),
                                cfg.eps,
                                cfg.weight_decay};
    REQUIRE_OK(g->AdamW(s, d_p.get(), d_g.get(), d_m.get(), d_v.get(), d_decay.get(), layout.total));
    CHECK(MaxRelErr(grads, g.Read(d_g)) < 1e-6);
    CHECK(MaxRelErr(opt.m(), g.Read(d_m)) < 1e-6);
    CHECK(MaxRelErr(opt.v(), g.Read(d_v)) < 1e-6);
    CHECK(MaxRelErr(params, g.Read(d_p)) < 1e-6);
  }
}

}  // namespace lms::test
