#include "core/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <initializer_list>

#include "core/util/log.h"

namespace lms::tok {
namespace {

// The patterns, as in each model's tokenizer.json (llama.cpp's llama-vocab.cpp lists the same,
// sometimes rewritten for std::regex; PCRE2 takes the originals).
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// (?i:'s|…) spelled out case by case, as llama.cpp does.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kSeedCoder =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// BLOOM-style: everything up to punctuation or whitespace; … 。 ， 、 । ۔ ، as code points.
constexpr const char* kBloom = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
// CJK ranges written as code points: 一-龥 ࠀ-一 가-퟿ and 一-龥 ぀-ゟ ゠-ヿ.
constexpr const char* kDeepseekCoderCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepseekV3Cjk = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
constexpr const char* kDeepseekV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool OneOf(std::string_view s, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names) {
    if (s == n) return true;
  }
  return false;
}

}  // namespace

std::optional<PreTokenizerSpec> FindPreTokenizer(std::string_view pre) {
  PreTokenizerSpec s;
  if (pre.empty() || pre == "default") {
    s.canonical = "default";
    s.regexes = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  } else if (OneOf(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                         "lfm2", "jina-v5-nano"})) {
    s.canonical = "llama3";
    s.regexes = {kLlama3};
    s.ignore_merges = true;
    s.add_bos = true;
  } else if (OneOf(pre, {"dbrx", "smaug-bpe"})) {
    s.canonical = "dbrx";
    s.regexes = {kLlama3};
  } else if (OneOf(pre, {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                         "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt",
                         "olmo", "jais", "trillion", "granite-docling", "exaone4"})) {
    s.canonical = "gpt2";
    s.regexes = {kGpt2};
  } else if (OneOf(pre, {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                         "mellum2"})) {
    // Digits split one by one first, then the GPT-2 pattern.
    s.canonical = "starcoder";
    s.regexes = {R"(\p{N})", kGpt2};
  } else if (OneOf(pre, {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", "hunyuan",
                         "solar-open"})) {
    s.canonical = "qwen2";
    s.regexes = {kQwen2};
  } else if (pre == "falcon") {
    s.canonical = "falcon";
    s.regexes = {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"};
  } else if (pre == "deepseek-coder") {
    s.canonical = "deepseek-coder";
    s.regexes = {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCoderCjk, R"(\p{N})"};
  } else if (OneOf(pre, {"deepseek-v3", "hunyuan-dense", "joyai-llm"})) {
    s.canonical = "deepseek-v3";
    s.regexes = {R"(\p{N}{1,3})", kDeepseekV3Cjk, kDeepseekV3Main};
  } else if (OneOf(pre, {"glm4", "chatglm-bpe"})) {
    s.canonical = "chatglm4";
    s.regexes = {kLlama3};
  } else if (OneOf(pre, {"poro-chat", "bloom", "gpt3-finnish"})) {
    s.canonical = "bloom";
    s.regexes = {kBloom};
  } else if (pre == "viking") {
    s.canonical = "viking";
    s.regexes = {kBloom, R"(\p{N})"};
  } else if (pre == "tekken") {
    s.canonical = "tekken";
    s.regexes = {kTekken};
    s.ignore_merges = true;
    s.add_bos = true;
  } else if (OneOf(pre, {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"})) {
    s.canonical = "gpt-4o";
    s.regexes = {kGpt4o};
  } else if (pre == "seed-coder") {
    s.canonical = "seed-coder";
    s.regexes = {kSeedCoder};
  } else {
    return std::nullopt;
  }
  return s;
}

std::string TranslateWhitespaceClasses(std::string_view p) {
  // U+0009..U+000D, U+0085 and the Z categories (Zs, Zl, Zp) are exactly Unicode's White_Space.
  static constexpr std::string_view kWs = R"(\t-\r\x{85}\p{Z})";
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's') {
        if (in_class) {
          out += kWs;
        } else {
          out += '[';
          out += kWs;
          out += ']';
        }
      } else if (e == 'S' && !in_class) {
        out += "[^";
        out += kWs;
        out += ']';
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

namespace {

// Per-thread matching state: match data and a JIT stack big enough for long whitespace runs.
struct ThreadMatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ThreadMatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mctx = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 4 * 1024 * 1024, nullptr);
    if (mctx && jit_stack) pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
  }
};

ThreadMatchState& MatchState() {
  thread_local ThreadMatchState state;
  return state;
}

// Splits one piece by one regex: matches and the gaps between them, in order.
void SplitPiece(const pcre2_code* code, std::string_view piece, std::vector<std::string_view>* out) {
  ThreadMatchState& st = MatchState();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  const size_t len = piece.size();
  size_t pos = 0;       // where the next search starts
  size_t emitted = 0;   // end of what has been emitted so far
  while (pos < len) {
    const int rc = pcre2_match(code, subject, len, pos, PCRE2_NO_UTF_CHECK, st.md, st.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // Resource limits only (the patterns are fixed): keep the rest whole rather than fail.
      LogWarn("tokenizer: regex match failed (pcre2 error " + std::to_string(rc) + "); leaving " +
              std::to_string(len - pos) + " bytes unsplit");
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    const size_t start = ov[0];
    const size_t end = ov[1];
    if (end == start) {
      // An empty match splits nothing; step over one code point and search again.
      pos = start + 1;
      while (pos < len && (static_cast<uint8_t>(piece[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > emitted) out->push_back(piece.substr(emitted, start - emitted));
    out->push_back(piece.substr(start, end - start));
    emitted = end;
    pos = end;
  }
  if (emitted < len) out->push_back(piece.substr(emitted));
}

}  // namespace

Result<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(const std::vector<std::string>& patterns) {
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  for (const std::string& raw : patterns) {
    const std::string pattern = TranslateWhitespaceClasses(raw);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::Internal("pre-tokenizer regex '" + raw + "' does not compile at offset " +
                              std::to_string(err_offset) + ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT is an optimisation: without it (unsupported platform) pcre2_match interprets.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    s->codes_.push_back(code);
  }
  return s;
}

RegexSplitter::~RegexSplitter() {
  for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
}

void RegexSplitter::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  if (text.empty()) return;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (void* c : codes_) {
    next.clear();
    for (std::string_view piece : current) SplitPiece(static_cast<const pcre2_code*>(c), piece, &next);
    current.swap(next);
  }
  pieces->insert(pieces->end(), current.begin(), current.end());
}

}  // namespace lms::tok
