// Training checkpoints: weights, AdamW moments, step, RNG state and data position, written
// atomically (temp file, fsync, rename) so a kill at any moment leaves a loadable checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/train/train_model.h"
#include "core/util/status.h"

namespace lms::train {

struct Checkpoint {
  ModelShape shape;
  int64_t step = 0;             // optimizer steps completed
  int64_t data_position = 0;    // BatchLoader position for the next step
  std::string rng_state;        // std::mt19937_64 state as its stream text
  std::vector<float> params, m, v;
};

// Format: "LMSCKPT1", u64 header length, JSON header (shape, step, data position, rng, sizes),
// then params, m and v as little-endian f32.
Status SaveCheckpoint(const std::string& path, const Checkpoint& c);
Result<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace lms::train
