// Small file helpers for training outputs: atomic writes (temp file, fsync, rename, fsync of the
// directory) so a crash leaves either the old file or the new one, never a torn one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms::train {

Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes);
Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path);

}  // namespace lms::train
