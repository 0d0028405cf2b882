#include "core/util/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace lms {
namespace {

std::mutex g_mu;
LogCallback g_callback;  // guarded by g_mu; empty means the stderr default
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

}  // namespace

void SetLogCallback(LogCallback cb) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_callback = std::move(cb);
}

void SetLogLevel(LogLevel min_level) { g_min_level.store(static_cast<int>(min_level)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_min_level.load(); }

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_callback) {
    g_callback(level, message);
  } else {
    std::fprintf(stderr, "[%s] %.*s\n", LevelName(level), static_cast<int>(message.size()), message.data());
  }
}

}  // namespace lms
