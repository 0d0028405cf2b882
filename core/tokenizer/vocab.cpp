#include "core/tokenizer/vocab.h"

#include <algorithm>
#include <string_view>

#include "core/model/gguf.h"

namespace lms {
namespace {

// A present key of the wrong type is an error (the file is malformed); an absent one is not.
Status ReadOptionalId(const gguf::GgufFile& f, std::string_view key, std::optional<int32_t>* out) {
  if (!f.Find(key)) return Status::Ok();
  std::optional<int64_t> v = f.GetInt(key);
  if (!v) return Status::InvalidArgument(std::string(key) + " is not an integer");
  // Ids outside the vocabulary are passed on; the tokenizer warns and uses the default, as
  // llama.cpp does. (GGUF stores them unsigned, so -1 cannot come from a file.)
  *out = static_cast<int32_t>(std::clamp<int64_t>(*v, -1, INT32_MAX));
  return Status::Ok();
}

Status ReadOptionalBool(const gguf::GgufFile& f, std::string_view key, std::optional<bool>* out) {
  if (!f.Find(key)) return Status::Ok();
  std::optional<bool> v = f.GetBool(key);
  if (!v) return Status::InvalidArgument(std::string(key) + " is not a bool");
  *out = *v;
  return Status::Ok();
}

}  // namespace

Result<VocabData> LoadVocab(const gguf::GgufFile& f) {
  VocabData v;
  std::optional<std::string> model = f.GetString("tokenizer.ggml.model");
  if (!model) return Status::InvalidArgument("tokenizer.ggml.model is missing or not a string");
  v.model = *model;
  if (f.Find("tokenizer.ggml.pre")) {
    std::optional<std::string> pre = f.GetString("tokenizer.ggml.pre");
    if (!pre) return Status::InvalidArgument("tokenizer.ggml.pre is not a string");
    v.pre = *pre;
  }
  v.general_name = f.GetString("general.name").value_or("");

  const std::vector<std::string>* tokens = f.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return Status::InvalidArgument("tokenizer.ggml.tokens is missing or not a string array");
  v.tokens = *tokens;
  const size_t n = v.tokens.size();

  if (f.Find("tokenizer.ggml.scores")) {
    std::optional<std::vector<double>> scores = f.GetFloatArray("tokenizer.ggml.scores");
    if (!scores) return Status::InvalidArgument("tokenizer.ggml.scores is not a numeric array");
    if (scores->size() < n) {
      return Status::InvalidArgument("tokenizer.ggml.scores has " + std::to_string(scores->size()) +
                                     " entries for " + std::to_string(n) + " tokens");
    }
    v.scores.assign(scores->begin(), scores->begin() + static_cast<ptrdiff_t>(n));
  }
  if (f.Find("tokenizer.ggml.token_type")) {
    std::optional<std::vector<int64_t>> types = f.GetIntArray("tokenizer.ggml.token_type");
    if (!types) return Status::InvalidArgument("tokenizer.ggml.token_type is not an integer array");
    if (types->size() < n) {
      return Status::InvalidArgument("tokenizer.ggml.token_type has " + std::to_string(types->size()) +
                                     " entries for " + std::to_string(n) + " tokens");
    }
    v.token_types.reserve(n);
    for (size_t i = 0; i < n; ++i) v.token_types.push_back(static_cast<int32_t>((*types)[i]));
  }
  if (f.Find("tokenizer.ggml.merges")) {
    const std::vector<std::string>* merges = f.GetStringArray("tokenizer.ggml.merges");
    if (!merges) return Status::InvalidArgument("tokenizer.ggml.merges is not a string array");
    v.merges = *merges;
  }

  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.bos_token_id", &v.bos_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.eos_token_id", &v.eos_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.eot_token_id", &v.eot_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.eom_token_id", &v.eom_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.unknown_token_id", &v.unk_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.padding_token_id", &v.pad_id));
  // The GGUF key really is spelled "seperator".
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.seperator_token_id", &v.sep_id));
  // Older files name the first three prefix/suffix/middle.
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.prefix_token_id", &v.fim_pre_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.suffix_token_id", &v.fim_suf_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.middle_token_id", &v.fim_mid_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_pre_token_id", &v.fim_pre_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_suf_token_id", &v.fim_suf_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_mid_token_id", &v.fim_mid_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_pad_token_id", &v.fim_pad_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_rep_token_id", &v.fim_rep_id));
  LMS_RETURN_IF_ERROR(ReadOptionalId(f, "tokenizer.ggml.fim_sep_token_id", &v.fim_sep_id));
  LMS_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_bos_token", &v.add_bos));
  LMS_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_eos_token", &v.add_eos));
  LMS_RETURN_IF_ERROR(ReadOptionalBool(f, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix));
  return v;
}

}  // namespace lms
