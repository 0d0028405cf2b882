// The lmstation command line: parses arguments and dispatches to the subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "app/commands.h"
#include "app/desktop_hook.h"

namespace lms::app {

// The full parser: global flags and every subcommand with the function that runs it.
struct CliParser {
  CLI::App app{"lmstation: train, serve and evaluate language models on one workstation"};
  std::vector<std::pair<CLI::App*, CommandFn>> commands;
  bool verbose = false, quiet = false;
  std::string batch;     // --batch JOB.toml
  bool dry_run = false;  // --dry-run (with --batch)
  DesktopOptions desktop;  // with no subcommand
};
std::unique_ptr<CliParser> BuildCliParser();

int RunCli(int argc, char** argv);

}  // namespace lms::app
