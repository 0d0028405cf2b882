// The lmstation command line: parses arguments and dispatches to the subcommands.
#pragma once

namespace lms::app {
int RunCli(int argc, char** argv);
}
