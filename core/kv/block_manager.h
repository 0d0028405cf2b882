// Reference-counted KV block allocation with a prefix cache, for the serving engine.
//
// Every block has a reference count: a sequence holding a block in its block table owns one
// reference; forked sequences (n > 1) share their prompt blocks and copy a shared block before
// writing into it (copy-on-write, see KvCache::CopyBlock). A full block can be registered in
// the prefix cache under the hash of (parent block's hash, its tokens); a later sequence whose
// tokens start the same way takes a reference to it instead of recomputing it. When its last
// reference goes, a cached block is not wiped: it stays findable and is only reused (evicted)
// when no never-cached free block is left, least recently released first.
//
// Running out of blocks is an ordinary outcome (Allocate returns -1), not an error.
// Thread-safety: not thread-safe; the engine thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace lms {

class BlockManager {
 public:
  BlockManager(int64_t n_blocks, int32_t block_size, bool prefix_caching);

  // A block with one reference, or -1 when every block is referenced. Takes a never-cached
  // free block first, else evicts the least recently released cached block.
  int32_t Allocate();
  void AddRef(int32_t block);
  // Drops one reference; at zero the block becomes free (cached blocks stay findable).
  void Release(int32_t block);
  int32_t ref_count(int32_t block) const { return blocks_[block].refs; }

  // Hash of a full block given its parent's hash (0 for the first block) and its tokens.
  static uint64_t HashBlock(uint64_t parent, std::span<const int32_t> tokens);
  // The cached block with this hash and exactly these tokens, with a reference added for the
  // caller; nullopt on a miss (or when prefix caching is off).
  std::optional<int32_t> Lookup(uint64_t hash, std::span<const int32_t> tokens);
  // Makes a full, computed block findable. Returns false (and leaves it uncached) when another
  // block already holds this hash or caching is off.
  bool Register(int32_t block, uint64_t hash, std::span<const int32_t> tokens);

  int64_t n_total() const { return static_cast<int64_t>(blocks_.size()); }
  // Blocks that Allocate can hand out (free and never cached, plus cached but unreferenced).
  int64_t n_free() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
  int64_t n_used() const { return n_total() - n_free(); }
  int64_t n_cached() const { return static_cast<int64_t>(by_hash_.size()); }
  int32_t block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }

 private:
  struct Block {
    int32_t refs = 0;
    bool cached = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;           // the block's tokens, to rule out hash collisions
    std::list<int32_t>::iterator lru_pos;  // valid while cached and unreferenced
  };
  void Uncache(int32_t block);

  int32_t block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;        // unreferenced, never cached: LIFO (warm memory first)
  std::list<int32_t> evictable_;     // unreferenced but cached: front = least recently released
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace lms
