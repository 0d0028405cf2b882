// Rank groups for tests: threads stand in for processes, each rank joining over localhost as a
// process would (rank 0 on a free port it hands to the others).
#pragma once

#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "core/net/rank_group.h"

namespace lms::test {

// Joins `world` ranks (each on a thread of its own, the highest first, so they wait for rank 0).
inline std::vector<std::unique_ptr<net::RankGroup>> JoinRanks(int world, double timeout_s = 30) {
  std::promise<int> port_promise;
  auto port = port_promise.get_future().share();
  std::vector<Result<std::unique_ptr<net::RankGroup>>> got;
  for (int r = 0; r < world; ++r) got.emplace_back(Status::Internal("not run"));
  std::vector<std::thread> threads;
  for (int r = world - 1; r >= 0; --r) {
    threads.emplace_back([&, r] {
      net::RankGroupOptions o;
      o.world = world;
      o.rank = r;
      o.timeout_s = timeout_s;
      if (r == 0) {
        o.port = 0;
        o.on_listen = [&](int p) { port_promise.set_value(p); };
      } else {
        o.port = port.get();
      }
      got[static_cast<size_t>(r)] = net::RankGroup::Join(o);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::unique_ptr<net::RankGroup>> out;
  for (auto& g : got) {
    REQUIRE(g.ok());
    out.push_back(std::move(g).value());
  }
  return out;
}

// Runs body(rank, group) for every rank at once, each on its own thread, and returns what each
// returned. The body must not use Catch's assertions (they are not thread-safe).
template <typename Out, typename Body>
std::vector<Out> OnRanks(int world, Body body) {
  auto groups = JoinRanks(world);
  std::vector<Out> out(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] { out[static_cast<size_t>(r)] = body(r, groups[static_cast<size_t>(r)].get()); });
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace lms::test
