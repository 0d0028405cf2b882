#include "ui/panels/chat_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <random>

#include "core/serve/engine.h"
#include "core/store/store.h"

namespace lms::ui {

struct ChatPanel::Streaming {
  std::shared_ptr<serve::RequestChannel> channel;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::time_point first_token;
  int tokens = 0;
  bool done = false;
};

ChatPanel::ChatPanel() = default;
ChatPanel::~ChatPanel() {
  if (stream_ && stream_->channel) stream_->channel->Cancel();
}

bool ChatPanel::Busy() const {
  const bool unsaved = saved_turns_ < turns_.size() && record_error_.empty();
  return load_.Running() || (stream_ && !stream_->done) || !script_prompt_.empty() || record_.Running() || unsaved;
}

void ChatPanel::Script(std::string model, std::string prompt) {
  model_path_ = std::move(model);
  script_prompt_ = std::move(prompt);
}

void ChatPanel::Load(const std::string& path) {
  error_.clear();
  load_.Start("loading " + path + "...", [path](const auto&) { return LoadModelRuntime(path); });
}

void ChatPanel::Send() {
  if (!runtime_ || input_.empty() || (stream_ && !stream_->done)) return;
  turns_.push_back({"user", input_});
  input_.clear();
  nlohmann::json messages = nlohmann::json::array();
  if (!system_.empty()) messages.push_back({{"role", "system"}, {"content", system_}});
  for (const auto& t : turns_) messages.push_back({{"role", t.role}, {"content", t.content}});
  ChatSampling cs;
  cs.temperature = temperature_;
  cs.top_p = top_p_;
  cs.max_tokens = max_tokens_;
  cs.seed = std::random_device{}();
  auto ch = SubmitChat(*runtime_, messages, cs);
  if (!ch.ok()) {
    error_ = ch.status().message();
    return;
  }
  turns_.push_back({"assistant", ""});
  stream_ = std::make_unique<Streaming>();
  stream_->channel = *ch;
  stream_->start = std::chrono::steady_clock::now();
}

void ChatPanel::Poll() {
  if (!stream_ || stream_->done) return;
  serve::StreamEvent ev;
  while (stream_->channel->Next(ev, std::chrono::milliseconds(0))) {
    if (ev.token >= 0) {
      if (stream_->tokens++ == 0) stream_->first_token = std::chrono::steady_clock::now();
    }
    turns_.back().content += ev.text;
    if (!ev.finish_reason.empty()) {
      if (ev.finish_reason == "error") error_ = ev.error;
      stream_->done = true;
    }
  }
  if (stream_->channel->done()) stream_->done = true;
  if (stream_->done) turns_.back().tokens = stream_->tokens;
  if (stream_->tokens > 1) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - stream_->first_token).count();
    if (s > 0) last_tok_s_ = (stream_->tokens - 1) / s;
  }
  last_tokens_ = stream_->tokens;
}

void ChatPanel::SaveTurns(const UiShared& shared) {
  if (auto r = record_.Take()) {
    if (r->ok()) {
      record_run_id_ = **r;
      saved_turns_ = saving_upto_;
      record_error_.clear();
    } else {
      record_error_ = "not saved to the record: " + r->status().message();
    }
  }
  const bool generating = stream_ && !stream_->done;
  if (generating || record_.Running() || saved_turns_ >= turns_.size() || !record_error_.empty()) return;
  if (conversation_id_.empty()) {
    std::random_device rd;
    conversation_id_ = fmt::format("{:08x}{:08x}", rd(), rd());
  }
  std::vector<store::ChatTurn> pending;
  for (size_t i = saved_turns_; i < turns_.size(); ++i) {
    store::ChatTurn t{static_cast<int>(i), turns_[i].role, turns_[i].content, std::nullopt};
    if (turns_[i].tokens >= 0) t.tokens = turns_[i].tokens;
    pending.push_back(std::move(t));
  }
  saving_upto_ = turns_.size();
  std::string name = turns_.front().content.substr(0, 80);
  const nlohmann::json config = {{"id", conversation_id_}, {"model", runtime_ ? runtime_->path : model_path_},
                                 {"system", system_}, {"temperature", temperature_}, {"top_p", top_p_}, {"max_tokens", max_tokens_}};
  const std::string db = shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
  record_.Start("saving the conversation...", [db, run_id = record_run_id_, name, cfg = config.dump(),
                                               pending = std::move(pending)](const auto&) -> Result<int64_t> {
    LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
    int64_t id = run_id;
    if (id == 0) {
      LMS_ASSIGN_OR_RETURN(auto run, st->StartRun("chat", name, cfg));
      id = run.id;
    }
    LMS_RETURN_IF_ERROR(st->db().Transaction([&]() -> Status {
      for (const auto& t : pending) LMS_RETURN_IF_ERROR(st->AddChatTurn(id, t));
      return st->FinishRun(id, "done");
    }));
    return id;
  });
}

void ChatPanel::Draw(UiShared& shared) {
  if (auto r = load_.Take()) {
    if (r->ok()) {
      runtime_ = std::move(**r);
    } else {
      error_ = r->status().message();
      script_prompt_.clear();
    }
  }
  if (model_path_.empty()) model_path_ = shared.selected_model;
  if (!script_prompt_.empty() && !load_.Running()) {
    if (!runtime_ || runtime_->path != model_path_) {
      Load(model_path_);
    } else {
      input_ = script_prompt_;
      script_prompt_.clear();
      temperature_ = 0;
      Send();
    }
  }
  Poll();
  SaveTurns(shared);

  ImGui::SetNextItemWidth(480);
  ImGui::InputText("model", &model_path_);
  ImGui::SameLine();
  if (load_.Running()) {
    ImGui::TextDisabled("%s", load_.Status().c_str());
  } else if (ImGui::Button(runtime_ && runtime_->path == model_path_ ? "Reload" : "Load")) {
    Load(model_path_);
  }
  ImGui::SetNextItemWidth(480);
  ImGui::InputText("system prompt", &system_);
  ImGui::SetNextItemWidth(120);
  ImGui::SliderFloat("temperature", &temperature_, 0.0f, 2.0f, "%.2f");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(120);
  ImGui::SliderFloat("top-p", &top_p_, 0.05f, 1.0f, "%.2f");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(120);
  ImGui::InputInt("max tokens", &max_tokens_);
  max_tokens_ = std::clamp(max_tokens_, 1, 4096);
  if (runtime_) {
    const serve::EngineMetrics m = runtime_->engine->Metrics();
    ImGui::Text("%s | %.1f tokens/s | %d tokens | KV %.1f%% of %lld blocks", runtime_->path.c_str(), last_tok_s_, last_tokens_,
                100.0 * m.kv_usage(), static_cast<long long>(m.kv_blocks_total));
  } else {
    ImGui::TextDisabled("no model loaded");
  }
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  if (!record_error_.empty()) ImGui::TextColored(ImVec4(1, 0.6f, 0.4f, 1), "%s", record_error_.c_str());
  if (record_run_id_ > 0) {
    ImGui::SameLine();
    ImGui::TextDisabled("saved as run %lld", static_cast<long long>(record_run_id_));
  }
  ImGui::Separator();

  const float footer = ImGui::GetFrameHeightWithSpacing() * 2.5f;
  ImGui::BeginChild("conversation", ImVec2(0, -footer), true);
  for (const auto& t : turns_) {
    const bool user = t.role == "user";
    ImGui::TextColored(user ? ImVec4(0.5f, 0.8f, 1, 1) : ImVec4(0.6f, 1, 0.6f, 1), "%s", user ? "You" : "Assistant");
    ImGui::TextWrapped("%s", t.content.c_str());
    ImGui::Spacing();
  }
  if (stream_ && !stream_->done && ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - 20) ImGui::SetScrollHereY(1.0f);
  ImGui::EndChild();
  const bool generating = stream_ && !stream_->done;
  ImGui::SetNextItemWidth(-200);
  const bool enter = ImGui::InputTextWithHint("##input", "Type a message, Enter to send", &input_, ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  if (generating) {
    if (ImGui::Button("Stop")) stream_->channel->Cancel();
  } else if ((ImGui::Button("Send") || enter) && runtime_) {
    Send();
  }
  ImGui::SameLine();
  if (ImGui::Button("New chat") && !generating && !record_.Running()) {
    turns_.clear();
    conversation_id_.clear();
    record_run_id_ = 0;
    saved_turns_ = saving_upto_ = 0;
    record_error_.clear();
  }
}

nlohmann::json ChatPanel::Report() const {
  nlohmann::json j;
  j["model"] = runtime_ ? runtime_->path : "";
  j["loaded"] = runtime_ != nullptr;
  j["turns"] = nlohmann::json::array();
  for (const auto& t : turns_) j["turns"].push_back({{"role", t.role}, {"content", t.content}});
  j["tokens"] = last_tokens_;
  j["tokens_per_s"] = last_tok_s_;
  if (runtime_) j["kv_blocks_total"] = runtime_->engine->Metrics().kv_blocks_total;
  if (!error_.empty()) j["error"] = error_;
  j["record_run_id"] = record_run_id_;
  j["saved_turns"] = saved_turns_;
  if (!record_error_.empty()) j["record_error"] = record_error_;
  return j;
}

}  // namespace lms::ui
