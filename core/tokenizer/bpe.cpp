#include "core/tokenizer/bpe.h"

#include <queue>

#include "core/tokenizer/utf8.h"

namespace lms::tok {

BpeMerger::BpeMerger(const TokenMap& map, const std::vector<std::string>& merges, bool ignore_merges)
    : map_(map), ignore_merges_(ignore_merges) {
  const auto& byte_chars = ByteToUnicode();
  for (int b = 0; b < 256; ++b) byte_ids_[b] = LookupToken(map_, byte_chars[b]);

  merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    // The separator is the first space after position 0 (llama.cpp: word.find(' ', 1)).
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos) {
      ++skipped_;
      continue;
    }
    const std::string_view left(m.data(), sp);
    const std::string_view right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left);
    joined.append(right);
    const int32_t l = LookupToken(map_, left);
    const int32_t r = LookupToken(map_, right);
    const int32_t res = LookupToken(map_, joined);
    if (l < 0 || r < 0 || res < 0) {
      ++skipped_;
      continue;
    }
    // emplace keeps the first (lowest) rank of a repeated pair, as llama.cpp does.
    merges_.emplace(Key(l, r), Merge{static_cast<int32_t>(rank), res});
  }
}

void BpeMerger::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  const auto& byte_chars = ByteToUnicode();
  if (ignore_merges_) {
    std::string encoded;
    encoded.reserve(word.size() * 2);
    for (char c : word) encoded += byte_chars[static_cast<uint8_t>(c)];
    const int32_t id = LookupToken(map_, encoded);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }

  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the live chain, -1 at the ends
    uint8_t first_byte;  // for the fallback of a byte without a token
    bool alive;
  };
  struct Candidate {
    int32_t rank, left, right, left_id, right_id, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };

  const int32_t n = static_cast<int32_t>(word.size());
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const uint8_t b = static_cast<uint8_t>(word[static_cast<size_t>(i)]);
    sym[i] = Symbol{byte_ids_[b], i - 1, i + 1 < n ? i + 1 : -1, b, true};
  }

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t a = sym[left].id, b = sym[right].id;
    if (a < 0 || b < 0) return;
    auto it = merges_.find(Key(a, b));
    if (it == merges_.end()) return;
    queue.push(Candidate{it->second.rank, left, right, a, b, it->second.result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    Symbol& r = sym[c.right];
    // Stale candidate: one side has merged with something else since it was queued.
    if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
    l.id = c.result;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    if (sym[i].id >= 0) {
      out->push_back(sym[i].id);
      continue;
    }
    // A byte whose GPT-2 character is not a token (never in a real byte-level vocabulary).
    // llama.cpp then looks up each byte of the encoded character as a one-byte token.
    for (char c : byte_chars[sym[i].first_byte]) {
      const int32_t id = LookupToken(map_, std::string_view(&c, 1));
      if (id >= 0) out->push_back(id);
    }
  }
}

}  // namespace lms::tok
