// Runs a job's units of work (one question each) on up to `workers` threads at once, so that an
// answerer able to take several conversations together (the serving engine, an endpoint) gets
// them. Units are started in order; the first failure stops new units from starting and is
// returned once the units in flight have finished. `stop` (optional) does the same with
// Cancelled. With one worker everything runs on the calling thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>

#include "core/util/status.h"

namespace lms::eval {

Status RunUnits(size_t n_units, int workers, const std::atomic<bool>* stop, const std::function<Status(size_t unit)>& run_unit,
                const char* what = "job");

}  // namespace lms::eval
