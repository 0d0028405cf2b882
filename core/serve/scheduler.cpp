#include "core/serve/scheduler.h"

#include <algorithm>
#include <cassert>
#include <span>

namespace lms::serve {

Scheduler::Scheduler(BlockManager& blocks, const SchedulerOptions& options, CopyBlockFn copy_block)
    : blocks_(blocks), options_(options), copy_block_(std::move(copy_block)) {}

void Scheduler::InsertSorted(std::deque<SchedSeq*>& q, SchedSeq* s) {
  auto at = std::upper_bound(q.begin(), q.end(), s,
                             [](const SchedSeq* a, const SchedSeq* b) { return a->order < b->order; });
  q.insert(at, s);
}

SchedSeq* Scheduler::AddWaiting(int64_t id, uint64_t order, std::vector<int32_t> tokens, int32_t seats) {
  auto s = std::make_unique<SchedSeq>();
  s->id = id;
  s->order = order;
  s->tokens = std::move(tokens);
  s->seats = std::max(1, seats);
  SchedSeq* p = s.get();
  seqs_[id] = std::move(s);
  InsertSorted(waiting_, p);
  return p;
}

SchedSeq* Scheduler::Fork(const SchedSeq& parent, int64_t id, uint64_t order) {
  auto s = std::make_unique<SchedSeq>(parent);
  s->id = id;
  s->order = order;
  s->seats = 1;
  for (int32_t b : s->blocks) blocks_.AddRef(b);
  s->running = true;
  SchedSeq* p = s.get();
  seqs_[id] = std::move(s);
  InsertSorted(running_, p);
  return p;
}

SchedSeq* Scheduler::Find(int64_t id) {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

void Scheduler::ReleaseBlocks(SchedSeq& seq) {
  // Last block first, so a sequence's tail is evicted from the prefix cache before its head.
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) blocks_.Release(*it);
  seq.blocks.clear();
  seq.num_computed = 0;
  seq.num_hashed = 0;
  seq.last_hash = 0;
}

void Scheduler::Remove(int64_t id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  SchedSeq* s = it->second.get();
  ReleaseBlocks(*s);
  auto& q = s->running ? running_ : waiting_;
  q.erase(std::find(q.begin(), q.end(), s));
  seqs_.erase(it);
}

void Scheduler::Preempt(SchedSeq& seq) {
  ReleaseBlocks(seq);
  seq.running = false;
  running_.erase(std::find(running_.begin(), running_.end(), &seq));
  InsertSorted(waiting_, &seq);
}

bool Scheduler::AllocateSlots(SchedSeq& seq, int32_t n_new) {
  const int32_t bs = blocks_.block_size();
  const size_t need = (static_cast<size_t>(seq.num_computed) + n_new + bs - 1) / bs;
  const size_t write_block = static_cast<size_t>(seq.num_computed) / bs;
  const bool cow = write_block < seq.blocks.size() && blocks_.ref_count(seq.blocks[write_block]) > 1;
  const int64_t fresh = static_cast<int64_t>(need > seq.blocks.size() ? need - seq.blocks.size() : 0) + (cow ? 1 : 0);
  if (fresh > blocks_.n_free()) return false;
  if (cow) {
    // Only the block holding the first position written can be shared: blocks past it were
    // allocated by this sequence alone.
    const int32_t shared = seq.blocks[write_block];
    const int32_t mine = blocks_.Allocate();
    copy_block_(shared, mine);
    blocks_.Release(shared);
    seq.blocks[write_block] = mine;
  }
  while (seq.blocks.size() < need) seq.blocks.push_back(blocks_.Allocate());
  return true;
}

int32_t Scheduler::TakeCachedPrefix(SchedSeq& seq) {
  const int32_t bs = blocks_.block_size();
  // At least the last token is always computed, so the step yields logits to sample from.
  const size_t max_blocks = (seq.tokens.size() - 1) / bs;
  while (static_cast<size_t>(seq.num_hashed) < max_blocks) {
    std::span<const int32_t> toks(seq.tokens.data() + static_cast<size_t>(seq.num_hashed) * bs, bs);
    const uint64_t h = BlockManager::HashBlock(seq.last_hash, toks);
    auto hit = blocks_.Lookup(h, toks);
    if (!hit) break;
    seq.blocks.push_back(*hit);
    seq.last_hash = h;
    ++seq.num_hashed;
  }
  seq.num_computed = seq.num_hashed * bs;
  return seq.num_computed;
}

Scheduler::Output Scheduler::Schedule() {
  Output out;
  int32_t budget = options_.token_budget;
  // Running sequences, oldest first; preemption takes from the back (newest).
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    SchedSeq* seq = running_[i];
    const int32_t n_new = std::min<int32_t>(static_cast<int32_t>(seq->tokens.size()) - seq->num_computed, budget);
    assert(n_new > 0);
    bool self_preempted = false;
    while (!AllocateSlots(*seq, n_new)) {
      SchedSeq* victim = running_.back();
      out.preempted.push_back(victim->id);
      Preempt(*victim);
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    out.seqs.push_back({seq, seq->id, n_new});
    out.n_tokens += n_new;
    budget -= n_new;
    ++i;
  }
  // Waiting sequences, first come first served, unless this step had to preempt.
  int32_t seats = 0;
  for (const SchedSeq* s : running_) seats += s->seats;
  while (out.preempted.empty() && !waiting_.empty() && budget > 0) {
    SchedSeq* seq = waiting_.front();
    if (!running_.empty() && seats + seq->seats > options_.max_running) break;
    const int32_t hit = TakeCachedPrefix(*seq);
    const int32_t n_new = std::min<int32_t>(static_cast<int32_t>(seq->tokens.size()) - seq->num_computed, budget);
    if (!AllocateSlots(*seq, n_new)) {
      ReleaseBlocks(*seq);  // give the cached prefix back; it stays findable
      break;
    }
    out.prefix_query_tokens += static_cast<int64_t>(seq->tokens.size());
    out.prefix_hit_tokens += hit;
    waiting_.pop_front();
    seq->running = true;
    InsertSorted(running_, seq);
    seats += seq->seats;
    out.seqs.push_back({seq, seq->id, n_new});
    out.n_tokens += n_new;
    budget -= n_new;
  }
  return out;
}

void Scheduler::OnComputed(const Output& out) {
  const int32_t bs = blocks_.block_size();
  for (const Scheduled& s : out.seqs) {
    SchedSeq& seq = *s.seq;
    seq.num_computed += s.n_new;
    while ((seq.num_hashed + 1) * bs <= seq.num_computed) {
      std::span<const int32_t> toks(seq.tokens.data() + static_cast<size_t>(seq.num_hashed) * bs, bs);
      const uint64_t h = BlockManager::HashBlock(seq.last_hash, toks);
      blocks_.Register(seq.blocks[seq.num_hashed], h, toks);
      seq.last_hash = h;
      ++seq.num_hashed;
    }
  }
}

}  // namespace lms::serve
