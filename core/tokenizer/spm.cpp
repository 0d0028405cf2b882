#include "core/tokenizer/spm.h"

#include <queue>
#include <algorithm>

#include "core/tokenizer/utf8.h"

namespace lms::tok {
namespace {

struct Symbol {
  int32_t prev, next;
  size_t offset, n;  // bytes of `text`; n == 0 once merged into its left neighbour
};

struct Bigram {
  int32_t left, right;
  float score;
  size_t size;
  // Max-heap order: highest score first, then leftmost.
  bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
};

class Session {
 public:
  Session(const SpmModel& m, std::string_view text) : m_(m), text_(text) {}

  void Run(std::vector<int32_t>* out) {
    size_t offs = 0;
    int32_t index = 0;
    while (offs < text_.size()) {
      const size_t len = std::min(Utf8SeqLen(static_cast<uint8_t>(text_[offs])), text_.size() - offs);
      symbols_.push_back(Symbol{index - 1, offs + len == text_.size() ? -1 : index + 1, offs, len});
      offs += len;
      ++index;
    }
    for (int32_t i = 1; i < static_cast<int32_t>(symbols_.size()); ++i) TryAddBigram(i - 1, i);

    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& l = symbols_[b.left];
      Symbol& r = symbols_[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) symbols_[r.next].prev = b.left;
      TryAddBigram(l.prev, b.left);
      TryAddBigram(b.left, l.next);
    }
    if (symbols_.empty()) return;
    for (int32_t i = 0; i != -1; i = symbols_[i].next) Resegment(symbols_[i], out);
  }

 private:
  std::string_view Text(const Symbol& s) const { return text_.substr(s.offset, s.n); }

  void TryAddBigram(int32_t left, int32_t right) {
    if (left == -1 || right == -1) return;
    // Adjacent live symbols are contiguous in the text.
    const std::string_view joined = text_.substr(symbols_[left].offset, symbols_[left].n + symbols_[right].n);
    const int32_t id = LookupToken(*m_.map, joined);
    if (id < 0) return;
    const float score = m_.scores->empty() ? 0.0f : (*m_.scores)[static_cast<size_t>(id)];
    queue_.push(Bigram{left, right, score, joined.size()});
  }

  // Merged symbols are tokens by construction; only a single character can fail to be one.
  // (llama.cpp also keeps a reverse-merge table here, but it only ever holds token texts, so
  // its lookup for a non-token never succeeds.)
  void Resegment(const Symbol& s, std::vector<int32_t>* out) const {
    const std::string_view t = Text(s);
    const int32_t id = LookupToken(*m_.map, t);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
    for (char c : t) {
      const int32_t b = m_.byte_ids[static_cast<uint8_t>(c)];
      if (b >= 0) {
        out->push_back(b);
      } else if (m_.unk_id >= 0) {
        out->push_back(m_.unk_id);  // no byte fallback in this vocabulary
      }
    }
  }

  const SpmModel& m_;
  std::string_view text_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram> queue_;
};

}  // namespace

void SpmEncode(const SpmModel& model, std::string_view text, std::vector<int32_t>* out) {
  Session(model, text).Run(out);
}

}  // namespace lms::tok
