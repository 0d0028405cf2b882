#include "core/model/chat_template.h"

namespace lms {

Result<ChatTemplate> ChatTemplate::FromSource(std::string source, std::string bos_token, std::string eos_token) {
  auto parsed = jinja::Template::Parse(source);
  if (!parsed.ok()) return parsed.status().WithContext("chat template");
  return ChatTemplate(std::move(parsed).value(), std::move(source), std::move(bos_token), std::move(eos_token));
}

namespace {

template <typename Json>
Result<Json> BuildContext(const Json& messages, bool add_generation_prompt, const Json& extra, const std::string& bos,
                          const std::string& eos) {
  if (!messages.is_array()) return Status::InvalidArgument("chat template: messages must be a JSON array");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].is_object())
      return Status::InvalidArgument("chat template: message " + std::to_string(i) + " is not a JSON object");
  }
  if (!extra.is_null() && !extra.is_object())
    return Status::InvalidArgument("chat template: extra context must be a JSON object");
  Json ctx = Json::object();
  ctx["messages"] = messages;
  ctx["tools"] = nullptr;      // HF passes tools=None / documents=None when not given
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = bos;
  ctx["eos_token"] = eos;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  }
  return ctx;
}

}  // namespace

Result<std::string> ChatTemplate::Apply(const nlohmann::json& messages, bool add_generation_prompt,
                                        const nlohmann::json& extra) const {
  LMS_ASSIGN_OR_RETURN(nlohmann::json ctx, BuildContext(messages, add_generation_prompt, extra, bos_token_, eos_token_));
  return template_.Render(ctx, options_);
}

Result<std::string> ChatTemplate::Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                        const nlohmann::ordered_json& extra) const {
  LMS_ASSIGN_OR_RETURN(nlohmann::ordered_json ctx,
                       BuildContext(messages, add_generation_prompt, extra, bos_token_, eos_token_));
  return template_.Render(ctx, options_);
}

Result<std::string> ChatTemplate::Apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    nlohmann::ordered_json obj = nlohmann::ordered_json::object();
    obj["role"] = m.role;
    obj["content"] = m.content;
    if (m.extras.is_object()) {
      for (auto it = m.extras.begin(); it != m.extras.end(); ++it) obj[it.key()] = it.value();
    }
    arr.push_back(std::move(obj));
  }
  return Apply(arr, add_generation_prompt, nlohmann::ordered_json(nullptr));
}

const char* DefaultChatMlTemplate() {
  // Our own minimal ChatML template (used when a GGUF has no tokenizer.chat_template).
  return "{%- for message in messages -%}\n"
         "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '')"
         " + '<|im_end|>\\n' -}}\n"
         "{%- endfor -%}\n"
         "{%- if add_generation_prompt -%}\n"
         "{{- '<|im_start|>assistant\\n' -}}\n"
         "{%- endif -%}\n";
}

}  // namespace lms
