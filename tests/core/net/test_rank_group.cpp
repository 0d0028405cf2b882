// The TCP rank group that multi-process training runs on, with threads standing in for
// processes (each joins over localhost like a process would): joining in any order, tagged
// messages delivered by sender and tag whatever order they arrive in, sums that are the same on
// every rank and equal to adding in rank order, broadcasts, and failures (a rank that aborts, a
// group that never fills, bad options) that end in errors instead of hangs.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "core/net/rank_group.h"
#include "tests/core/net/rank_test_util.h"

using namespace lms;

using lms::test::JoinRanks;

TEST_CASE("rank group: ranks join, and messages arrive by sender and tag", "[net][ranks]") {
  auto g = JoinRanks(4);
  for (int r = 0; r < 4; ++r) {
    CHECK(g[static_cast<size_t>(r)]->rank() == r);
    CHECK(g[static_cast<size_t>(r)]->world() == 4);
  }
  // Every rank sends every rank (itself too) two tagged messages, the later tag first.
  // (Catch's assertions are not thread-safe: the threads only record what happened.)
  std::vector<int> failed_sends(4, 0);
  std::vector<std::thread> t;
  for (int r = 0; r < 4; ++r) {
    t.emplace_back([&, r] {
      for (int to = 0; to < 4; ++to) {
        for (uint64_t tag : {7u, 3u}) {
          const std::vector<float> msg = {static_cast<float>(r), static_cast<float>(to), static_cast<float>(tag)};
          if (!g[static_cast<size_t>(r)]->SendFloats(to, tag, msg.data(), msg.size()).ok()) ++failed_sends[static_cast<size_t>(r)];
        }
      }
    });
  }
  for (auto& th : t) th.join();
  CHECK(failed_sends == std::vector<int>(4, 0));
  for (int r = 0; r < 4; ++r) {
    for (int from = 3; from >= 0; --from) {
      for (uint64_t tag : {3u, 7u}) {
        std::vector<float> got(3);
        REQUIRE(g[static_cast<size_t>(r)]->RecvFloats(from, tag, got.data(), got.size()).ok());
        CHECK(got == std::vector<float>{static_cast<float>(from), static_cast<float>(r), static_cast<float>(tag)});
      }
    }
  }
  // A message of the wrong size is an error, not a silent truncation.
  const float one = 1.0f;
  REQUIRE(g[1]->SendFloats(2, 9, &one, 1).ok());
  std::vector<float> two(2);
  CHECK(!g[2]->RecvFloats(1, 9, two.data(), two.size()).ok());
}

TEST_CASE("rank group: sums are identical on every rank and added in rank order", "[net][ranks]") {
  const int W = 3;
  auto g = JoinRanks(W);
  // Values whose sum depends on the order of addition in float.
  const std::vector<std::vector<float>> mine = {{1e8f, 1.0f, 0.5f}, {-1e8f, 3.0f, 0.25f}, {1.0f, -4.0f, 1e-8f}};
  std::vector<std::vector<float>> out = mine;
  std::vector<std::vector<double>> norms(W, std::vector<double>{0.0});
  std::vector<std::vector<uint8_t>> blobs(W);
  blobs[2] = {9, 8, 7};
  std::vector<Status> st(W);
  std::vector<std::thread> t;
  for (int r = 0; r < W; ++r) {
    t.emplace_back([&, r] {
      const size_t i = static_cast<size_t>(r);
      norms[i][0] = 0.1 * (r + 1);
      Status s = g[i]->AllReduceSum(out[i].data(), out[i].size());
      if (s.ok()) s = g[i]->AllReduceSum(norms[i].data(), 1);
      if (s.ok()) s = g[i]->Broadcast(blobs[i], 2);
      if (s.ok()) s = g[i]->Barrier();
      st[i] = s;
    });
  }
  for (auto& th : t) th.join();
  std::vector<float> expect = mine[0];
  for (size_t j = 0; j < expect.size(); ++j) expect[j] = (mine[0][j] + mine[1][j]) + mine[2][j];
  for (int r = 0; r < W; ++r) {
    CAPTURE(r);
    REQUIRE(st[static_cast<size_t>(r)].ok());
    CHECK(out[static_cast<size_t>(r)] == expect);
    CHECK(norms[static_cast<size_t>(r)][0] == (0.1 + 0.2) + 0.30000000000000004);
    CHECK(blobs[static_cast<size_t>(r)] == std::vector<uint8_t>{9, 8, 7});
  }
}

TEST_CASE("rank group: an aborted rank wakes its peers with an error", "[net][ranks]") {
  auto g = JoinRanks(3);
  std::atomic<bool> done{false};
  Status waited;
  std::thread waiter([&] {
    auto r = g[1]->Recv(2, 5);  // rank 2 never sends this
    waited = r.status();
    done = true;
  });
  std::atomic<int> told1{0}, told2{0};
  g[1]->SetOnBroken([&] { ++told1; });
  g[2]->SetOnBroken([&] { ++told2; });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(!done);
  g[2]->Abort();
  waiter.join();
  CHECK(!waited.ok());
  CHECK(waited.message().find("rank 2") != std::string::npos);
  // Both the aborting rank and the one that lost it were told, once.
  CHECK(told2 == 1);
  for (int i = 0; i < 200 && told1 == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(told1 == 1);
  // The aborted rank itself refuses further work.
  CHECK(g[2]->Recv(0, 1).status().code() == StatusCode::kCancelled);
  CHECK(!g[2]->SendFloats(0, 1, nullptr, 0).ok());
}

TEST_CASE("rank group: replacing the broken-group hook waits for a call in progress", "[net][ranks]") {
  auto g = JoinRanks(2);
  std::atomic<bool> started{false}, finished{false};
  g[0]->SetOnBroken([&] {
    started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    finished = true;
  });
  std::thread aborter([&] { g[0]->Abort(); });  // calls the hook on this thread
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  g[0]->SetOnBroken(nullptr);  // as a transport's destructor does
  const bool hook_done = finished;  // read before anything else can wait
  aborter.join();
  CHECK(hook_done);
}

TEST_CASE("rank group: a group that never fills times out; bad options are refused", "[net][ranks]") {
  net::RankGroupOptions o;
  o.world = 2;
  o.rank = 0;
  o.port = 0;
  o.timeout_s = 0.3;
  auto lonely = net::RankGroup::Join(o);
  REQUIRE(!lonely.ok());
  CHECK(lonely.status().message().find("1 more rank") != std::string::npos);
  o.rank = 2;
  CHECK(!net::RankGroup::Join(o).ok());
  o.world = 0;
  o.rank = 0;
  CHECK(!net::RankGroup::Join(o).ok());
  // A single rank needs no network at all.
  o.world = 1;
  auto solo = net::RankGroup::Join(o);
  REQUIRE(solo.ok());
  double x = 2.5;
  CHECK((*solo)->AllReduceSum(&x, 1).ok());
  CHECK(x == 2.5);

  CHECK(net::ParseHostPort("node7:29500").ok());
  CHECK(net::ParseHostPort("[::1]:80")->first == "::1");
  CHECK(!net::ParseHostPort("node7").ok());
  CHECK(!net::ParseHostPort("node7:0").ok());
  CHECK(!net::ParseHostPort("node7:http").ok());
}

TEST_CASE("rank group: the launcher's environment gives world, rank and local rank", "[net][ranks]") {
  const char* names[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE",
                         "PMI_RANK", "MPI_LOCALRANKID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"};
  for (const char* n : names) unsetenv(n);
  // What the environment now says, as "launcher world rank local".
  auto said = [] {
    const net::LauncherInfo i = net::FromLauncherEnvironment();
    return fmt::format("{} {} {} {}", i.launcher.empty() ? "-" : i.launcher, i.world, i.rank, i.local_rank);
  };
  CHECK(said() == "- 1 0 -1");
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_PROCID", "5", 1);
  setenv("SLURM_LOCALID", "1", 1);
  CHECK(said() == "slurm 8 5 1");
  // mpirun's variables come first; a malformed one is not taken.
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  setenv("OMPI_COMM_WORLD_RANK", "3", 1);
  CHECK(said() == "mpirun 4 3 -1");
  setenv("OMPI_COMM_WORLD_RANK", "3x", 1);
  CHECK(said() == "slurm 8 5 1");
  for (const char* n : names) unsetenv(n);
}
