// The continuous-batching scheduler: decides, each engine step, which sequences compute how
// many tokens, within one token budget and a bound on running sequences.
//
// There is no separate prefill phase: every sequence has tokens (prompt + generated) and
// num_computed (how many of them have K/V in the cache); each step it computes up to
// tokens - num_computed more, so a prompt is read in chunks while other sequences decode in
// the same forward pass. Running sequences go first (oldest first), then waiting ones (FCFS).
// When blocks run out, the newest running sequence is preempted: its blocks are released and
// it goes back to the front of the waiting queue to be recomputed later (its generated tokens
// are kept, so recomputation continues where it stopped). Admitting a sequence first takes
// the prompt's full blocks found in the prefix cache.
//
// Thread-safety: not thread-safe; the engine thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/kv/block_manager.h"

namespace lms::serve {

struct SchedSeq {
  int64_t id = 0;
  uint64_t order = 0;            // arrival order: lower is older (FCFS, preemption picks the highest)
  std::vector<int32_t> tokens;   // prompt followed by generated tokens
  int32_t num_computed = 0;      // tokens[0, num_computed) have K/V in `blocks`
  std::vector<int32_t> blocks;   // block table (one reference each)
  int32_t num_hashed = 0;        // leading full blocks already offered to the prefix cache
  uint64_t last_hash = 0;        // hash of block num_hashed - 1 (0 before the first)
  int32_t seats = 1;             // running slots it takes when admitted (n choices before a fork)
  bool running = false;
};

struct SchedulerOptions {
  int32_t token_budget = 512;  // tokens computed per step, at most
  int32_t max_running = 16;    // sequences running at once, at most
};

class Scheduler {
 public:
  // copy_block(src, dst) copies a block's K/V (copy-on-write of a block shared after a fork).
  using CopyBlockFn = std::function<void(int32_t src, int32_t dst)>;
  Scheduler(BlockManager& blocks, const SchedulerOptions& options, CopyBlockFn copy_block);

  SchedSeq* AddWaiting(int64_t id, uint64_t order, std::vector<int32_t> tokens, int32_t seats = 1);
  // A running copy of `parent` (same tokens, same computed blocks, shared by reference).
  SchedSeq* Fork(const SchedSeq& parent, int64_t id, uint64_t order);
  // Releases the sequence's blocks and forgets it (finished or cancelled).
  void Remove(int64_t id);
  SchedSeq* Find(int64_t id);

  struct Scheduled {
    SchedSeq* seq;        // valid until the sequence is removed
    int64_t id;
    int32_t n_new;        // tokens[num_computed, num_computed + n_new) run this step
  };
  struct Output {
    std::vector<Scheduled> seqs;      // in batch order
    std::vector<int64_t> preempted;   // ids preempted this step
    int32_t n_tokens = 0;
    int64_t prefix_query_tokens = 0;  // tokens of sequences admitted this step
    int64_t prefix_hit_tokens = 0;    // of those, found in the prefix cache
  };
  // Plans one step and reserves its blocks (every slot in the plan has a block).
  Output Schedule();
  // After the forward ran: advances num_computed and offers newly full blocks to the cache.
  void OnComputed(const Output& out);

  size_t n_running() const { return running_.size(); }
  size_t n_waiting() const { return waiting_.size(); }
  const BlockManager& blocks() const { return blocks_; }

 private:
  // Gives `seq` blocks for n_new more tokens (copying a shared block it will write into).
  // False, with nothing taken, when the pool cannot cover it.
  bool AllocateSlots(SchedSeq& seq, int32_t n_new);
  void ReleaseBlocks(SchedSeq& seq);
  void Preempt(SchedSeq& seq);
  // Takes the cached leading full blocks of a sequence being admitted.
  int32_t TakeCachedPrefix(SchedSeq& seq);
  void InsertSorted(std::deque<SchedSeq*>& q, SchedSeq* s);

  BlockManager& blocks_;
  SchedulerOptions options_;
  CopyBlockFn copy_block_;
  std::map<int64_t, std::unique_ptr<SchedSeq>> seqs_;
  std::deque<SchedSeq*> running_;  // sorted by order: back() is the newest
  std::deque<SchedSeq*> waiting_;  // sorted by order: front() is next
};

}  // namespace lms::serve
