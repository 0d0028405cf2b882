#include "app/batch_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/assets_dir.h"
#include "app/cli.h"
#include "app/commands.h"

namespace lms::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Subcommands a job cannot run: they wait for a person at the terminal.
bool Interactive(const std::string& command) { return command == "chat"; }

std::string StepFileStem(const BatchStep& s) {
  std::string label;
  for (char c : s.name) label += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return fmt::format("{:02d}-{}", s.index, label);
}

// Set by SIGINT/SIGTERM while a job runs.
std::atomic<BatchRunner*> g_active{nullptr};
void OnSignal(int) {
  if (BatchRunner* r = g_active.load()) r->Cancel();
}

std::string Shell(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace

BatchRunner::BatchRunner(BatchJob job, BatchOptions options) : job_(std::move(job)), options_(std::move(options)) {
  snapshot_.job = job_.name;
  snapshot_.total = static_cast<int>(job_.steps.size());
  snapshot_.steps.resize(job_.steps.size());
}

bool BatchRunner::SubcommandTakesDb(const std::string& command) const {
  auto parser = BuildCliParser();
  for (auto& [sub, fn] : parser->commands) {
    if (sub->get_name() == command) return sub->get_option_no_throw("--db") != nullptr;
  }
  return false;
}

std::vector<std::string> BatchRunner::StepArgv(const BatchStep& step) const {
  std::vector<std::string> argv{options_.executable.empty() ? "lmstation" : options_.executable};
  if (options_.verbosity > 0) argv.push_back("-v");
  if (options_.verbosity < 0) argv.push_back("-q");
  argv.push_back(step.command);
  const bool names_db = std::find(step.args.begin(), step.args.end(), "--db") != step.args.end();
  if (!job_.db.empty() && !names_db && SubcommandTakesDb(step.command)) {
    argv.push_back("--db");
    argv.push_back(job_.db);
  }
  argv.insert(argv.end(), step.args.begin(), step.args.end());
  return argv;
}

Status BatchRunner::Validate() const {
  for (const BatchStep& step : job_.steps) {
    const std::string where = fmt::format("{}: step {} ({})", job_.file, step.index, step.name);
    if (Interactive(step.command)) {
      return Status::InvalidArgument(where + ": '" + step.command + "' is interactive; a job cannot run it");
    }
    auto parser = BuildCliParser();
    bool known = false;
    for (auto& [sub, fn] : parser->commands) known = known || sub->get_name() == step.command;
    if (!known) {
      std::string names;
      for (auto& [sub, fn] : parser->commands) names += (names.empty() ? "" : ", ") + sub->get_name();
      return Status::InvalidArgument(fmt::format("{}: unknown subcommand '{}' (known: {})", where, step.command, names));
    }
    std::vector<std::string> argv = StepArgv(step);
    argv.erase(argv.begin());  // the executable
    std::reverse(argv.begin(), argv.end());  // CLI11 takes the arguments last-first
    try {
      parser->app.parse(argv);
    } catch (const CLI::ValidationError&) {
      // A check on a value (an input file that an earlier step will make, a range): the step
      // itself reports it if it still fails when it runs.
    } catch (const CLI::CallForHelp&) {
      return Status::InvalidArgument(where + ": --help asks for help, not work; remove it");
    } catch (const CLI::CallForAllHelp&) {
      return Status::InvalidArgument(where + ": --help-all asks for help, not work; remove it");
    } catch (const CLI::CallForVersion&) {
      return Status::InvalidArgument(where + ": --version is not a step");
    } catch (const CLI::ParseError& e) {
      return Status::InvalidArgument(fmt::format("{}: {} (command: lmstation {})", where, e.what(), Shell(StepArgv(step)).substr(StepArgv(step)[0].size() + 1)));
    }
    if (!parser->batch.empty()) return Status::InvalidArgument(where + ": a step cannot run another job (--batch)");
  }
  return Status::Ok();
}

BatchSnapshot BatchRunner::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void BatchRunner::SetStep(int index, const BatchStepState& s) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.steps[index - 1] = s;
  snapshot_.current = s.status == "running" ? index : 0;
}

int BatchRunner::RunStep(const BatchStep& step, BatchStepState& state, nlohmann::ordered_json& out) {
  const std::vector<std::string> argv = StepArgv(step);
  const std::string stem = (fs::path(job_.workdir) / StepFileStem(step)).string();
  const std::string out_path = stem + ".out", log_path = stem + ".log";
  out["command"] = Shell(argv);
  out["stdout_file"] = out_path;
  out["log_file"] = log_path;

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    state.last_line = "cannot create a pipe";
    return -1;
  }
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || null_fd < 0) {
    state.last_line = "cannot create " + out_path;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    if (out_fd >= 0) ::close(out_fd);
    if (null_fd >= 0) ::close(null_fd);
    return -1;
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // Child: stdin from /dev/null, stdout to the step's file, stderr to the runner.
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(pipe_fds[1], 2);
    ::close(pipe_fds[0]);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execv(cargv[0], cargv.data());
    const std::string msg = std::string("error: cannot run ") + cargv[0] + "\n";
    (void)!::write(2, msg.data(), msg.size());
    _exit(127);
  }
  ::close(pipe_fds[1]);
  ::close(out_fd);
  ::close(null_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    state.last_line = "cannot start a process";
    return -1;
  }

  std::ofstream log(log_path, std::ios::binary);
  const auto t0 = Clock::now();
  std::string pending;
  bool stopped_by_us = false;
  double stop_sent_at = -1;
  bool eof = false;
  int status = 0;
  bool reaped = false;
  const std::string prefix = fmt::format("[{}/{} {}] ", step.index, job_.steps.size(), step.name);
  auto draw_bar = [&](bool clear_only) {
    if (!options_.progress_bar) return;
    std::fprintf(stderr, "\r\033[K");
    if (clear_only) return;
    const int width = 24;
    const int done = static_cast<int>(width * (step.index - 1) / std::max<size_t>(1, job_.steps.size()));
    std::string bar(static_cast<size_t>(done), '#');
    bar += '>';
    bar.resize(width, '.');
    std::fprintf(stderr, "[%s] step %d/%zu %s  %.0fs", bar.c_str(), step.index, job_.steps.size(), step.name.c_str(), Since(t0));
    std::fflush(stderr);
  };
  auto emit = [&](const std::string& line) {
    log << line << '\n';
    state.last_line = line;
    SetStep(step.index, state);
    if (options_.echo_logs) {
      draw_bar(true);
      std::fprintf(stderr, "%s%s\n", prefix.c_str(), line.c_str());
    }
    draw_bar(false);
  };
  while (!reaped) {
    if (!eof) {
      pollfd pfd{pipe_fds[0], POLLIN, 0};
      const int r = ::poll(&pfd, 1, 200);
      if (r > 0) {
        char buf[4096];
        const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
        if (n > 0) {
          pending.append(buf, static_cast<size_t>(n));
          size_t nl;
          while ((nl = pending.find_first_of("\n\r")) != std::string::npos) {
            if (nl > 0) emit(pending.substr(0, nl));
            pending.erase(0, nl + 1);
          }
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
    } else {
      ::usleep(50 * 1000);
    }
    const double t = Since(t0);
    draw_bar(false);
    if (stop_sent_at < 0 && (cancel_.load() || (step.seconds > 0 && t >= step.seconds))) {
      stopped_by_us = !cancel_.load();
      ::kill(pid, SIGINT);
      stop_sent_at = t;
      if (stopped_by_us) emit(fmt::format("(stopping after {:g} s, as the job asks)", step.seconds));
    } else if (stop_sent_at >= 0 && t - stop_sent_at > options_.cancel_grace_s) {
      ::kill(pid, SIGKILL);
      stop_sent_at = t + 1e9;  // once
    }
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) reaped = true;
  }
  // Drain what the child wrote just before it exited.
  for (;;) {
    char buf[4096];
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  std::istringstream rest(pending);
  for (std::string line; std::getline(rest, line);) {
    if (!line.empty()) emit(line);
  }
  draw_bar(true);
  state.seconds = Since(t0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (stopped_by_us && (code == 0 || code == 128 + SIGINT)) return 0;
  return code;
}

nlohmann::ordered_json BatchRunner::Run() {
  nlohmann::ordered_json summary;
  summary["job"] = job_.name;
  summary["file"] = job_.file;
  summary["workdir"] = job_.workdir;
  summary["db"] = job_.db.empty() ? "(default)" : job_.db;
  const auto t0 = Clock::now();
  std::error_code ec;
  fs::create_directories(job_.workdir, ec);
  if (ec) {
    summary["status"] = "failed";
    summary["error"] = fmt::format("cannot create workdir {}: {}", job_.workdir, ec.message());
    return summary;
  }
  auto store = OpenStore(job_.db);
  if (!store.ok()) {
    summary["status"] = "failed";
    summary["error"] = store.status().message();
    return summary;
  }
  nlohmann::ordered_json config;
  config["file"] = job_.file;
  config["workdir"] = job_.workdir;
  config["steps"] = nlohmann::ordered_json::array();
  for (const auto& s : job_.steps) config["steps"].push_back({{"name", s.name}, {"command", Shell(StepArgv(s))}});
  config["text"] = job_.text;
  auto run = (*store)->StartRun("batch", job_.name, config.dump());
  if (!run.ok()) {
    summary["status"] = "failed";
    summary["error"] = run.status().message();
    return summary;
  }
  const int64_t run_id = run->id;
  summary["run_id"] = run_id;

  std::string final_status = "done";
  summary["failed_step"] = nullptr;
  nlohmann::ordered_json steps = nlohmann::ordered_json::array();
  for (const BatchStep& step : job_.steps) {
    nlohmann::ordered_json js;
    js["index"] = step.index;
    js["name"] = step.name;
    BatchStepState state;
    if (final_status != "done") {
      state.status = "skipped";
      SetStep(step.index, state);
      js["status"] = state.status;
      steps.push_back(js);
      continue;
    }
    state.status = "running";
    SetStep(step.index, state);
    if (options_.echo_logs && !options_.progress_bar) std::fprintf(stderr, "[%d/%zu %s] lmstation %s\n", step.index, job_.steps.size(), step.name.c_str(), Shell(StepArgv(step)).substr(StepArgv(step)[0].size() + 1).c_str());
    const int code = RunStep(step, state, js);
    state.exit_code = code;
    if (cancel_.load()) {
      state.status = "cancelled";
      final_status = "cancelled";
    } else if (code != 0) {
      state.status = "failed";
      final_status = "failed";
      summary["failed_step"] = {{"index", step.index}, {"name", step.name}, {"exit_code", code}, {"log_file", js.value("log_file", "")}};
    } else {
      state.status = "done";
    }
    SetStep(step.index, state);
    js["status"] = state.status;
    js["exit_code"] = code;
    js["seconds"] = state.seconds;
    // A step that printed JSON (--json) has it inline in the summary.
    std::ifstream so(js.value("stdout_file", ""), std::ios::binary);
    std::ostringstream ss;
    ss << so.rdbuf();
    auto parsed = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
    if (!parsed.is_discarded() && !ss.str().empty()) js["output"] = parsed;
    if (state.status == "failed" && !state.last_line.empty()) js["error"] = state.last_line;
    steps.push_back(js);
    Status m = (*store)->AddMetric(run_id, step.index, "step_seconds", state.seconds);
    if (m.ok()) m = (*store)->AddMetric(run_id, step.index, "step_exit_code", code);
    if (!m.ok()) std::fprintf(stderr, "warning: could not record step %d: %s\n", step.index, m.message().c_str());
    const double e = Since(t0);
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_.elapsed_s = e;
  }
  Status fin = (*store)->FinishRun(run_id, final_status);
  if (!fin.ok()) std::fprintf(stderr, "warning: could not record the job's end: %s\n", fin.message().c_str());
  summary["status"] = final_status;
  summary["seconds"] = Since(t0);
  summary["steps"] = steps;
  return summary;
}

int RunBatch(const std::string& job_path, bool dry_run, int verbosity) {
  BatchPaths paths;
  std::error_code ec;
  paths.cwd = fs::current_path(ec).string();
  paths.assets = fs::absolute(AssetsDir(), ec).lexically_normal().string();
  auto job = LoadBatchJob(job_path, paths);
  if (!job.ok()) {
    std::fprintf(stderr, "error: %s\n", job.status().message().c_str());
    return 2;
  }
  BatchOptions options;
  options.executable = SelfExecutable();
  options.verbosity = verbosity;
  options.progress_bar = isatty(2) != 0;
  options.echo_logs = !options.progress_bar || verbosity >= 0;
  BatchRunner runner(std::move(*job), options);
  if (Status st = runner.Validate(); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 2;
  }
  if (dry_run) {
    nlohmann::ordered_json plan;
    plan["job"] = runner.job().name;
    plan["status"] = "checked";
    plan["workdir"] = runner.job().workdir;
    plan["steps"] = nlohmann::ordered_json::array();
    for (const auto& s : runner.job().steps) {
      auto argv = runner.StepArgv(s);
      argv[0] = "lmstation";
      plan["steps"].push_back({{"index", s.index}, {"name", s.name}, {"argv", argv}});
    }
    std::printf("%s\n", plan.dump(1).c_str());
    return 0;
  }
  g_active.store(&runner);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  nlohmann::ordered_json summary = runner.Run();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  g_active.store(nullptr);
  std::printf("%s\n", summary.dump(1).c_str());
  const std::string status = summary.value("status", "failed");
  if (status == "done") {
    std::fprintf(stderr, "job %s: %zu steps done in %.1f s\n", summary.value("job", "").c_str(),
                 summary["steps"].size(), summary.value("seconds", 0.0));
    return 0;
  }
  if (status == "cancelled") {
    std::fprintf(stderr, "job %s: interrupted\n", summary.value("job", "").c_str());
    return 130;
  }
  if (summary.contains("failed_step") && !summary["failed_step"].is_null()) {
    const auto& f = summary["failed_step"];
    std::fprintf(stderr, "error: step %d (%s) failed with exit code %d; its log: %s\n", f.value("index", 0),
                 f.value("name", "").c_str(), f.value("exit_code", 0), f.value("log_file", "").c_str());
  } else {
    std::fprintf(stderr, "error: %s\n", summary.value("error", "the job could not start").c_str());
  }
  return 1;
}

}  // namespace lms::app
