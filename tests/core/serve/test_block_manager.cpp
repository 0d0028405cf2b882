// The reference-counted block pool and its prefix cache.
#include <catch2/catch.hpp>

#include <vector>

#include "core/kv/block_manager.h"

namespace lms {

TEST_CASE("block manager: allocation, reference counts and exhaustion", "[serve][blocks]") {
  BlockManager bm(3, 4, false);
  int32_t a = bm.Allocate(), b = bm.Allocate(), c = bm.Allocate();
  CHECK(a >= 0);
  CHECK(b >= 0);
  CHECK(c >= 0);
  CHECK(bm.Allocate() == -1);  // exhausted: an ordinary outcome
  CHECK(bm.n_free() == 0);
  bm.AddRef(b);  // shared by two sequences (a fork)
  CHECK(bm.ref_count(b) == 2);
  bm.Release(b);
  CHECK(bm.n_free() == 0);  // still referenced once
  bm.Release(b);
  CHECK(bm.n_free() == 1);
  CHECK(bm.Allocate() == b);  // LIFO reuse
  bm.Release(a);
  bm.Release(b);
  bm.Release(c);
  CHECK(bm.n_used() == 0);
}

TEST_CASE("block manager: prefix cache keeps released blocks findable, evicts LRU", "[serve][blocks][prefix]") {
  BlockManager bm(3, 2, true);
  const std::vector<int32_t> t1 = {1, 2}, t2 = {3, 4}, t3 = {5, 6};
  const uint64_t h1 = BlockManager::HashBlock(0, t1), h2 = BlockManager::HashBlock(h1, t2);
  CHECK(h1 != BlockManager::HashBlock(0, t2));
  CHECK(h2 != BlockManager::HashBlock(0, t2));  // the parent is part of the key
  int32_t a = bm.Allocate(), b = bm.Allocate();
  CHECK(bm.Register(a, h1, t1));
  CHECK(bm.Register(b, h2, t2));
  CHECK_FALSE(bm.Register(bm.Allocate(), h1, t1));  // another block already holds this hash
  // A hit adds a reference.
  auto hit = bm.Lookup(h1, t1);
  REQUIRE(hit);
  CHECK(*hit == a);
  CHECK(bm.ref_count(a) == 2);
  // Same hash, different tokens (a collision) is a miss.
  CHECK_FALSE(bm.Lookup(h1, t3));
  bm.Release(a);
  bm.Release(a);  // a released first: least recently used
  bm.Release(b);
  CHECK(bm.n_used() == 1);  // the third block, never cached, still held
  CHECK(bm.n_cached() == 2);
  CHECK(bm.n_free() == 2);
  // Still findable after release; a lookup revives it.
  auto again = bm.Lookup(h2, t2);
  REQUIRE(again);
  CHECK(*again == b);
  bm.Release(b);  // now b is the most recently released
  // Allocation evicts the least recently released cached block (a) first.
  int32_t x = bm.Allocate();
  CHECK(x == a);
  CHECK_FALSE(bm.Lookup(h1, t1));
  CHECK(bm.Lookup(h2, t2).has_value());
}

TEST_CASE("block manager: caching off never finds anything", "[serve][blocks]") {
  BlockManager bm(2, 2, false);
  const std::vector<int32_t> t = {7, 8};
  int32_t a = bm.Allocate();
  CHECK_FALSE(bm.Register(a, BlockManager::HashBlock(0, t), t));
  CHECK_FALSE(bm.Lookup(BlockManager::HashBlock(0, t), t));
}

}  // namespace lms
