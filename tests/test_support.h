// Helpers shared by the test suites: where test data lives, and skipping cleanly without it.
#pragma once

#include <optional>
#include <string>

namespace lms::test {

// ../shared/data beside the source tree (or $LMS_SHARED_DATA); nullopt when absent.
std::optional<std::string> SharedDataDir();
// The default model (SmolLM2-135M-Instruct Q4_1) from the model cache, or $LMS_TEST_MODEL;
// nullopt when it has not been pulled.
std::optional<std::string> DefaultModelPath();
// A fresh temporary directory, removed at process exit.
std::string TempDir();

// Runs a shell command line; its exit code and standard output (-1 when it could not start).
struct ShellResult {
  int exit_code = -1;
  std::string out;
};
ShellResult RunShell(const std::string& command_line);

}  // namespace lms::test

// Skip the current test case, printing why (Catch2 v2 has no SKIP).
#define LMS_SKIP(why)                                  \
  do {                                                 \
    WARN("SKIPPED: " << (why));                        \
    return;                                            \
  } while (0)
