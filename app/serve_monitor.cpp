#include "app/serve_monitor.h"

namespace lms::app {

ServeMonitor::ServeMonitor(std::function<serve::EngineMetrics()> metrics, std::chrono::milliseconds period, size_t capacity)
    : metrics_(std::move(metrics)), period_(period), capacity_(capacity) {
  thread_ = std::thread([this] {
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    while (!stop_.load()) {
      // Sleep in small slices so that the destructor does not wait a whole period.
      const auto wake = last + period_;
      while (!stop_.load() && std::chrono::steady_clock::now() < wake) {
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(wake - std::chrono::steady_clock::now(),
                                                                                  std::chrono::milliseconds(20)));
      }
      if (stop_.load()) break;
      const auto now = std::chrono::steady_clock::now();
      const serve::EngineMetrics m = metrics_();
      Sample(std::chrono::duration<double>(now - t0).count(), m, std::chrono::duration<double>(now - last).count());
      last = now;
    }
  });
}

ServeMonitor::~ServeMonitor() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ServeMonitor::Sample(double t, const serve::EngineMetrics& m, double dt) {
  const double gen = static_cast<double>(m.generation_tokens - prev_.generation_tokens);
  const double queried = static_cast<double>(m.prefix_query_tokens - prev_.prefix_query_tokens);
  const double hit = static_cast<double>(m.prefix_hit_tokens - prev_.prefix_hit_tokens);
  prev_ = m;
  std::lock_guard<std::mutex> lock(mu_);
  ServeSeries& s = series_;
  auto push = [this](std::vector<float>& v, double x) {
    if (v.size() >= capacity_) v.erase(v.begin());
    v.push_back(static_cast<float>(x));
  };
  push(s.t_s, t);
  push(s.output_tok_s, dt > 0 ? gen / dt : 0.0);
  push(s.running, static_cast<double>(m.running));
  push(s.waiting, static_cast<double>(m.waiting));
  push(s.kv_usage_pct, 100.0 * m.kv_usage());
  push(s.prefix_hit_pct, queried > 0 ? 100.0 * hit / queried : 0.0);
  s.latest = m;
  ++s.samples;
}

ServeSeries ServeMonitor::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return series_;
}

}  // namespace lms::app
