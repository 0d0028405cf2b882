// gpu/ops/attention_prefill.cu's kernel, its own source run on the CPU (cuda_host.h), against
// causal attention in double over a paged cache: a batch of prompt chunks (long, exactly the
// least run, too short), a decode row, scattered blocks, f16 and f32 caches, padded row strides.
// f16 operands give NMSE ~1e-7; the bound is 1e-5. The rows the tiles do not cover must be left
// alone. Exit status 0 when every case passes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gpu/ops/attention_prefill.cu"

namespace {

using namespace lms::gpu;

bool Check(int H, int KV, int hd, bool f16, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // seq 0: 130 rows from position 20; seq 1: a decode row at 50; seq 2: 16 rows from 0; seq 3:
  // 15 rows from 0 (paged); seq 4: 70 rows from 0.
  const int starts[5] = {20, 50, 0, 0, 0}, lens[5] = {130, 1, 16, 15, 70};
  std::vector<int32_t> pos, seq;
  for (int s = 0; s < 5; ++s) {
    for (int i = 0; i < lens[s]; ++i) {
      pos.push_back(starts[s] + i);
      seq.push_back(s);
    }
  }
  const int n = static_cast<int>(pos.size());
  const PrefillTiles tiles = MakePrefillTiles(pos, seq, kPrefillMinRun);
  const int bs = 16, blocks_per_seq = (150 + bs - 1) / bs, n_blocks = 5 * blocks_per_seq;
  std::vector<int32_t> table(static_cast<size_t>(n_blocks));
  for (int i = 0; i < n_blocks; ++i) table[static_cast<size_t>(i)] = i;
  std::shuffle(table.begin(), table.end(), rng);
  const int64_t ld_cache = int64_t{KV} * hd + 8, ld_q = int64_t{H} * hd + 4, ld_out = int64_t{H} * hd + 2;
  std::vector<float> k32(size_t(n_blocks) * bs * ld_cache), v32(k32.size());
  for (float& x : k32) x = normal(rng);
  for (float& x : v32) x = normal(rng);
  std::vector<uint16_t> k16(k32.size()), v16(v32.size());
  for (size_t i = 0; i < k32.size(); ++i) {
    k16[i] = HostToHalf(k32[i]);
    v16[i] = HostToHalf(v32[i]);
  }
  std::vector<float> q(size_t(n) * ld_q);
  for (float& x : q) x = normal(rng);
  const float sentinel = -7.0f;
  std::vector<float> out(size_t(n) * ld_out, sentinel);
  AttentionArgs a;
  a.n_heads = H;
  a.n_kv_heads = KV;
  a.head_dim = hd;
  a.block_size = bs;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.f16 = f16;
  a.ld_cache = ld_cache;
  DeviceBatch b;
  b.n_tokens = n;
  b.block_tables = table.data();
  b.bt_stride = blocks_per_seq;
  b.n_tiles = tiles.count();
  b.tiles = tiles.tiles.data();
  b.tiled = tiles.tiled.data();
  const void* kc = f16 ? static_cast<const void*>(k16.data()) : static_cast<const void*>(k32.data());
  const void* vc = f16 ? static_cast<const void*>(v16.data()) : static_cast<const void*>(v32.data());
  if (!PrefillAttentionSupports(hd, q.data(), ld_q, kc, vc, a, out.data(), ld_out) ||
      LaunchAttentionPrefill(q.data(), ld_q, kc, vc, a, b, out.data(), ld_out, nullptr) != cudaSuccess) {
    std::printf("H=%d KV=%d hd=%d: refused\n", H, KV, hd);
    return false;
  }
  cudaDeviceSynchronize();  // the launch runs when the host waits for it
  double num = 0, den = 0;
  bool untouched = true, finite = true;
  int tiled_rows = 0;
  for (int r = 0; r < n; ++r) {
    const float* o = out.data() + size_t(r) * ld_out;
    if (!tiles.tiled[size_t(r)]) {
      for (int64_t c = 0; c < ld_out; ++c) untouched = untouched && o[c] == sentinel;
      continue;
    }
    ++tiled_rows;
    const int s = seq[size_t(r)], p = pos[size_t(r)];
    for (int h = 0; h < H; ++h) {
      const int kvh = h / (H / KV);
      auto at = [&](int j, int c) {
        const int64_t row = int64_t{table[size_t(s * blocks_per_seq + j / bs)]} * bs + j % bs;
        return size_t(row * ld_cache + int64_t{kvh} * hd + c);
      };
      auto K = [&](int j, int c) { return f16 ? double(HostFromHalf(k16[at(j, c)])) : double(k32[at(j, c)]); };
      auto V = [&](int j, int c) { return f16 ? double(HostFromHalf(v16[at(j, c)])) : double(v32[at(j, c)]); };
      std::vector<double> sc(size_t(p) + 1);
      double mx = -1e300;
      for (int j = 0; j <= p; ++j) {
        double x = 0;
        for (int c = 0; c < hd; ++c) x += double(q[size_t(r) * ld_q + size_t(h) * hd + c]) * K(j, c);
        sc[size_t(j)] = x / std::sqrt(double(hd));
        mx = std::max(mx, sc[size_t(j)]);
      }
      double l = 0;
      for (double x : sc) l += std::exp(x - mx);
      for (int c = 0; c < hd; ++c) {
        double want = 0;
        for (int j = 0; j <= p; ++j) want += std::exp(sc[size_t(j)] - mx) / l * V(j, c);
        const double got = o[size_t(h) * hd + c];
        finite = finite && std::isfinite(got);
        num += (got - want) * (got - want);
        den += want * want;
      }
    }
  }
  const double nmse = num / den;
  const bool ok = finite && untouched && tiled_rows == 130 + 16 + 70 && nmse < 1e-5;
  std::printf("%s H=%d KV=%d hd=%d %s cache: %d tiles, %d rows, NMSE %.2e%s%s (%ld mma)\n", ok ? "ok  " : "FAIL", H, KV,
              hd, f16 ? "f16" : "f32", tiles.count(), tiled_rows, nmse, finite ? "" : ", not finite",
              untouched ? "" : ", wrote rows outside its tiles", g_host.mma_count);
  return ok;
}

}  // namespace

int main() {
  struct Case {
    int H, KV, hd;
  };
  bool all = true;
  uint32_t seed = 1;
  for (const Case c : {Case{9, 3, 64}, Case{16, 2, 128}, Case{4, 4, 32}}) {
    for (bool f16 : {true, false}) all = Check(c.H, c.KV, c.hd, f16, seed++) && all;
  }
  return all ? 0 : 1;
}
