// The process-wide switch of launch.cuh's dependent launches.
#include <atomic>

#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

std::atomic<bool> g_dependent_launches{false};

}  // namespace

void SetDependentLaunches(bool on) { g_dependent_launches.store(on, std::memory_order_relaxed); }
bool DependentLaunches() { return g_dependent_launches.load(std::memory_order_relaxed); }

}  // namespace lms::gpu
