#include "core/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "core/tokenizer/bpe.h"
#include "core/tokenizer/pretokenizer.h"
#include "core/tokenizer/spm.h"
#include "core/tokenizer/utf8.h"
#include "core/util/log.h"

namespace lms {
namespace {

constexpr uint32_t kSpecialAttrs = Tokenizer::kAttrUnknown | Tokenizer::kAttrControl;
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 "▁"

uint32_t AttrFromType(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kUnknown: return Tokenizer::kAttrUnknown;
    case TokenType::kUnused: return Tokenizer::kAttrUnused;
    case TokenType::kNormal: return Tokenizer::kAttrNormal;
    case TokenType::kControl: return Tokenizer::kAttrControl;
    case TokenType::kUserDefined: return Tokenizer::kAttrUserDefined;
    case TokenType::kByte: return Tokenizer::kAttrByte;
    default: return 0;  // undefined
  }
}

// C-locale isspace, as llama.cpp uses for lstrip/rstrip around special tokens.
bool IsAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s->size());
  size_t pos = 0;
  for (;;) {
    const size_t hit = s->find(from, pos);
    if (hit == std::string::npos) break;
    out.append(*s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(*s, pos, std::string::npos);
  s->swap(out);
}

// "<0x0A>" -> 0x0A; -1 when the text has another shape.
int ParseByteToken(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& file) {
  Result<VocabData> v = LoadVocab(file);
  if (!v.ok()) return v.status().WithContext("reading the tokenizer");
  return FromVocab(std::move(v).value());
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(VocabData vocab) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  Status s = t->Init(std::move(vocab));
  if (!s.ok()) return s.WithContext("building the tokenizer");
  return t;
}

Status Tokenizer::Init(VocabData v) {
  model_ = v.model;
  pre_ = v.pre;
  std::optional<tok::PreTokenizerSpec> spec;
  if (v.model == "gpt2") {
    is_bpe_ = true;
    spec = tok::FindPreTokenizer(v.pre);
    if (!spec) return Status::Unsupported("pre-tokenizer '" + v.pre + "' (tokenizer.ggml.pre) is not supported");
    if (v.merges.empty()) return Status::InvalidArgument("BPE vocabulary without merges (tokenizer.ggml.merges)");
  } else if (v.model == "llama") {
    is_bpe_ = false;
  } else {
    return Status::Unsupported("tokenizer model '" + v.model +
                               "' (tokenizer.ggml.model) is not supported; expected 'gpt2' or 'llama'");
  }

  const size_t n = v.tokens.size();
  if (n == 0) return Status::InvalidArgument("the vocabulary has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return Status::InvalidArgument("the vocabulary is too large");
  if (!v.scores.empty() && v.scores.size() != n) {
    return Status::InvalidArgument("scores has " + std::to_string(v.scores.size()) + " entries for " +
                                   std::to_string(n) + " tokens");
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    return Status::InvalidArgument("token_type has " + std::to_string(v.token_types.size()) + " entries for " +
                                   std::to_string(n) + " tokens");
  }

  tokens_ = std::move(v.tokens);
  scores_ = std::move(v.scores);
  attrs_.assign(n, kAttrNormal);
  map_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    auto [it, inserted] = map_.emplace(tokens_[i], static_cast<int32_t>(i));
    if (!inserted) {
      return Status::InvalidArgument("duplicate token in vocabulary: '" + tokens_[i] + "' has ids " +
                                     std::to_string(it->second) + " and " + std::to_string(i));
    }
    if (!v.token_types.empty()) attrs_[i] = AttrFromType(v.token_types[i]);
  }

  // Special ids: the model type's defaults, replaced by what the metadata says.
  const auto pick = [&](const char* what, std::optional<int32_t> given, int32_t fallback) -> int32_t {
    int32_t id = fallback;
    if (given) {
      if (*given < 0 || InRange(*given)) {
        id = *given;
      } else {
        LogWarn("tokenizer: " + std::string(what) + " id " + std::to_string(*given) + " is out of range; using " +
                std::to_string(fallback));
      }
    }
    return InRange(id) ? id : -1;
  };
  bos_id_ = pick("bos", v.bos_id, is_bpe_ ? 11 : 1);
  eos_id_ = pick("eos", v.eos_id, is_bpe_ ? 11 : 2);
  unk_id_ = pick("unk", v.unk_id, is_bpe_ ? -1 : 0);
  eot_id_ = pick("eot", v.eot_id, -1);
  eom_id_ = pick("eom", v.eom_id, -1);
  pad_id_ = pick("pad", v.pad_id, -1);

  if (is_bpe_) {
    add_space_prefix_ = false;
    add_bos_ = spec->add_bos;
    add_eos_ = false;
  } else {
    add_space_prefix_ = true;
    add_bos_ = true;
    add_eos_ = false;
  }
  if (v.add_space_prefix) add_space_prefix_ = *v.add_space_prefix;
  if (v.add_bos) add_bos_ = *v.add_bos;
  if (v.add_eos) add_eos_ = *v.add_eos;
  if (add_bos_ && bos_id_ < 0) return Status::InvalidArgument("add_bos_token is true, but there is no bos token");
  if (add_eos_ && eos_id_ < 0) return Status::InvalidArgument("add_eos_token is true, but there is no eos token");

  ApplyModelFixups(v);

  // Special tokens are split out of the text longest first (stable, so ties go by id).
  for (size_t i = 0; i < n; ++i) {
    if (attrs_[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) special_tokens_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
    return tokens_[static_cast<size_t>(a)].size() > tokens_[static_cast<size_t>(b)].size();
  });

  // Phi-3's special tokens swallow the whitespace after them (llama.cpp keys this on the name).
  std::string lname = v.general_name;
  std::transform(lname.begin(), lname.end(), lname.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos) {
    for (int32_t id : special_tokens_) attrs_[static_cast<size_t>(id)] |= kAttrRstrip;
    if (auto id = FindToken("</s>")) attrs_[static_cast<size_t>(*id)] |= kAttrRstrip;
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (auto id = FindToken(t)) attrs_[static_cast<size_t>(*id)] &= ~kAttrRstrip;
    }
  }

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) pieces_[i] = ComputePiece(static_cast<int32_t>(i));

  if (is_bpe_) {
    LMS_ASSIGN_OR_RETURN(splitter_, tok::RegexSplitter::Create(spec->regexes));
    merger_ = std::make_unique<tok::BpeMerger>(map_, v.merges, spec->ignore_merges);
    if (merger_->n_skipped_merges() > 0) {
      LogWarn("tokenizer: skipped " + std::to_string(merger_->n_skipped_merges()) +
              " merges whose parts are not tokens");
    }
  } else {
    spm_ = std::make_unique<tok::SpmModel>();
    spm_->map = &map_;
    spm_->scores = &scores_;
    spm_->unk_id = unk_id_;
    static const char* kHex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
      int32_t id = tok::LookupToken(map_, name);
      if (id < 0) id = tok::LookupToken(map_, std::string(1, static_cast<char>(b)));
      spm_->byte_ids[static_cast<size_t>(b)] = id;
    }
  }
  return Status::Ok();
}

// llama.cpp's load-time fix-ups that recognise tokens by their text: end-of-turn and FIM tokens,
// the end-of-generation set, and forcing such tokens to be control tokens.
void Tokenizer::ApplyModelFixups(const VocabData& v) {
  const auto make_control = [&](int32_t id) {
    if (!(attrs_[static_cast<size_t>(id)] & kAttrControl)) attrs_[static_cast<size_t>(id)] |= kAttrControl;
  };
  // Lowest id among the texts present (llama.cpp takes whichever its hash map yields first).
  const auto detect = [&](std::initializer_list<std::string_view> texts) -> int32_t {
    int32_t best = -1;
    for (std::string_view t : texts) {
      const int32_t id = tok::LookupToken(map_, t);
      if (id >= 0 && (best < 0 || id < best)) best = id;
    }
    if (best >= 0) make_control(best);
    return best;
  };
  const auto given = [&](std::optional<int32_t> id) { return id && InRange(*id) ? *id : -1; };

  if (eot_id_ < 0) {
    eot_id_ = detect({"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                      "<EOT>", "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                      "<end_of_utterance>"});
  }
  if (eom_id_ < 0) eom_id_ = detect({"<|eom_id|>"});
  int32_t fim_pre = given(v.fim_pre_id), fim_suf = given(v.fim_suf_id), fim_mid = given(v.fim_mid_id);
  int32_t fim_pad = given(v.fim_pad_id), fim_rep = given(v.fim_rep_id), fim_sep = given(v.fim_sep_id);
  if (fim_pre < 0) {
    fim_pre = detect({"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
                      "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
  }
  if (fim_suf < 0) {
    fim_suf = detect({"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>",
                      "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
  }
  if (fim_mid < 0) {
    fim_mid = detect({"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
                      "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
  }
  if (fim_pad < 0) fim_pad = detect({"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  if (fim_rep < 0) fim_rep = detect({"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  if (fim_sep < 0) fim_sep = detect({"<|file_sep|>"});

  std::vector<int32_t> eog;
  for (int32_t id : {fim_pad, fim_rep, fim_sep, eos_id_, eot_id_, eom_id_}) {
    if (id >= 0) eog.push_back(id);
  }
  for (std::string_view t :
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["}) {
    const int32_t id = tok::LookupToken(map_, t);
    if (id < 0) continue;
    eog.push_back(id);
    make_control(id);
  }
  // gpt-oss: these are rendered as text, not hidden as control tokens.
  for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const int32_t id = tok::LookupToken(map_, t);
    if (id >= 0) attrs_[static_cast<size_t>(id)] = kAttrUserDefined;
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  const auto in_eog = [&](std::string_view t) {
    const int32_t id = tok::LookupToken(map_, t);
    return id >= 0 && std::binary_search(eog.begin(), eog.end(), id) ? id : -1;
  };
  // gpt-oss / solar-open: "<|end|>" ends a message, not the generation.
  const int32_t end_id = in_eog("<|end|>");
  if (end_id >= 0 && ((in_eog("<|return|>") >= 0 && in_eog("<|call|>") >= 0) ||
                      ((in_eog("<|call|>") >= 0 || in_eog("<|calls|>") >= 0) && in_eog("<|flush|>") >= 0))) {
    eog.erase(std::find(eog.begin(), eog.end(), end_id));
    attrs_[static_cast<size_t>(end_id)] = kAttrUserDefined;
  }
  // gemma4: "</s>" is not an end of generation there.
  const int32_t s_id = in_eog("</s>");
  if (s_id >= 0 && in_eog("<|tool_response>") >= 0) {
    eog.erase(std::find(eog.begin(), eog.end(), s_id));
    attrs_[static_cast<size_t>(s_id)] = kAttrNormal;
  }
  eog_ids_ = std::move(eog);
}

std::string Tokenizer::ComputePiece(int32_t id) const {
  const uint32_t attr = attrs_[static_cast<size_t>(id)];
  const std::string& text = tokens_[static_cast<size_t>(id)];
  if (attr & (kSpecialAttrs | kAttrUserDefined)) return text;
  if (attr & kAttrNormal) {
    if (!is_bpe_) {
      std::string s = text;
      ReplaceAll(&s, kSpmSpace, " ");
      return s;
    }
    // Byte-level BPE: each code point of the token text stands for one byte.
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      uint32_t cp = 0;
      int byte = -1;
      if (tok::DecodeUtf8(text, &pos, &cp)) {
        byte = tok::UnicodeToByte(cp);
      } else {
        pos = start + 1;
      }
      if (byte >= 0) {
        out.push_back(static_cast<char>(byte));
      } else {
        // As llama.cpp: a character that stands for no byte is shown, not dropped.
        static const char* kHex = "0123456789abcdef";
        out += "[UNK_BYTE_0x";
        for (size_t k = start; k < pos; ++k) {
          const uint8_t c = static_cast<uint8_t>(text[k]);
          out += kHex[c >> 4];
          out += kHex[c & 15];
        }
        out += text;
        out += "]";
      }
    }
    return out;
  }
  if (attr & kAttrByte) {
    const int b = ParseByteToken(text);
    return b >= 0 ? std::string(1, static_cast<char>(b)) : std::string();
  }
  return {};  // unused / undefined tokens render as nothing
}

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back(Fragment{-1, 0, text.size()});
  std::vector<Fragment> next;
  // Each special token in turn (longest first) is cut out of every remaining raw fragment,
  // exactly as llama.cpp's tokenizer_st_partition does.
  for (int32_t id : special_tokens_) {
    const uint32_t attr = attrs_[static_cast<size_t>(id)];
    // Without parse_special only user-defined tokens are split out.
    if (!parse_special && (attr & kSpecialAttrs)) continue;
    const std::string& st = tokens_[static_cast<size_t>(id)];
    bool any = false;
    for (const Fragment& f : frags) {
      if (f.token < 0 && text.substr(f.offset, f.length).find(st) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const size_t end = f.offset + f.length;
      const std::string_view window = text.substr(0, end);
      size_t cur = f.offset;
      size_t match = window.find(st, cur);
      while (match != std::string_view::npos) {
        size_t left_len = match - cur;
        if (attr & kAttrLstrip) {
          while (left_len > 0 && IsAsciiSpace(text[cur + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back(Fragment{-1, cur, left_len});
        next.push_back(Fragment{id, 0, 0});
        cur = match + st.size();
        if (attr & kAttrRstrip) {
          while (cur < end && IsAsciiSpace(text[cur])) ++cur;
        }
        match = cur < end ? window.find(st, cur) : std::string_view::npos;
      }
      if (cur < end) next.push_back(Fragment{-1, cur, end - cur});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  const std::vector<Fragment> frags = Partition(text, parse_special);
  if (add_special && add_bos_) out.push_back(bos_id_);

  if (is_bpe_) {
    std::vector<std::string_view> words;
    std::string sanitized;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      std::string_view raw = text.substr(f.offset, f.length);
      if (!tok::IsValidUtf8(raw)) {
        sanitized = tok::SanitizeUtf8(raw);
        raw = sanitized;
      }
      words.clear();
      splitter_->Split(raw, &words);
      for (std::string_view w : words) merger_->EncodeWord(w, &out);
    }
  } else {
    // A space is prefixed to the text at the start and after every special token.
    bool prev_special = true;
    std::string buf;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf.push_back(' ');
      buf.append(text.substr(f.offset, f.length));
      ReplaceAll(&buf, " ", kSpmSpace);
      tok::SpmEncode(*spm_, buf, &out);
      prev_special = false;
    }
  }

  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  if (!InRange(id)) return {};
  if (!render_special && (attrs_[static_cast<size_t>(id)] & kSpecialAttrs)) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = add_space_prefix_;
  for (int32_t id : ids) {
    if (!InRange(id)) continue;
    if (!render_special && (attrs_[static_cast<size_t>(id)] & kSpecialAttrs)) continue;
    const std::string& piece = pieces_[static_cast<size_t>(id)];
    if (piece.empty()) continue;
    if (strip_space) {
      strip_space = false;
      if (piece[0] == ' ') {
        out.append(piece, 1, std::string::npos);
        continue;
      }
    }
    out += piece;
  }
  return out;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

std::string_view Tokenizer::TokenText(int32_t id) const {
  return InRange(id) ? std::string_view(tokens_[static_cast<size_t>(id)]) : std::string_view();
}

std::optional<int32_t> Tokenizer::FindToken(std::string_view text) const {
  const int32_t id = tok::LookupToken(map_, text);
  if (id < 0) return std::nullopt;
  return id;
}

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tok_.TokenToPiece(id, render_special_);
  const size_t hold = tok::IncompleteUtf8Tail(pending_);
  std::string ready = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string StreamDecoder::Flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace lms
