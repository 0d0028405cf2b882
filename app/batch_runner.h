// Runs a batch job (app/batch_job.h): each step is this same program started as a child
// process with the step's subcommand, so a step that crashes or is killed cannot take the job
// runner down, and every step's output and log are kept in the job's workdir.
//
// Before anything runs, every step's arguments are parsed by the real command-line parser, so a
// typo in step 7 is reported before step 1 spends an hour. A job is recorded in the database as
// a run of kind "batch" (config: the job file and the steps' command lines; metrics per step:
// seconds and exit code; status done / failed / cancelled). Steps whose subcommand takes --db
// get the job's database unless they name one themselves.
//
// Progress is published as a snapshot (Snapshot()) that a GUI can poll; Cancel() stops the
// running step (SIGINT, then SIGKILL after a grace period) and skips the rest.
#pragma once

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/batch_job.h"

namespace lms::app {

struct BatchStepState {
  std::string status = "pending";  // pending, running, done, failed, cancelled, skipped
  int exit_code = 0;               // child's exit code (128 + signal when killed)
  double seconds = 0;
  std::string last_line;           // the step's most recent log line
};

struct BatchSnapshot {
  std::string job;
  int current = 0;  // 1-based index of the running step, 0 before/after
  int total = 0;
  double elapsed_s = 0;
  std::vector<BatchStepState> steps;
};

struct BatchOptions {
  std::string executable;      // the lmstation binary to run steps with
  int verbosity = 0;           // passed on to the steps (-v / -q)
  bool echo_logs = true;       // copy step logs to stderr, prefixed by the step
  bool progress_bar = false;   // redraw a bar on stderr (a terminal)
  double cancel_grace_s = 10;  // SIGINT, then SIGKILL after this long
};

class BatchRunner {
 public:
  BatchRunner(BatchJob job, BatchOptions options);

  // Parses every step's arguments with the real parser. Errors name the step.
  Status Validate() const;
  // The command line each step will run (executable first).
  std::vector<std::string> StepArgv(const BatchStep& step) const;
  // Runs the steps in order until one fails or Cancel() is called; records the run. The
  // returned summary is the JSON printed by --batch.
  nlohmann::ordered_json Run();

  const BatchJob& job() const { return job_; }
  BatchSnapshot Snapshot() const;
  void Cancel() { cancel_.store(true); }

 private:
  int RunStep(const BatchStep& step, BatchStepState& state, nlohmann::ordered_json& out);
  void SetStep(int index, const BatchStepState& s);
  bool SubcommandTakesDb(const std::string& command) const;

  BatchJob job_;
  BatchOptions options_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  BatchSnapshot snapshot_;  // GUARDED_BY(mu_)
};

// `lmstation --batch FILE [--dry-run]`: exit 0 when every step succeeded, 1 when a step failed
// (named on stderr and in the summary), 2 for a bad job file, 130 when interrupted.
int RunBatch(const std::string& job_path, bool dry_run, int verbosity);

}  // namespace lms::app
