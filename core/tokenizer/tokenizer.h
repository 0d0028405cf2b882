// Tokenizers built from GGUF metadata, behaving like llama.cpp's llama_vocab:
//  - "gpt2": byte-level BPE with the pre-tokenizer named by tokenizer.ggml.pre,
//  - "llama": SentencePiece-style score merging with <0xXX> byte fallback.
// Special tokens (control / user-defined) written in the text are split out first.
//
// Thread-safety: a Tokenizer is immutable after construction; every const method may be
// called from several threads at once. A StreamDecoder belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/token_map.h"
#include "core/tokenizer/vocab.h"
#include "core/util/status.h"

namespace lms {

namespace tok {
class BpeMerger;
class RegexSplitter;
struct SpmModel;
}  // namespace tok

class Tokenizer {
 public:
  // Token attribute bits (llama.cpp's llama_token_attr), derived from tokenizer.ggml.token_type
  // plus llama.cpp's per-model fix-ups (e.g. "<|im_end|>" forced to control).
  enum Attr : uint32_t {
    kAttrUnknown = 1u << 0,
    kAttrUnused = 1u << 1,
    kAttrNormal = 1u << 2,
    kAttrControl = 1u << 3,
    kAttrUserDefined = 1u << 4,
    kAttrByte = 1u << 5,
    kAttrLstrip = 1u << 7,  // text before this special token loses trailing whitespace
    kAttrRstrip = 1u << 8,  // text after it loses leading whitespace
  };

  static Result<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);
  // Fails (kUnsupported) for other tokenizer models or unknown pre-tokenizers, and
  // (kInvalidArgument) for inconsistent vocabularies: duplicate tokens, array sizes, …
  static Result<std::unique_ptr<Tokenizer>> FromVocab(VocabData vocab);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_special: add BOS/EOS as tokenizer.ggml.add_bos_token / add_eos_token say (with
  //   llama.cpp's per-model defaults when absent).
  // parse_special: control tokens written in the text ("<|im_start|>") become single tokens;
  //   user-defined tokens are always split out, as in llama.cpp and Hugging Face.
  // Invalid UTF-8 is tokenized as if each bad byte were U+FFFD (BPE) or as byte tokens (SPM).
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes of one token (may be part of a UTF-8 character). Control/unknown tokens give
  // their text when render_special, else "". Out-of-range ids give "".
  std::string TokenToPiece(int32_t id, bool render_special = true) const;
  // Concatenated pieces. For SentencePiece vocabularies with add_space_prefix, the space that
  // Encode prefixed is removed from the first non-empty piece, so Decode(Encode(s)) == s.
  // (No clean-up of spaces before punctuation: the text is returned exactly.)
  std::string Decode(std::span<const int32_t> ids, bool render_special = true) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 when none
  int32_t eos_id() const { return eos_id_; }
  int32_t eot_id() const { return eot_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

  // eos, eot, eom and tokens such as <|im_end|>, <|eot_id|>, <|endoftext|>, <end_of_turn>.
  bool IsEndOfGeneration(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }
  bool IsControl(int32_t id) const { return HasAttr(id, kAttrControl); }
  uint32_t attrs(int32_t id) const { return InRange(id) ? attrs_[static_cast<size_t>(id)] : 0u; }
  // The token's text as stored in the vocabulary (byte-level BPE: GPT-2 encoded).
  std::string_view TokenText(int32_t id) const;
  // Exact lookup of a vocabulary entry by its stored text.
  std::optional<int32_t> FindToken(std::string_view text) const;

  const std::string& model_name() const { return model_; }  // "gpt2" / "llama"
  const std::string& pre_name() const { return pre_; }      // "smollm", "llama-bpe", … ("" for llama)

 private:
  struct Fragment {
    int32_t token;  // >= 0: a special token; -1: raw text [offset, offset + length)
    size_t offset, length;
  };

  Tokenizer();
  Status Init(VocabData v);
  void ApplyModelFixups(const VocabData& v);
  std::string ComputePiece(int32_t id) const;
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;
  bool InRange(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens_.size(); }
  bool HasAttr(int32_t id, uint32_t a) const { return InRange(id) && (attrs_[static_cast<size_t>(id)] & a); }

  bool is_bpe_ = false;
  std::string model_, pre_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<uint32_t> attrs_;
  std::vector<std::string> pieces_;  // TokenToPiece(id, true), precomputed
  tok::TokenMap map_;  // text -> id over the whole vocabulary
  std::vector<int32_t> special_tokens_;  // control/user-defined/unknown, longest text first
  std::vector<int32_t> eog_ids_;         // sorted
  int32_t bos_id_ = -1, eos_id_ = -1, eot_id_ = -1, eom_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;

  std::unique_ptr<tok::RegexSplitter> splitter_;  // BPE
  std::unique_ptr<tok::BpeMerger> merger_;        // BPE
  std::unique_ptr<tok::SpmModel> spm_;            // SentencePiece
};

// Turns a stream of token ids into text, holding back a token's bytes while they end in an
// incomplete UTF-8 character so every returned chunk is valid UTF-8 (for valid output).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_special = true)
      : tok_(tokenizer), render_special_(render_special) {}
  // Returns the text that became complete with this token (possibly "").
  std::string Push(int32_t id);
  // Returns whatever is still held back (an incomplete character's bytes), and resets.
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  std::string pending_;
};

}  // namespace lms
