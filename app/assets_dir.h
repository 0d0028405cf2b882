// Where lmstation's assets (judge prompts, question sets, example jobs) are.
#pragma once

#include <string>

namespace lms::app {

// The first that exists: $LMS_ASSETS_DIR; <exe dir>/../share/lmstation/assets (an installed or
// unpacked package); the source tree's assets/ this binary was built from.
std::string AssetsDir();

// This program's own executable (to run job steps as child processes).
std::string SelfExecutable();

}  // namespace lms::app
