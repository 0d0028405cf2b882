// SHA-256 of files and byte strings, as lowercase hex.
#pragma once

#include <string>
#include <string_view>

#include "core/util/status.h"

namespace lms {

Result<std::string> Sha256File(const std::string& path);
std::string Sha256Hex(std::string_view bytes);

}  // namespace lms
