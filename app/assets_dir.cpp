#include "app/assets_dir.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#ifndef LMS_ASSETS_DIR
#define LMS_ASSETS_DIR "assets"
#endif

namespace lms::app {

namespace fs = std::filesystem;

std::string SelfExecutable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string AssetsDir() {
  std::error_code ec;
  if (const char* env = std::getenv("LMS_ASSETS_DIR"); env && *env) return env;
  const std::string self = SelfExecutable();
  if (!self.empty()) {
    const fs::path installed = fs::path(self).parent_path().parent_path() / "share" / "lmstation" / "assets";
    if (fs::is_directory(installed, ec)) return installed.lexically_normal().string();
  }
  return LMS_ASSETS_DIR;
}

}  // namespace lms::app
