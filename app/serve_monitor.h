// Samples a server's engine metrics on a thread of its own (every `period`) into rolling series
// for plots: output tokens/s, running and waiting requests, KV usage and prefix-cache hit rate.
// The drawing side takes a copy of the series (Snapshot) and never touches the engine.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/serve/metrics.h"

namespace lms::app {

struct ServeSeries {
  std::vector<float> t_s;            // seconds since the monitor started
  std::vector<float> output_tok_s;   // generated tokens per second over the last period
  std::vector<float> running, waiting;
  std::vector<float> kv_usage_pct;   // blocks in use / total, in %
  std::vector<float> prefix_hit_pct; // prefix-cache hit rate over the last period, in % (0 with no prompts)
  serve::EngineMetrics latest;       // the last sample
  int64_t samples = 0;               // taken since start (the series keep the last `capacity`)
};

class ServeMonitor {
 public:
  // `metrics` is called from the monitor's thread; it must be thread-safe.
  ServeMonitor(std::function<serve::EngineMetrics()> metrics, std::chrono::milliseconds period, size_t capacity = 240);
  ~ServeMonitor();  // stops and joins the thread
  ServeSeries Snapshot() const;

 private:
  void Sample(double t, const serve::EngineMetrics& m, double dt);

  std::function<serve::EngineMetrics()> metrics_;
  std::chrono::milliseconds period_;
  size_t capacity_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  ServeSeries series_;           // GUARDED_BY(mu_)
  serve::EngineMetrics prev_;    // touched only by the thread; zero at start: the first sample counts from the engine's start
  std::thread thread_;
};

}  // namespace lms::app
