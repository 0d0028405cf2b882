// Where a run stands in the record: what it wrote, which runs' records it used (upstream: the
// answers a judge run judged, the battles a rating snapshot was computed from, the answers a
// person voted on), which runs used its records (downstream), and the model files behind the
// contestants and judges it involved. And a side-by-side comparison of two runs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/store/store.h"

namespace lms::store {

struct RunLineage {
  RunInfo run;
  std::vector<std::pair<std::string, int64_t>> produced;  // "answers", "judgments", … (non-zero only)
  std::vector<std::pair<std::string, double>> last_metrics;  // each metric's value at its latest step
  std::vector<RunInfo> upstream;    // runs whose records this one used
  std::vector<RunInfo> downstream;  // runs that used this one's records
  struct ModelUse {
    std::string contestant, role;  // role: "answered", "judged" or "rated"
    std::string model_path, sha256;  // empty for endpoints
  };
  std::vector<ModelUse> models;
};

// NotFound when the run does not exist.
Result<RunLineage> LoadRunLineage(Store& st, int64_t run_id);

// One row of a comparison: what is compared and the two runs' values ("" when a run has none).
struct ComparisonRow {
  std::string what, a, b;
  bool differs() const { return a != b; }
};
// Kind, name, status, times, each top-level configuration key, each count of what the runs
// wrote, each metric's last value.
Result<std::vector<ComparisonRow>> CompareRuns(Store& st, int64_t run_a, int64_t run_b);

}  // namespace lms::store
