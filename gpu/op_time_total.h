// One op's share of GPU time (gpu/op_times.h), in a header without CUDA for interfaces that
// plain C++ includes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lms::gpu {

struct OpTimeTotal {
  std::string name;
  int64_t calls = 0;
  double ms = 0;
};

// Adds `other` into `into` (per name), most time first; and the totals as a text table.
void MergeOpTimes(const std::vector<OpTimeTotal>& other, std::vector<OpTimeTotal>& into);
std::string OpTimesTable(const std::vector<OpTimeTotal>& totals);

}  // namespace lms::gpu
