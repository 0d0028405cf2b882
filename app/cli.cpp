#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>

namespace lms::app {

int RunCli(int argc, char** argv) {
  CLI::App cli{"lmstation: train, serve and evaluate language models on one workstation"};
  cli.require_subcommand(1);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  return 0;
}

}  // namespace lms::app
