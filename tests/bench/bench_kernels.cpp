// Micro-benchmark of the CPU matmul kernels on SmolLM2-135M's linear-layer shapes.
//   bench_kernels [--threads N] [--isa scalar|avx2] [--min-ms MS] [--types q4_1,q8_0] [--m 1,512]
// Prints the median time of repeated runs (activation preparation + matmul, as the forward pass
// calls them) and GFLOP/s = 2*m*n*k / time; for m = 1 also the weight bytes streamed per second.
// With one thread it also prints the median thread CPU time and GFLOP/s from it: on a shared,
// busy machine that is the fairer figure (wall time includes time the thread was not running).
#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor/matmul.h"
#include "core/tensor/quant.h"

using namespace lms;
using Clock = std::chrono::steady_clock;

namespace {
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
}  // namespace

namespace {

struct Shape {
  int64_t k, n;
  const char* what;
};
const Shape kShapes[] = {{576, 1536, "ffn gate/up"}, {1536, 576, "ffn down"}, {576, 576, "attn q/o"},
                         {576, 192, "attn k/v"},     {576, 49152, "output"}};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

// Persistent worker threads (spawning threads per call would dominate the small shapes): each
// call publishes a job and a generation number; workers spin until it changes.
class SpinPool {
 public:
  explicit SpinPool(int threads) : n_(threads) {
    for (int p = 1; p < n_; ++p) workers_.emplace_back([this, p] { Work(p); });
  }
  ~SpinPool() {
    stop_ = true;
    generation_.fetch_add(1);
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }
  // Runs fn(p) for p in [0, size()) and waits for all.
  void Run(const std::function<void(int)>& fn) {
    job_ = &fn;
    pending_.store(n_ - 1);
    generation_.fetch_add(1);
    fn(0);
    for (int spins = 0; pending_.load() != 0; ++spins) {
      if (spins > 1000) std::this_thread::yield();  // a busy shared machine: give the core away
    }
  }

 private:
  void Work(int p) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      for (int spins = 0; (g = generation_.load()) == seen; ++spins) {
        if (spins > 1000) std::this_thread::yield();
      }
      seen = g;
      if (stop_) return;
      (*job_)(p);
      pending_.fetch_sub(1);
    }
  }
  int n_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;
};

// Runs prepare + matmul, threads splitting rows (prepare) and columns (matmul, at multiples of 8).
void RunOnce(SpinPool& pool, TensorType t, const uint8_t* w, size_t stride, int64_t n, const float* x, int64_t m,
             int64_t k, uint8_t* act, float* y) {
  const int threads = pool.size();
  if (threads <= 1) {
    PrepareActivations(t, x, m, k, k, act);
    MatMulPrepared(t, w, stride, 0, n, act, m, k, y, n);
    return;
  }
  pool.Run([&](int p) { PrepareActivationRows(t, x, k, k, m * p / threads, m * (p + 1) / threads, act); });
  const int64_t step = (n / threads + 7) / 8 * 8;
  pool.Run([&](int p) {
    const int64_t b = std::min<int64_t>(n, step * p), e = p + 1 == threads ? n : std::min<int64_t>(n, step * (p + 1));
    MatMulPrepared(t, w, stride, b, e, act, m, k, y, n);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  double min_ms = 300;
  std::vector<std::string> types = {"Q4_1", "Q8_0"};
  std::vector<int64_t> ms = {1, 512};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads") threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--min-ms") min_ms = std::atof(next().c_str());
    else if (a == "--types") types = Split(next());
    else if (a == "--m") {
      ms.clear();
      for (const auto& s : Split(next())) ms.push_back(std::atoll(s.c_str()));
    } else if (a == "--isa") {
      SetKernelIsa(next() == "scalar" ? KernelIsa::kScalar : KernelIsa::kAvx2);
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--isa scalar|avx2] [--min-ms MS] [--types q4_1,q8_0] [--m 1,512]\n", argv[0]);
      return 2;
    }
  }
  std::printf("kernels: %s, threads: %d\n", KernelIsaName(ActiveKernelIsa()), threads);
  std::printf("%-5s %5s %6s %5s %-12s %10s %9s %8s %10s %9s\n", "type", "m", "n", "k", "layer", "median_us", "GFLOP/s",
              "GB/s(W)", "cpu_us", "cpuGFLOP/s");
  SpinPool pool(threads);
  std::mt19937 rng(42);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  for (const auto& tname : types) {
    const auto t = ParseTensorType(tname);
    if (!t || !CanMatMul(*t)) {
      std::fprintf(stderr, "unknown or unsupported type %s\n", tname.c_str());
      return 2;
    }
    for (const Shape& s : kShapes) {
      const size_t stride = RowBytes(*t, s.k);
      std::vector<uint8_t> w(stride * static_cast<size_t>(s.n));
      std::vector<float> row(static_cast<size_t>(s.k));
      for (int64_t j = 0; j < s.n; ++j) {
        for (auto& v : row) v = gauss(rng) * 0.02f;
        if (!QuantizeRow(*t, row.data(), w.data() + stride * static_cast<size_t>(j), s.k).ok()) return 1;
      }
      for (int64_t m : ms) {
        std::vector<float> x(static_cast<size_t>(m * s.k));
        for (auto& v : x) v = gauss(rng);
        std::vector<float> y(static_cast<size_t>(m * s.n));
        std::vector<uint8_t> act(ActivationBytes(*t, m, s.k) + 64);
        uint8_t* a = act.data() + ((64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64);
        RunOnce(pool, *t, w.data(), stride, s.n, x.data(), m, s.k, a, y.data());  // warm-up
        std::vector<double> times, cpu_times;
        const auto start = Clock::now();
        while (times.size() < 5 ||
               (std::chrono::duration<double, std::milli>(Clock::now() - start).count() < min_ms && times.size() < 10000)) {
          const auto t0 = Clock::now();
          const double c0 = ThreadCpuSeconds();
          RunOnce(pool, *t, w.data(), stride, s.n, x.data(), m, s.k, a, y.data());
          cpu_times.push_back(ThreadCpuSeconds() - c0);
          times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        }
        std::sort(times.begin(), times.end());
        std::sort(cpu_times.begin(), cpu_times.end());
        const double med = times[times.size() / 2];
        const double cpu_med = cpu_times[cpu_times.size() / 2];
        const double gflops = 2.0 * static_cast<double>(m) * static_cast<double>(s.n) * static_cast<double>(s.k) / med * 1e-9;
        const double gbs = static_cast<double>(w.size()) / med * 1e-9;
        std::printf("%-5s %5lld %6lld %5lld %-12s %10.1f %9.1f %8.1f", tname.c_str(), static_cast<long long>(m),
                    static_cast<long long>(s.n), static_cast<long long>(s.k), s.what, med * 1e6, gflops, gbs);
        if (threads == 1) std::printf(" %10.1f %9.1f", cpu_med * 1e6, gflops * med / cpu_med);
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
