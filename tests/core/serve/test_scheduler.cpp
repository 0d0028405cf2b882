// The continuous-batching scheduler without a model: token budget, chunked prefill mixed with
// decode, the running bound, preemption of the newest, copy-on-write after a fork, prefix hits.
#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "core/serve/scheduler.h"

namespace lms::serve {
namespace {

std::vector<int32_t> Tokens(int n, int first = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

int32_t NewTokens(const Scheduler::Output& out, int64_t id) {
  for (const auto& s : out.seqs)
    if (s.id == id) return s.n_new;
  return 0;
}

// What the engine does after a forward: sequences that computed everything get a new token.
void Advance(Scheduler& s, const Scheduler::Output& out) {
  s.OnComputed(out);
  for (const auto& x : out.seqs)
    if (x.seq->num_computed == static_cast<int32_t>(x.seq->tokens.size())) x.seq->tokens.push_back(1000);
}

}  // namespace

TEST_CASE("scheduler: one token budget mixes prompt chunks and decode tokens", "[serve][scheduler]") {
  BlockManager bm(64, 4, false);
  Scheduler s(bm, {16, 8}, [](int32_t, int32_t) {});
  s.AddWaiting(1, 1, Tokens(10));
  s.AddWaiting(2, 2, Tokens(10));
  s.AddWaiting(3, 3, Tokens(10));
  auto o1 = s.Schedule();
  CHECK(o1.n_tokens == 16);
  CHECK(NewTokens(o1, 1) == 10);
  CHECK(NewTokens(o1, 2) == 6);  // a prompt chunk
  CHECK(NewTokens(o1, 3) == 0);
  Advance(s, o1);
  auto o2 = s.Schedule();
  CHECK(NewTokens(o2, 1) == 1);   // decode
  CHECK(NewTokens(o2, 2) == 4);   // the rest of its prompt
  CHECK(NewTokens(o2, 3) == 10);  // admitted within what is left
  CHECK(o2.n_tokens == 15);
  CHECK(s.n_running() == 3);
  // Every scheduled slot has a block.
  for (const auto& x : o2.seqs) CHECK(x.seq->blocks.size() * 4 >= static_cast<size_t>(x.seq->num_computed + x.n_new));
}

TEST_CASE("scheduler: the running bound holds new sequences back", "[serve][scheduler]") {
  BlockManager bm(64, 4, false);
  Scheduler s(bm, {100, 2}, [](int32_t, int32_t) {});
  s.AddWaiting(1, 1, Tokens(3));
  s.AddWaiting(2, 2, Tokens(3));
  s.AddWaiting(3, 3, Tokens(3));
  auto o = s.Schedule();
  CHECK(o.seqs.size() == 2);
  CHECK(s.n_running() == 2);
  CHECK(s.n_waiting() == 1);
  Advance(s, o);
  s.Remove(1);  // finished
  auto o2 = s.Schedule();
  CHECK(NewTokens(o2, 3) == 3);
  CHECK(bm.n_used() == 2);  // seq 2: 4 tokens in one block; seq 3: 3 tokens in one
}

TEST_CASE("scheduler: out of blocks preempts the newest running sequence, which recomputes later",
          "[serve][scheduler][preempt]") {
  BlockManager bm(4, 4, false);  // 16 token slots
  Scheduler s(bm, {64, 8}, [](int32_t, int32_t) {});
  s.AddWaiting(1, 1, Tokens(7));
  s.AddWaiting(2, 2, Tokens(7));
  auto o = s.Schedule();
  REQUIRE(o.seqs.size() == 2);
  CHECK(bm.n_free() == 0);
  Advance(s, o);  // each now has 8 tokens, 7 computed: still fits its 2 blocks
  auto o2 = s.Schedule();
  CHECK(o2.preempted.empty());
  Advance(s, o2);  // 9 tokens: the 9th needs a third block that does not exist
  auto o3 = s.Schedule();
  REQUIRE(o3.preempted.size() == 1);
  CHECK(o3.preempted[0] == 2);  // the newest goes
  CHECK(NewTokens(o3, 1) == 1);
  CHECK(s.n_waiting() == 1);
  SchedSeq* two = s.Find(2);
  CHECK(two->num_computed == 0);
  CHECK(two->blocks.empty());
  CHECK(two->tokens.size() == 9);  // its generated tokens are kept for recomputation
  Advance(s, o3);
  s.Remove(1);
  auto o4 = s.Schedule();
  CHECK(NewTokens(o4, 2) == 9);  // recomputes prompt and generated tokens in one go
}

TEST_CASE("scheduler: a sequence that alone exceeds the pool preempts itself, not an error",
          "[serve][scheduler][preempt]") {
  BlockManager bm(2, 4, false);
  Scheduler s(bm, {64, 8}, [](int32_t, int32_t) {});
  s.AddWaiting(1, 1, Tokens(8));
  auto o = s.Schedule();
  REQUIRE(o.seqs.size() == 1);
  Advance(s, o);
  auto o2 = s.Schedule();
  CHECK(o2.seqs.empty());
  CHECK(o2.preempted == std::vector<int64_t>{1});
  CHECK(bm.n_used() == 0);
}

TEST_CASE("scheduler: forks share prompt blocks and copy the shared block they write into",
          "[serve][scheduler][cow]") {
  BlockManager bm(16, 4, false);
  std::vector<std::pair<int32_t, int32_t>> copies;
  Scheduler s(bm, {64, 8}, [&](int32_t src, int32_t dst) { copies.push_back({src, dst}); });
  s.AddWaiting(1, 1 << 8, Tokens(6), /*seats=*/2);
  auto o = s.Schedule();
  s.OnComputed(o);
  SchedSeq* parent = s.Find(1);
  REQUIRE(parent->blocks.size() == 2);
  const int32_t full = parent->blocks[0], partial = parent->blocks[1];
  SchedSeq* child = s.Fork(*parent, 2, (1 << 8) + 1);
  CHECK(bm.ref_count(full) == 2);
  CHECK(bm.ref_count(partial) == 2);
  parent->tokens.push_back(100);
  child->tokens.push_back(200);
  auto o2 = s.Schedule();
  CHECK(o2.seqs.size() == 2);
  // The parent writes position 6 first (into the shared partial block): it copies.
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].first == partial);
  CHECK(parent->blocks[1] != partial);
  CHECK(parent->blocks[1] == copies[0].second);
  // The child is now the partial block's only owner: it writes in place.
  CHECK(child->blocks[1] == partial);
  CHECK(bm.ref_count(partial) == 1);
  CHECK(bm.ref_count(full) == 2);  // read-only prompt block stays shared
  s.Remove(1);
  s.Remove(2);
  CHECK(bm.n_used() == 0);
}

TEST_CASE("scheduler: admission takes cached full prompt blocks", "[serve][scheduler][prefix]") {
  BlockManager bm(16, 4, true);
  Scheduler s(bm, {64, 8}, [](int32_t, int32_t) {});
  s.AddWaiting(1, 1, Tokens(10));
  auto o = s.Schedule();
  CHECK(o.prefix_hit_tokens == 0);
  s.OnComputed(o);  // blocks [0,4) and [4,8) become findable
  s.Remove(1);
  CHECK(bm.n_used() == 0);
  std::vector<int32_t> t = Tokens(10);
  t[9] = 99;  // same first 8 tokens
  s.AddWaiting(2, 2, t);
  auto o2 = s.Schedule();
  CHECK(o2.prefix_hit_tokens == 8);
  CHECK(o2.prefix_query_tokens == 10);
  CHECK(NewTokens(o2, 2) == 2);
  // An exact repeat of an 8-token prompt recomputes its last block (logits are needed).
  s.AddWaiting(3, 3, Tokens(8));
  auto o3 = s.Schedule();
  CHECK(o3.prefix_hit_tokens == 4);
  CHECK(NewTokens(o3, 3) == 4);
}

}  // namespace lms::serve
