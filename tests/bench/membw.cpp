// Memory read bandwidth, the ceiling of token generation: every generated token streams all
// of a model's weights, so tg tokens/s <= bandwidth / weight bytes per token.
//   membw [--threads T] [--mib 256] [--reps 9]   -> one JSON line with the median GB/s
// Each thread sums its own slice of one buffer (far larger than the caches) with 64-bit loads
// in four independent chains; the median of the timed passes is reported.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

uint64_t SumSlice(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b ^= p[i + 1];
    c += p[i + 2];
    d ^= p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 9;
  size_t mib = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads") threads = std::max(1, std::atoi(argv[i + 1]));
    else if (k == "--mib") mib = std::max(16, std::atoi(argv[i + 1]));
    else if (k == "--reps") reps = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "usage: membw [--threads T] [--mib 256] [--reps 9]\n");
      return 2;
    }
  }
  const size_t n = mib * (1u << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
  std::vector<double> gbs;
  volatile uint64_t sink = 0;
  for (int r = 0; r <= reps; ++r) {  // the first pass warms up (page faults, frequency)
    std::vector<std::thread> pool;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t b = n * t / threads, e = n * (t + 1) / threads;
        sums[t] = SumSlice(buf.data() + b, e - b);
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t x : sums) sink = sink + x;
    if (r > 0) gbs.push_back(static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  std::printf("{\"threads\": %d, \"mib\": %zu, \"gb_per_s\": %.3f, \"min\": %.3f, \"max\": %.3f}\n", threads, mib,
              gbs[gbs.size() / 2], gbs.front(), gbs.back());
  return sink == 42 ? 1 : 0;
}
