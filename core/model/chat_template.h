// Chat templates: turn a conversation into the prompt text a model was trained on, by
// rendering the model's Jinja template (GGUF key tokenizer.chat_template) the way Hugging Face
// transformers' apply_chat_template does.
//
// The render context matches HF: `messages`, `tools` (null unless given), `documents` (null
// unless given), `add_generation_prompt`, `bos_token`, `eos_token`, plus any `extra` keys
// (which override these; e.g. "tools", "date_string", "enable_thinking").
//
// Thread-safety: immutable after FromSource; Apply may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/jinja/template.h"
#include "core/util/status.h"

namespace lms {

struct ChatMessage {
  std::string role;
  std::string content;
  // Other message fields ("tool_calls", "tool_call_id", "name"…), merged into the message
  // object; keys here override role/content.
  nlohmann::ordered_json extras = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses `source`; syntax errors and unsupported constructs are InvalidArgument naming the
  // construct and its line:column.
  static Result<ChatTemplate> FromSource(std::string source, std::string bos_token, std::string eos_token);

  // `messages`: an OpenAI-style JSON array of message objects. `extra`: a JSON object (or
  // null) of additional template variables. Errors (including the template's own
  // raise_exception, e.g. "roles must alternate") are InvalidArgument.
  // The ordered_json overloads keep the caller's key order (as Python dicts do, which matters
  // for tool schemas rendered with tojson); nlohmann::json objects iterate in sorted key order.
  Result<std::string> Apply(const nlohmann::json& messages, bool add_generation_prompt,
                            const nlohmann::json& extra = nullptr) const;
  Result<std::string> Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                            const nlohmann::ordered_json& extra = nullptr) const;
  Result<std::string> Apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // Fixes what strftime_now() returns (for reproducible prompts and tests); default: local time.
  void set_render_options(const jinja::RenderOptions& options) { options_ = options; }

  const std::string& source() const { return source_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }

 private:
  ChatTemplate(jinja::Template t, std::string source, std::string bos, std::string eos)
      : template_(std::move(t)), source_(std::move(source)), bos_token_(std::move(bos)), eos_token_(std::move(eos)) {}

  jinja::Template template_;
  std::string source_;
  std::string bos_token_;
  std::string eos_token_;
  jinja::RenderOptions options_;
};

// The template used when a model file has no tokenizer.chat_template: plain ChatML
// ("<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n"
// when add_generation_prompt). Messages without string content render with empty content.
const char* DefaultChatMlTemplate();

}  // namespace lms
