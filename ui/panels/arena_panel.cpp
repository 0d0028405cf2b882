#include "ui/panels/arena_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <chrono>

#include "core/store/store.h"

namespace lms::ui {
namespace {

std::string DbPath(const UiShared& shared) {
  return shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
}

}  // namespace

ArenaPanel::ArenaPanel() : rng_(std::random_device{}()) {}

ArenaPanel::~ArenaPanel() {
  for (Side* s : {&a_, &b_}) {
    if (s->channel && !s->done) s->channel->Cancel();
  }
}

bool ArenaPanel::Busy() const {
  return load_.Running() || pending_battle_ || !a_.done || !b_.done || board_job_.Running() || board_have_ < board_wanted_ ||
         (!script_vote_.empty() && (!voted_ || !board_));
}

void ArenaPanel::Script(std::string prompt, std::string vote) {
  prompt_ = std::move(prompt);
  script_vote_ = std::move(vote);
  pending_battle_ = true;
}

void ArenaPanel::StartBattle(const UiShared& shared) {
  error_.clear();
  if (contestants_.size() < 2) {
    error_ = "add at least two contestants";
    pending_battle_ = false;
    return;
  }
  if (prompt_.empty()) {
    error_ = "type a prompt first";
    pending_battle_ = false;
    return;
  }
  // Models not loaded yet: load them first, then come back here.
  std::vector<std::string> missing;
  for (const auto& c : contestants_) {
    if (!runtimes_.count(c.model) && std::find(missing.begin(), missing.end(), c.model) == missing.end()) missing.push_back(c.model);
  }
  if (!missing.empty()) {
    pending_battle_ = true;
    load_.Start(fmt::format("loading {} model(s)...", missing.size()),
                [missing](const auto&) -> Result<std::vector<std::shared_ptr<ModelRuntime>>> {
                  std::vector<std::shared_ptr<ModelRuntime>> out;
                  for (const auto& m : missing) {
                    LMS_ASSIGN_OR_RETURN(auto rt, LoadModelRuntime(m, 64ll << 20));
                    out.push_back(std::move(rt));
                  }
                  return out;
                });
    return;
  }
  pending_battle_ = false;
  // Two different contestants, uniformly, on random sides.
  const int n = static_cast<int>(contestants_.size());
  const int i = static_cast<int>(rng_() % n);
  int j = static_cast<int>(rng_() % (n - 1));
  if (j >= i) ++j;
  asked_ = prompt_;
  const nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", asked_}}});
  for (auto [side, idx] : {std::pair<Side*, int>{&a_, i}, std::pair<Side*, int>{&b_, j}}) {
    *side = Side{};
    side->contestant = idx;
    ChatSampling cs;
    cs.temperature = contestants_[idx].temperature;
    cs.max_tokens = 256;
    cs.seed = rng_();
    auto ch = SubmitChat(*runtimes_.at(contestants_[idx].model), messages, cs);
    if (!ch.ok()) {
      error_ = ch.status().message();
      side->done = true;
      continue;
    }
    side->channel = *ch;
    side->done = false;
  }
  voted_ = false;
  vote_label_.clear();
}

void ArenaPanel::Poll() {
  for (Side* s : {&a_, &b_}) {
    if (s->done || !s->channel) continue;
    serve::StreamEvent ev;
    while (s->channel->Next(ev, std::chrono::milliseconds(0))) {
      s->text += ev.text;
      if (ev.finish_reason == "error") error_ = ev.error;
    }
    if (s->channel->done()) s->done = true;
  }
}

void ArenaPanel::Vote(const UiShared& shared, eval::Winner w, const char* label) {
  auto st = store::Store::Open(DbPath(shared));
  if (!st.ok()) {
    error_ = st.status().message();
    return;
  }
  int64_t ids[2];
  const Side* sides[2] = {&a_, &b_};
  for (int k = 0; k < 2; ++k) {
    const Contestant& c = contestants_[sides[k]->contestant];
    const nlohmann::json config = {{"model", c.model}, {"temperature", c.temperature}, {"max_tokens", 256}};
    auto id = (*st)->UpsertContestant(c.name, "local", std::nullopt, config.dump());
    if (!id.ok()) {
      error_ = id.status().message();
      return;
    }
    ids[k] = *id;
  }
  store::Store::BattleRow row;
  row.contestant_a = ids[0];
  row.contestant_b = ids[1];
  row.winner = w;
  row.source = "human";
  row.voter = "desktop";
  row.dedup_key = fmt::format("desktop-arena-{}-{:016x}",
                              std::chrono::system_clock::now().time_since_epoch().count(), rng_());
  auto b = (*st)->InsertBattle(row);
  if (!b.ok()) {
    error_ = b.status().message();
    return;
  }
  voted_ = true;
  vote_label_ = label;
  RefreshBoard(shared);
}

void ArenaPanel::RefreshBoard(const UiShared& shared) {
  const std::string db = DbPath(shared);
  board_requested_ = true;
  ++board_wanted_;
  if (board_job_.Running()) return;  // started again once this one is shown
  board_started_ = board_wanted_;
  board_job_.Start("rating", [db](const auto&) -> Result<eval::Leaderboard> {
    LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
    LMS_ASSIGN_OR_RETURN(eval::BattleSet set, st->LoadBattles(std::nullopt));
    if (set.battles().empty()) return eval::Leaderboard{};
    eval::LeaderboardOptions o;
    o.bootstrap.rounds = 200;
    o.bootstrap.seed = 1;
    return eval::ComputeLeaderboard(set, o);
  });
}

void ArenaPanel::Draw(UiShared& shared) {
  if (contestants_.empty() && !shared.selected_model.empty()) {
    // Named apart from the Evaluate panel's contestants: the record keeps one definition per name.
    contestants_.push_back({"arena-greedy", shared.selected_model, 0.0f});
    contestants_.push_back({"arena-warm", shared.selected_model, 0.8f});
    contestants_.push_back({"arena-hot", shared.selected_model, 1.3f});
  }
  if (auto r = load_.Take()) {
    if (r->ok()) {
      for (auto& rt : **r) runtimes_[rt->path] = rt;
    } else {
      error_ = r->status().message();
      pending_battle_ = false;
    }
  }
  if (auto r = board_job_.Take()) {
    board_have_ = board_started_;
    if (r->ok()) {
      board_ = std::move(**r);
    } else {
      error_ = r->status().message();
    }
  }
  if (!board_requested_) {
    RefreshBoard(shared);
  } else if (board_started_ < board_wanted_ && !board_job_.Running()) {
    --board_wanted_;  // RefreshBoard counts it again
    RefreshBoard(shared);
  }
  if (pending_battle_ && !load_.Running()) StartBattle(shared);
  Poll();
  const bool both_done = a_.done && b_.done;
  if (!script_vote_.empty() && !voted_ && both_done && a_.contestant >= 0) {
    const std::string v = script_vote_;
    Vote(shared, v == "a" ? eval::Winner::kLeft : v == "b" ? eval::Winner::kRight : v == "tie" ? eval::Winner::kTie : eval::Winner::kBothBad,
         v.c_str());
  }

  if (ImGui::CollapsingHeader("Contestants")) {
    EditContestants(contestants_, shared.selected_model, "arena-");
  }
  const bool fighting = !both_done || load_.Running();
  ImGui::SetNextItemWidth(-160);
  ImGui::BeginDisabled(fighting);
  ImGui::InputTextWithHint("##prompt", "A prompt for two anonymous models", &prompt_);
  ImGui::SameLine();
  if (ImGui::Button("New battle")) StartBattle(shared);
  ImGui::EndDisabled();
  if (load_.Running()) ImGui::TextDisabled("%s", load_.Status().c_str());
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());

  if (a_.contestant >= 0) {
    const float h = ImGui::GetContentRegionAvail().y * 0.5f;
    const float w = ImGui::GetContentRegionAvail().x * 0.5f - 4;
    const Side* sides[2] = {&a_, &b_};
    for (int k = 0; k < 2; ++k) {
      if (k) ImGui::SameLine();
      ImGui::BeginChild(k ? "B" : "A", ImVec2(w, h), true);
      const std::string title = voted_ ? fmt::format("Model {}: {}", k ? 'B' : 'A', contestants_[sides[k]->contestant].name)
                                       : fmt::format("Model {}", k ? 'B' : 'A');
      ImGui::TextColored(ImVec4(0.6f, 0.8f, 1, 1), "%s%s", title.c_str(), sides[k]->done ? "" : "  (writing...)");
      ImGui::Separator();
      ImGui::TextWrapped("%s", sides[k]->text.c_str());
      ImGui::EndChild();
    }
    ImGui::BeginDisabled(!both_done || voted_);
    if (ImGui::Button("A is better")) Vote(shared, eval::Winner::kLeft, "a");
    ImGui::SameLine();
    if (ImGui::Button("B is better")) Vote(shared, eval::Winner::kRight, "b");
    ImGui::SameLine();
    if (ImGui::Button("Tie")) Vote(shared, eval::Winner::kTie, "tie");
    ImGui::SameLine();
    if (ImGui::Button("Both bad")) Vote(shared, eval::Winner::kBothBad, "both_bad");
    ImGui::EndDisabled();
    if (voted_ && !vote_label_.empty()) {
      ImGui::SameLine();
      ImGui::Text("voted %s: A was %s, B was %s", vote_label_.c_str(), contestants_[a_.contestant].name.c_str(),
                  contestants_[b_.contestant].name.c_str());
    }
  }

  ImGui::Separator();
  if (board_ && !board_->rows.empty()) {
    double lo = 1e300, hi = -1e300;
    for (const auto& r : board_->rows) {
      lo = std::min(lo, r.bt_low);
      hi = std::max(hi, r.bt_high);
    }
    if (hi - lo < 1) hi = lo + 1;
    if (ImGui::BeginTable("board", 6, ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders)) {
      ImGui::TableSetupColumn("rank", ImGuiTableColumnFlags_WidthFixed, 40);
      ImGui::TableSetupColumn("model", ImGuiTableColumnFlags_WidthFixed, 160);
      ImGui::TableSetupColumn("battles", ImGuiTableColumnFlags_WidthFixed, 60);
      ImGui::TableSetupColumn("elo", ImGuiTableColumnFlags_WidthFixed, 60);
      ImGui::TableSetupColumn("bt [interval]", ImGuiTableColumnFlags_WidthFixed, 150);
      ImGui::TableSetupColumn("interval");
      ImGui::TableHeadersRow();
      for (const auto& r : board_->rows) {
        ImGui::TableNextRow();
        ImGui::TableSetColumnIndex(0);
        ImGui::Text("%d", r.rank);
        ImGui::TableSetColumnIndex(1);
        ImGui::TextUnformatted(r.model.c_str());
        ImGui::TableSetColumnIndex(2);
        ImGui::Text("%lld", static_cast<long long>(r.battles));
        ImGui::TableSetColumnIndex(3);
        ImGui::Text("%.0f", r.elo);
        ImGui::TableSetColumnIndex(4);
        ImGui::Text("%.0f [%.0f, %.0f]", r.bt, r.bt_low, r.bt_high);
        ImGui::TableSetColumnIndex(5);
        // The whisker: the bootstrap interval on a shared scale, a dot at the estimate.
        const ImVec2 p = ImGui::GetCursorScreenPos();
        const float width = ImGui::GetContentRegionAvail().x - 8, y = p.y + ImGui::GetTextLineHeight() * 0.5f;
        auto x = [&](double v) { return p.x + 4 + static_cast<float>((v - lo) / (hi - lo)) * width; };
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImU32 col = ImGui::GetColorU32(ImVec4(0.5f, 0.8f, 1, 1));
        dl->AddLine(ImVec2(x(r.bt_low), y), ImVec2(x(r.bt_high), y), col, 2);
        dl->AddLine(ImVec2(x(r.bt_low), y - 4), ImVec2(x(r.bt_low), y + 4), col, 2);
        dl->AddLine(ImVec2(x(r.bt_high), y - 4), ImVec2(x(r.bt_high), y + 4), col, 2);
        dl->AddCircleFilled(ImVec2(x(r.bt), y), 4, ImGui::GetColorU32(ImVec4(1, 0.8f, 0.3f, 1)));
        ImGui::Dummy(ImVec2(width, ImGui::GetTextLineHeight()));
      }
      ImGui::EndTable();
    }
  } else {
    ImGui::TextDisabled(board_job_.Running() ? "rating..." : "no battles in the record yet");
  }
}

nlohmann::json ArenaPanel::Report() const {
  nlohmann::json j;
  j["prompt"] = asked_;
  j["voted"] = voted_ && !vote_label_.empty();
  j["vote"] = vote_label_;
  if (a_.contestant >= 0) {
    j["a"] = {{"text", a_.text}, {"done", a_.done}};
    j["b"] = {{"text", b_.text}, {"done", b_.done}};
    if (voted_) {
      j["a"]["name"] = contestants_[a_.contestant].name;
      j["b"]["name"] = contestants_[b_.contestant].name;
    }
  }
  j["leaderboard"] = nlohmann::json::array();
  if (board_) {
    for (const auto& r : board_->rows) {
      j["leaderboard"].push_back({{"model", r.model}, {"battles", r.battles}, {"bt", r.bt}, {"bt_low", r.bt_low},
                                  {"bt_high", r.bt_high}, {"rank", r.rank}});
    }
  }
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
