#include "core/kv/block_manager.h"

#include <algorithm>
#include <cassert>
#include <iterator>

namespace lms {

BlockManager::BlockManager(int64_t n_blocks, int32_t block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching), blocks_(n_blocks) {
  free_.reserve(n_blocks);
  for (int64_t i = n_blocks - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

int32_t BlockManager::Allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!evictable_.empty()) {
    b = evictable_.front();
    evictable_.pop_front();
    Uncache(b);
  } else {
    return -1;
  }
  assert(blocks_[b].refs == 0);
  blocks_[b].refs = 1;
  return b;
}

void BlockManager::AddRef(int32_t block) {
  Block& blk = blocks_[block];
  if (blk.refs == 0) {
    // Only a cached block can be revived from zero references (through Lookup).
    assert(blk.cached);
    evictable_.erase(blk.lru_pos);
  }
  ++blk.refs;
}

void BlockManager::Release(int32_t block) {
  Block& blk = blocks_[block];
  assert(blk.refs > 0);
  if (--blk.refs > 0) return;
  if (blk.cached) {
    evictable_.push_back(block);
    blk.lru_pos = std::prev(evictable_.end());
  } else {
    free_.push_back(block);
  }
}

void BlockManager::Uncache(int32_t block) {
  Block& blk = blocks_[block];
  if (!blk.cached) return;
  by_hash_.erase(blk.hash);
  blk.cached = false;
  blk.tokens.clear();
}

uint64_t BlockManager::HashBlock(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64) so
  // nearby inputs spread over the whole table.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::optional<int32_t> BlockManager::Lookup(uint64_t hash, std::span<const int32_t> tokens) {
  if (!prefix_caching_) return std::nullopt;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const Block& blk = blocks_[it->second];
  if (blk.tokens.size() != tokens.size() || !std::equal(tokens.begin(), tokens.end(), blk.tokens.begin())) {
    return std::nullopt;  // a hash collision: treat as a miss
  }
  AddRef(it->second);
  return it->second;
}

bool BlockManager::Register(int32_t block, uint64_t hash, std::span<const int32_t> tokens) {
  if (!prefix_caching_) return false;
  Block& blk = blocks_[block];
  assert(blk.refs > 0);
  if (blk.cached) return blk.hash == hash;
  if (by_hash_.count(hash)) return false;
  blk.cached = true;
  blk.hash = hash;
  blk.tokens.assign(tokens.begin(), tokens.end());
  by_hash_[hash] = block;
  return true;
}

}  // namespace lms
