// Batch job files (`lmstation --batch JOB.toml`): a named list of steps, each one lmstation
// subcommand with its arguments, run in order by the batch runner (app/batch_runner.h).
//
//   name = "quick-eval"              # optional; default: the file's stem
//   workdir = "quick-eval-out"       # optional; outputs and step logs (relative to the
//                                    # current directory); default "lmstation-<name>"
//   db = "results.db"                # optional; default: the usual database
//
//   [[step]]
//   run = "quantize"                 # the subcommand
//   args = ["smollm2", "${workdir}/smollm2.q8_0.gguf", "Q8_0"]   # positional arguments
//   name = "make-q8"                 # optional label (default: the subcommand)
//   # every other key becomes an option: key = "v" -> --key v; key = true -> --key;
//   # key = false -> nothing; key = [a, b] -> --key a --key b; numbers as written.
//
//   [[step]]
//   run = "serve"
//   args = ["smollm2"]
//   seconds = 5                      # serve only: stop it (SIGINT) after this long
//
// Strings may use ${workdir} (absolute), ${jobdir} (the job file's folder, absolute) and
// ${assets} (lmstation's assets folder). `$$` is a literal `$`.
#pragma once

#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms::app {

struct BatchStep {
  int index = 0;                  // 1-based
  std::string name;               // label shown in progress and in the summary
  std::string command;            // lmstation subcommand
  std::vector<std::string> args;  // everything after the subcommand: positionals, then options
  double seconds = 0;             // serve: run this long, then stop (required for serve)
};

struct BatchJob {
  std::string file;     // the job file as given
  std::string name;
  std::string workdir;  // absolute
  std::string db;       // as written (substituted); empty: the default database
  std::string text;     // the file's contents, kept in the record
  std::vector<BatchStep> steps;
};

// Paths the substitutions expand to.
struct BatchPaths {
  std::string cwd;     // relative workdir is resolved against this
  std::string assets;  // ${assets}
};

// Reads and checks a job file: TOML syntax, known keys and their types, substitutions, at least
// one step. Errors name the file, the step (number and label) and the key.
Result<BatchJob> LoadBatchJob(const std::string& path, const BatchPaths& paths);

// Expands ${workdir}, ${jobdir}, ${assets} and $$ in `s`; an unknown ${…} is an error.
Result<std::string> ExpandBatchVars(const std::string& s, const std::string& workdir, const std::string& jobdir,
                                    const std::string& assets);

}  // namespace lms::app
