// Serving metrics: counters and latency histograms the engine thread updates and callers read
// as a snapshot (a plain copy), e.g. for Prometheus /metrics or a GUI panel.
#pragma once

#include <cstdint>
#include <vector>

namespace lms::serve {

// Prometheus-style histogram: counts[i] observations <= bounds[i] (not cumulative), the last
// count for everything above the last bound.
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {});
  void Observe(double v);
};

struct EngineMetrics {
  int64_t running = 0;            // sequences running
  int64_t waiting = 0;            // sequences waiting (new or preempted)
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;     // referenced by some sequence
  int64_t kv_blocks_cached = 0;   // findable in the prefix cache (used or not)
  int64_t kv_block_size = 0;      // tokens per block
  int64_t kv_tokens_held = 0;     // tokens with K/V in the blocks in use (a shared block counted once)
  uint64_t prefix_query_tokens = 0;
  uint64_t prefix_hit_tokens = 0;
  uint64_t prompt_tokens = 0;     // prompt tokens of admitted requests
  uint64_t computed_tokens = 0;   // tokens run through the model (prefill + decode + recompute)
  uint64_t generation_tokens = 0;
  uint64_t requests_received = 0;
  uint64_t requests_finished = 0; // includes cancelled
  uint64_t requests_cancelled = 0;
  uint64_t preemptions = 0;
  uint64_t steps = 0;
  uint64_t greedy_id_steps = 0;  // steps whose every choice was plain greedy: only token ids came back
  Histogram ttft_s{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80}};
  Histogram tpot_s{{0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5}};

  double kv_usage() const { return kv_blocks_total ? double(kv_blocks_used) / kv_blocks_total : 0.0; }
  // How full the blocks in use are: tokens held / their capacity (0 when none is in use).
  double kv_fill() const {
    return kv_blocks_used && kv_block_size ? double(kv_tokens_held) / double(kv_blocks_used * kv_block_size) : 0.0;
  }
  double prefix_hit_rate() const {
    return prefix_query_tokens ? double(prefix_hit_tokens) / prefix_query_tokens : 0.0;
  }
};

}  // namespace lms::serve
