// Core logs through a settable callback; the app installs real sinks (spdlog, GUI ring buffer).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace lms {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using LogCallback = std::function<void(LogLevel, std::string_view)>;

// Thread-safe. The default callback writes "[level] message" to stderr at kInfo and above.
void SetLogCallback(LogCallback cb);
void SetLogLevel(LogLevel min_level);
void Log(LogLevel level, std::string_view message);
bool LogEnabled(LogLevel level);

inline void LogDebug(std::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarn(std::string_view m) { Log(LogLevel::kWarn, m); }
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }

}  // namespace lms
