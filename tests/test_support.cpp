#include "tests/test_support.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace lms::test {

std::optional<std::string> SharedDataDir() {
  if (const char* env = std::getenv("LMS_SHARED_DATA"); env && *env) {
    if (fs::is_directory(env)) return std::string(env);
    return std::nullopt;
  }
  fs::path p = fs::path(LMS_SOURCE_DIR) / ".." / "shared" / "data";
  if (fs::is_directory(p)) return fs::weakly_canonical(p).string();
  return std::nullopt;
}

std::optional<std::string> DefaultModelPath() {
  if (const char* env = std::getenv("LMS_TEST_MODEL"); env && *env) {
    if (fs::exists(env)) return std::string(env);
    return std::nullopt;
  }
  if (const char* d = std::getenv("LMS_MODEL_DIR"); d && *d) {
    fs::path p = fs::path(d) / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (fs::exists(p)) return p.string();
  }
  fs::path cache;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = x;
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    cache = fs::path(h) / ".cache";
  } else {
    return std::nullopt;
  }
  fs::path p = cache / "lmstation" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (fs::exists(p)) return p.string();
  return std::nullopt;
}

namespace {
std::mutex g_mu;
std::vector<fs::path> g_dirs;
struct Cleanup {
  ~Cleanup() {
    for (auto& d : g_dirs) {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  }
} g_cleanup;
}  // namespace

std::string TempDir() {
  std::lock_guard<std::mutex> lock(g_mu);
  static int counter = 0;
  fs::path d = fs::temp_directory_path() /
               ("lms_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::create_directories(d);
  g_dirs.push_back(d);
  return d.string();
}

ShellResult RunShell(const std::string& command_line) {
  ShellResult r;
  FILE* p = popen(command_line.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace lms::test
