// lmstation train / plan as a user runs them: a tiny config on the essays shipped in assets/text;
// kill -9 in the middle of a run and resume, bit-identically; the exported model runs.
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <future>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "core/store/store.h"
#include "core/train/checkpoint.h"
#include "tests/test_support.h"

namespace lms {
namespace {

struct Ran {
  int exit_code;
  std::string out;
};

// Training records its metrics in the default record when that exists: the runs here get a
// data directory of their own so they never write into the user's.
const std::string& DataHome() {
  static const std::string dir = test::TempDir() + "/xdg";
  return dir;
}

Ran Lmstation(const std::string& args) {
  const std::string cmd = "XDG_DATA_HOME='" + DataHome() + "' " + std::string(LMSTATION_BIN) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

// A config in a fresh directory; returns its path.
std::string WriteConfig(const std::string& model_section, const std::string& train_section) {
  const std::string dir = test::TempDir();
  const std::string path = dir + "/cfg.toml";
  std::ofstream(path) << model_section << "\n[data]\ntext = \"" << LMS_SOURCE_DIR
                      << "/assets/text/essays.txt\"\ntokenizer = \"byte\"\n\n"
                      << "[optim]\nlr = 3e-3\nwarmup_steps = 5\n\n" << train_section << "\n";
  return path;
}

const char* kTinyModel = "[model]\nlayers = 2\nd_model = 32\nheads = 2\nkv_heads = 1\nd_ff = 64\nseq_len = 16\n";

std::vector<std::string> LogRows(const std::string& path, int cols) {
  std::ifstream in(path);
  std::vector<std::string> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // The first `cols` fields: step, loss, lr, grad norm (tokens/s and timing vary).
    size_t at = 0;
    for (int c = 0; c < cols && at != std::string::npos; ++c) at = line.find(',', at + 1);
    rows.push_back(line.substr(0, at));
  }
  return rows;
}

// Runs lmstation without assertions (for a second thread), stderr into the output too.
Ran LmstationQuiet(const std::string& args) {
  const std::string cmd = "XDG_DATA_HOME='" + DataHome() + "' " + std::string(LMSTATION_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  return {WEXITSTATUS(pclose(p)), out};
}

// A TCP port nothing listens on right now.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Starts lmstation with `args` in a child process (stderr to /dev/null); returns its pid.
pid_t SpawnLmstation(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LMSTATION_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = fork();
  if (pid != 0) return pid;
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  freopen("/dev/null", "w", stderr);
  setenv("XDG_DATA_HOME", DataHome().c_str(), 1);
  execv(LMSTATION_BIN, cargs.data());
  _exit(127);
}

// Kills `pid` without warning once OUT/checkpoint.bin holds step `from` or later, and reaps it.
// True when the run was still short of `total` steps then; *signaled: it died of the signal.
bool KillAfterCheckpoint(pid_t pid, const std::string& out, int64_t from, int64_t total, bool* signaled) {
  bool mid_run = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    auto ck = train::LoadCheckpoint(out + "/checkpoint.bin");
    if (ck.ok() && ck->step >= from) {
      mid_run = ck->step < total;
      kill(pid, SIGKILL);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  *signaled = WIFSIGNALED(status);
  return mid_run;
}

}  // namespace

TEST_CASE("train --json trains, reports and exports a model that runs", "[train][cli]") {
  const std::string cfg = WriteConfig(kTinyModel, "[train]\nsteps = 8\nbatch_size = 4\neval_batches = 2\n");
  const std::string out = test::TempDir() + "/out";
  auto r = Lmstation("train " + cfg + " --out " + out + " --stages 2 --schedule gpipe --microbatches 2 --json -t 1");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["steps"] == 8);
  CHECK(j["stages"] == 2);
  CHECK(j["schedule"] == "gpipe");
  CHECK(j["microbatches"] == 2);
  CHECK(j["loss"].get<double>() > 0.0);
  CHECK(j["loss"].get<double>() < std::log(258.0));
  CHECK(j["val_loss"].get<double>() > 0.0);
  CHECK(j["tokens_per_s"].get<double>() > 0.0);
  CHECK(j["bubble"].get<double>() >= 0.0);
  CHECK(j["bubble"].get<double>() < 1.0);
  CHECK(j["bubble_theory"].get<double>() == Approx(1.0 / 3.0));
  CHECK(LogRows(out + "/log.csv", 1).size() == 8);
  auto tl = nlohmann::json::parse(std::ifstream(out + "/timeline.json"));
  CHECK(tl["events"].size() == 8);  // 2 stages × 2 micro-batches × (F, B)
  auto run = Lmstation("run " + out + "/model.gguf -p \"The \" -n 5 --temp 0 --ignore-eos --json");
  REQUIRE(run.exit_code == 0);
  CHECK(nlohmann::json::parse(run.out)["tokens"].size() == 5);
}

TEST_CASE("the shipped example config trains", "[train][cli]") {
  const std::string out = test::TempDir() + "/tiny";
  auto r = Lmstation(std::string("train ") + LMS_SOURCE_DIR + "/assets/examples/train_tiny.toml --steps 2 --out " + out +
                     " --json");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["steps"] == 2);
  CHECK(j["stages"] == 2);
}

TEST_CASE("train rejects bad configs with a clear message", "[train][cli]") {
  auto bad_key = WriteConfig(kTinyModel, "[train]\nstepz = 3\n");
  const std::string cmd = std::string(LMSTATION_BIN) + " train " + bad_key + " --out " + test::TempDir() + "/o 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string msg;
  std::array<char, 512> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) msg.append(buf.data(), n);
  CHECK(WEXITSTATUS(pclose(p)) == 1);
  CHECK(msg.find("unknown key 'stepz' in [train]") != std::string::npos);
  auto r = Lmstation("train " + WriteConfig(kTinyModel, "[train]\nsteps = 2\nbatch_size = 3\n") + " --microbatches 2 --out " +
                     test::TempDir() + "/o2");
  CHECK(r.exit_code == 1);
  r = Lmstation("train " + WriteConfig(kTinyModel, "[train]\nsteps = 2\n") + " --stages 5 --out " + test::TempDir() + "/o3");
  CHECK(r.exit_code == 1);
  // Devices and precisions: said plainly, before any work.
  auto said = [](const std::string& args) {
    const std::string c = std::string(LMSTATION_BIN) + " " + args + " 2>&1";
    FILE* f = popen(c.c_str(), "r");
    std::string m;
    std::array<char, 512> b;
    size_t k;
    while ((k = fread(b.data(), 1, b.size(), f)) > 0) m.append(b.data(), k);
    return std::make_pair(WEXITSTATUS(pclose(f)), m);
  };
  const std::string cfg = WriteConfig(kTinyModel, "[train]\nsteps = 1\n");
  auto [rc1, m1] = said("train " + cfg + " --precision bf16 --out " + test::TempDir() + "/o4");
  CHECK(rc1 == 1);
  CHECK(m1.find("precision 'bf16' needs a GPU") != std::string::npos);
  auto [rc2, m2] = said("train " + cfg + " --device tpu --out " + test::TempDir() + "/o5");
  CHECK(rc2 == 1);
  CHECK(m2.find("unknown training device 'tpu'") != std::string::npos);
  auto [rc3, m3] = said("plan " + cfg + " --gpus 8");
  CHECK(rc3 == 1);
  CHECK(m3.find("--gpus extrapolates profiled GPUs") != std::string::npos);
}

TEST_CASE("train: kill -9 mid-run and resume continues the loss curve bit-identically", "[train][cli][resume]") {
  const char* model = "[model]\nlayers = 4\nd_model = 64\nheads = 4\nkv_heads = 2\nd_ff = 128\nseq_len = 32\n";
  const std::string cfg = WriteConfig(model, "[train]\nsteps = 60\nbatch_size = 8\ncheckpoint_every = 5\neval_batches = 1\n");
  const std::string flags = " --stages 2 --microbatches 4 -t 1";
  const std::string ref = test::TempDir() + "/ref";
  REQUIRE(Lmstation("train " + cfg + flags + " --out " + ref).exit_code == 0);
  const auto want = LogRows(ref + "/log.csv", 4);
  REQUIRE(want.size() == 60);

  const std::string out = test::TempDir() + "/killed";
  std::filesystem::create_directories(out);
  const pid_t pid = SpawnLmstation({"train", cfg, "--stages", "2", "--microbatches", "4", "-t", "1", "--out", out});
  REQUIRE(pid >= 0);
  // Wait for a checkpoint past step 10, then kill without warning.
  bool signaled = false;
  REQUIRE(KillAfterCheckpoint(pid, out, 10, 60, &signaled));
  REQUIRE(signaled);
  REQUIRE(!std::filesystem::exists(out + "/model.gguf"));  // it really did not finish
  const size_t rows_before = LogRows(out + "/log.csv", 1).size();
  CHECK(rows_before < 60);

  REQUIRE(Lmstation("train " + cfg + flags + " --out " + out + " --resume").exit_code == 0);
  const auto got = LogRows(out + "/log.csv", 4);
  REQUIRE(got.size() == 60);
  for (size_t i = 0; i < 60; ++i) {
    INFO("step " << i + 1);
    CHECK(got[i] == want[i]);
  }
  // The final weights are the same bytes too.
  auto a = train::LoadCheckpoint(ref + "/checkpoint.bin");
  auto b = train::LoadCheckpoint(out + "/checkpoint.bin");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->params == b->params);
  CHECK(a->m == b->m);
}

namespace {

// metrics[step][name] of the one train run in `db` whose config names `out`.
std::map<int64_t, std::map<std::string, double>> RecordedMetrics(const std::string& db, const std::string& out,
                                                                 int64_t* run_id, std::string* status) {
  auto d = store::Database::Open(db);
  REQUIRE(d.ok());
  auto runs = (*d)->Query("SELECT id, status, config FROM runs WHERE kind = 'train'");
  REQUIRE(runs.ok());
  std::map<int64_t, std::map<std::string, double>> m;
  int found = 0;
  for (const auto& row : runs->rows) {
    if (nlohmann::json::parse(std::get<std::string>(row[2]))["out"] != std::filesystem::weakly_canonical(out).string()) continue;
    ++found;
    *run_id = std::get<int64_t>(row[0]);
    *status = std::get<std::string>(row[1]);
  }
  REQUIRE(found == 1);
  auto rows = (*d)->Query("SELECT step, name, value FROM metrics WHERE run_id = " + std::to_string(*run_id));
  REQUIRE(rows.ok());
  for (const auto& row : rows->rows) m[std::get<int64_t>(row[0])][std::get<std::string>(row[1])] = std::get<double>(row[2]);
  return m;
}

// The CSV log: step → {loss, lr, grad_norm} as written (%.17g / %.9g).
std::map<int64_t, std::array<double, 3>> LogValues(const std::string& path) {
  std::map<int64_t, std::array<double, 3>> v;
  for (const auto& row : LogRows(path, 4)) {
    std::array<double, 4> f{};
    std::istringstream in(row);
    std::string field;
    for (double& x : f) {
      std::getline(in, field, ',');
      x = std::stod(field);
    }
    v[static_cast<int64_t>(f[0])] = {f[1], f[2], f[3]};
  }
  return v;
}

}  // namespace

TEST_CASE("train --db records per-step metrics and the last step's timeline; resume continues the run", "[train][cli][db]") {
  const std::string cfg = WriteConfig(kTinyModel, "[train]\nsteps = 3\nbatch_size = 4\neval_batches = 1\n");
  const std::string dir = test::TempDir();
  const std::string db = dir + "/record.db", out = dir + "/out";
  const std::string flags = " --stages 2 --microbatches 2 -t 1";

  // No --db and no default record: nothing is created.
  REQUIRE(Lmstation("train " + cfg + flags + " --out " + dir + "/plain").exit_code == 0);
  CHECK(!std::filesystem::exists(DataHome() + "/lmstation/lmstation.db"));

  REQUIRE(Lmstation("train " + cfg + flags + " --out " + out + " --db " + db).exit_code == 0);
  int64_t run = 0;
  std::string status;
  auto m = RecordedMetrics(db, out, &run, &status);
  CHECK(status == "done");
  auto log = LogValues(out + "/log.csv");
  REQUIRE(log.size() == 3);
  REQUIRE(m.size() == 3);
  for (const auto& [step, want] : log) {
    INFO("step " << step);
    auto& got = m[step];
    CHECK(got["loss"] == want[0]);                                   // %.17g round-trips
    CHECK(got["lr"] == Approx(want[1]).epsilon(1e-8));               // %.9g in the log
    CHECK(got["grad_norm"] == Approx(want[2]).epsilon(1e-8));
    CHECK(got["tokens_per_s"] > 0.0);
    CHECK(got["wall_s"] > 0.0);
    CHECK(got["stage0_busy_s"] > 0.0);
    CHECK(got["stage1_busy_s"] > 0.0);
    CHECK(got["stage0_busy_s"] <= got["wall_s"]);
    CHECK((got["bubble"] >= 0.0 && got["bubble"] < 1.0));
  }
  CHECK(m[3].count("val_loss") == 1);
  // The last step's timeline: 2 stages × 2 micro-batches × (F, B), each with start and end.
  int timeline = 0;
  for (const auto& [name, v] : m[3]) {
    if (name.rfind("timeline.", 0) != 0) continue;
    ++timeline;
    CHECK(v >= 0.0);
    CHECK(v <= m[3]["wall_s"] * 1.01 + 1e-3);
  }
  CHECK(timeline == 16);
  CHECK(m[3]["timeline.s1.mb0.F.start_s"] >= m[3]["timeline.s0.mb0.F.end_s"]);  // stage 1 waits for stage 0
  CHECK(m[2].count("timeline.s0.mb0.F.start_s") == 0);

  // Resumed with more steps: the same run, steps 1..5, the new rows as the log has them.
  REQUIRE(Lmstation("train " + cfg + flags + " --out " + out + " --db " + db + " --steps 5 --resume").exit_code == 0);
  int64_t run2 = 0;
  m = RecordedMetrics(db, out, &run2, &status);
  CHECK(run2 == run);
  CHECK(status == "done");
  log = LogValues(out + "/log.csv");
  REQUIRE(log.size() == 5);
  REQUIRE(m.size() == 5);
  for (const auto& [step, want] : log) CHECK(m[step]["loss"] == want[0]);
  CHECK(m[5].count("timeline.s0.mb0.F.start_s") == 1);

  // Once the default record exists, runs without --db go there.
  const std::string home_db = DataHome() + "/lmstation/lmstation.db";
  std::filesystem::create_directories(DataHome() + "/lmstation");
  REQUIRE(store::Store::Open(home_db).ok());
  REQUIRE(Lmstation("train " + cfg + flags + " --out " + dir + "/default").exit_code == 0);
  int64_t run3 = 0;
  m = RecordedMetrics(home_db, dir + "/default", &run3, &status);
  CHECK(m.size() == 3);
  std::filesystem::remove_all(DataHome());
}

TEST_CASE("train --schedule interleaved matches 1f1b's losses and records each chunk's timeline", "[train][cli][db]") {
  const char* four_layers = "[model]\nlayers = 4\nd_model = 32\nheads = 2\nkv_heads = 1\nd_ff = 64\nseq_len = 16\n";
  const std::string cfg = WriteConfig(four_layers, "[train]\nsteps = 4\nbatch_size = 4\neval_batches = 1\n");
  const std::string dir = test::TempDir();
  const std::string flags = " --stages 2 --microbatches 2 -t 1 --json";
  auto plain = Lmstation("train " + cfg + flags + " --out " + dir + "/one");
  REQUIRE(plain.exit_code == 0);
  auto inter = Lmstation("train " + cfg + flags + " --schedule interleaved --out " + dir + "/two --db " + dir + "/r.db");
  REQUIRE(inter.exit_code == 0);
  auto j = nlohmann::json::parse(inter.out);
  CHECK(j["schedule"] == "interleaved");
  CHECK(j["chunks"] == 2);
  CHECK(j["boundaries"] == std::vector<int>{0, 1, 2, 3, 4});  // 2 stages × 2 chunks of one layer
  CHECK(j["bubble_theory"].get<double>() == Approx(1.0 / 5.0));  // (S−1)/(V·M+S−1)
  // The same computation in another order: the same loss curve.
  const auto a = LogValues(dir + "/one/log.csv"), b = LogValues(dir + "/two/log.csv");
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (const auto& [step, want] : a) CHECK(std::fabs(b.at(step)[0] - want[0]) < 1e-6);
  auto tl = nlohmann::json::parse(std::ifstream(dir + "/two/timeline.json"));
  CHECK(tl["events"].size() == 16);  // 2 stages × 2 chunks × 2 micro-batches × (F, B)
  int64_t run = 0;
  std::string status;
  auto m = RecordedMetrics(dir + "/r.db", dir + "/two", &run, &status);
  int timeline = 0;
  for (const auto& [name, v] : m[4]) timeline += name.rfind("timeline.", 0) == 0;
  CHECK(timeline == 32);
  // Chunk 1 of stage 0 (layer 2) waits for chunk 0 of stage 1 (layer 1).
  CHECK(m[4]["timeline.s0.c1.mb0.F.start_s"] >= m[4]["timeline.s1.c0.mb0.F.end_s"]);
  // Micro-batches must come in multiples of the stages.
  CHECK(Lmstation("train " + cfg + " --stages 2 --microbatches 1 --schedule interleaved --out " + dir + "/bad").exit_code == 1);
}

TEST_CASE("plan prints a plan and beats or ties the equal split in prediction", "[train][cli][plan]") {
  const std::string cfg = WriteConfig(kTinyModel, "[train]\nbatch_size = 4\n\n[pipeline]\nstage_threads = [1, 1]\n");
  auto r = Lmstation("plan " + cfg + " --json --reps 1");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["plan"]["predicted_step_s"].get<double>() > 0.0);
  CHECK(j["plan"]["predicted_step_s"].get<double>() <= j["equal"]["predicted_step_s"].get<double>() * (1 + 1e-9));
  auto c = Lmstation("plan " + cfg + " --cluster 8xh100-nvlink --json");
  REQUIRE(c.exit_code == 0);
  auto cj = nlohmann::json::parse(c.out);
  CHECK(cj["plan"]["simulated_step_s"].get<double>() > 0.0);
  // --stages and --microbatches fix what the planner may choose; --measure times real steps.
  auto f = Lmstation("plan " + cfg + " --stages 1 --microbatches 2 --measure --reps 1 --json");
  REQUIRE(f.exit_code == 0);
  auto fj = nlohmann::json::parse(f.out);
  CHECK(fj["plan"]["microbatches"].get<int>() == 2);
  CHECK(fj["plan"]["boundaries"].size() == 2);
  CHECK(fj["plan"]["measured_step_s"].get<double>() > 0.0);
  CHECK(fj["plan"]["measured_best_step_s"].get<double>() <= fj["plan"]["measured_step_s"].get<double>());
  CHECK(Lmstation("plan " + cfg + " --microbatches 3").exit_code != 0);  // does not divide the batch
}

TEST_CASE("train --ranks 2: two processes of one stage each train bit-identically to one process, resume too",
          "[train][cli][ranks]") {
  const std::string cfg =
      WriteConfig(kTinyModel, "[train]\nbatch_size = 4\neval_batches = 2\ncheckpoint_every = 4\n\n[pipeline]\nstages = 2\n"
                              "microbatches = 2\n");
  const std::string one = test::TempDir() + "/one", two = test::TempDir() + "/two";
  // Both ranks at once: rank 1 on a thread, rank 0 here; each prints what it says on stdout.
  auto pair = [&](const std::string& args, const std::string& rank1_extra = "") {
    const std::string where = " --ranks 2 --rendezvous 127.0.0.1:" + std::to_string(FreePort()) + " --join-timeout 60";
    Ran r1{-1, ""};
    std::thread t([&] { r1 = LmstationQuiet(args + where + " --rank 1" + rank1_extra); });
    Ran r0 = LmstationQuiet(args + where + " --rank 0");
    t.join();
    return std::make_pair(r0, r1);
  };
  for (const int steps : {8, 12}) {  // then resume to 12 from the checkpoint at 8
    CAPTURE(steps);
    const std::string resume = steps == 8 ? "" : " --resume";
    const Ran a = Lmstation("train " + cfg + " --out " + one + " --steps " + std::to_string(steps) + " --json" + resume);
    REQUIRE(a.exit_code == 0);
    const auto [r0, r1] = pair("train " + cfg + " --out " + two + " --steps " + std::to_string(steps) + " --json" + resume);
    INFO(r0.out);
    INFO(r1.out);
    REQUIRE(r0.exit_code == 0);
    REQUIRE(r1.exit_code == 0);
    const auto ja = nlohmann::json::parse(a.out);
    const auto j0 = nlohmann::json::parse(r0.out.substr(r0.out.rfind("\n{") + 1));
    CHECK(j0["loss"] == ja["loss"]);  // bit for bit: the same sums in the same order
    CHECK(j0["val_loss"] == ja["val_loss"]);
    CHECK(j0["steps"] == steps);
    CHECK(r1.out.find("{\"") == std::string::npos);  // rank 1 reports nothing of its own
    CHECK(r1.out.find("rank 1 of 2 joined") != std::string::npos);
    CHECK(LogRows(two + "/log.csv", 4) == LogRows(one + "/log.csv", 4));
    CHECK(FileBytes(two + "/model.gguf") == FileBytes(one + "/model.gguf"));
    CHECK(FileBytes(two + "/checkpoint.bin") == FileBytes(one + "/checkpoint.bin"));
    // Rank 1 kept its token shards apart and wrote nothing else.
    CHECK(std::filesystem::exists(two + "/rank-1/train.tok"));
    CHECK(!std::filesystem::exists(two + "/rank-1/model.gguf"));
    CHECK(!std::filesystem::exists(two + "/rank-1/log.csv"));
  }
  // One rank killed mid-run: the other fails at once instead of waiting, and both resumed from
  // rank 0's checkpoint finish the run as one process would have.
  {
    const std::string killed = test::TempDir() + "/killed-rank";
    std::filesystem::create_directories(killed);
    const int port = FreePort();
    const std::string where = "127.0.0.1:" + std::to_string(port);
    const pid_t pid = SpawnLmstation({"train", cfg, "--steps", "400", "--out", killed, "--ranks", "2", "--rank", "1",
                                      "--rendezvous", where});
    REQUIRE(pid >= 0);
    auto rank0 = std::async(std::launch::async, [&] {
      return LmstationQuiet("train " + cfg + " --steps 400 --out " + killed + " --ranks 2 --rank 0 --rendezvous " + where);
    });
    bool signaled = false;
    REQUIRE(KillAfterCheckpoint(pid, killed, 8, 400, &signaled));
    REQUIRE(rank0.wait_for(std::chrono::seconds(60)) == std::future_status::ready);  // no hang
    const Ran r0 = rank0.get();
    CHECK(r0.exit_code != 0);
    CHECK(r0.out.find("rank 1 is gone") != std::string::npos);
    CHECK(!std::filesystem::exists(killed + "/model.gguf"));
    const auto [c0, c1] = pair("train " + cfg + " --steps 400 --out " + killed + " --resume");
    INFO(c0.out);
    REQUIRE(c0.exit_code == 0);
    REQUIRE(c1.exit_code == 0);
    const std::string whole = test::TempDir() + "/whole";
    REQUIRE(Lmstation("train " + cfg + " --steps 400 --out " + whole).exit_code == 0);
    CHECK(LogRows(killed + "/log.csv", 4) == LogRows(whole + "/log.csv", 4));
    CHECK(FileBytes(killed + "/model.gguf") == FileBytes(whole + "/model.gguf"));
  }
  // Ranks that disagree on the run stop together with a message, instead of hanging.
  const auto [b0, b1] = pair("train " + cfg + " --out " + test::TempDir() + "/bad --steps 5", " --microbatches 1");
  CHECK(b0.exit_code != 0);
  CHECK(b1.exit_code != 0);
  CHECK(b0.out.find("prepared another model, data or pipeline") != std::string::npos);
  // Three ranks for a two-stage config; a rank without a group size.
  const Ran three = Lmstation("train " + cfg + " --out " + test::TempDir() + "/x --ranks 3 --rank 0 --join-timeout 0.5");
  CHECK(three.exit_code != 0);
  const Ran lone = Lmstation("train " + cfg + " --out " + test::TempDir() + "/y --rank 1");
  CHECK(lone.exit_code != 0);
}

}  // namespace lms

namespace lms {

TEST_CASE("train: fine-tune SmolLM2 from its GGUF, export, and chat with the result", "[train][cli][smollm2]") {
  const auto model = test::DefaultModelPath();
  if (!model) LMS_SKIP("SmolLM2 is not pulled (lmstation pull smollm2)");
  const std::string dir = test::TempDir();
  const std::string cfg = dir + "/ft.toml";
  std::ofstream(cfg) << "[model]\nbase = \"" << *model << "\"\nseq_len = 16\n\n[data]\ntext = \"" << LMS_SOURCE_DIR
                     << "/assets/text/essays.txt\"\n\n[optim]\nlr = 1e-5\nwarmup_steps = 1\n\n"
                     << "[train]\nsteps = 1\nbatch_size = 1\neval_batches = 1\n\n[export]\ntype = \"q8_0\"\n";
  auto r = Lmstation("train " + cfg + " --out " + dir + "/out --json");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  // A trained model on ordinary English: far below ln(49152) ≈ 10.8 from the first step.
  CHECK(j["loss"].get<double>() < 6.0);
  CHECK(j["val_loss"].get<double>() < 6.0);
  auto run = Lmstation("run " + dir + "/out/model.gguf -p \"What is the capital of France?\" --chat -n 8 --temp 0 --json");
  REQUIRE(run.exit_code == 0);
  CHECK(!nlohmann::json::parse(run.out)["tokens"].empty());
  // The exported weights are the model, not noise: its perplexity on the essays stays near the
  // base model's (a transposed or misnamed tensor gives thousands).
  const std::string text = std::string(LMS_SOURCE_DIR) + "/assets/text/essays.txt";
  auto base = Lmstation("perplexity " + *model + " " + text + " --ctx 128 --chunks 2 --json");
  auto tuned = Lmstation("perplexity " + dir + "/out/model.gguf " + text + " --ctx 128 --chunks 2 --json");
  REQUIRE(base.exit_code == 0);
  REQUIRE(tuned.exit_code == 0);
  const double pb = nlohmann::json::parse(base.out)["ppl"], pt = nlohmann::json::parse(tuned.out)["ppl"];
  INFO("perplexity base " << pb << " fine-tuned " << pt);
  CHECK(pt < 1.3 * pb);
}

}  // namespace lms

