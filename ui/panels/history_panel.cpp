#include "ui/panels/history_panel.h"

#include <fmt/format.h>
#include <imgui.h>

#include <algorithm>

namespace lms::ui {

namespace {

const ImVec4 kBad(1, 0.5f, 0.4f, 1), kGood(0.7f, 1, 0.7f, 1), kDiff(1, 0.85f, 0.3f, 1);

}  // namespace

void HistoryPanel::Draw(UiShared& shared) {
  if (auto r = load_.Take()) {
    loaded_once_ = true;
    if (r->ok()) {
      runs_ = std::move((*r)->runs);
      chats_ = std::move((*r)->chats);
      std::sort(runs_.begin(), runs_.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
      error_.clear();
      if (script_) {
        Select(script_->first);
        compare_id_ = script_->second;
        script_.reset();
      } else if (!selected_id_ && !runs_.empty()) {
        Select(runs_.front().id);
      }
    } else {
      error_ = r->status().message();
    }
  }
  if (auto d = detail_.Take()) {
    if (d->ok()) {
      shown_ = std::move(**d);
    } else {
      shown_.reset();
      error_ = d->status().message();
    }
  }
  db_ = shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
  if (!started_ || (ImGui::Button("Refresh") && !load_.Running())) {
    started_ = true;
    load_.Start("reading " + db_, [db = db_](const auto&) -> Result<Loaded> {
      LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
      Loaded out;
      LMS_ASSIGN_OR_RETURN(out.runs, st->ListRuns());
      for (const auto& r : out.runs) {
        if (r.kind != "chat") continue;
        LMS_ASSIGN_OR_RETURN(out.chats[r.id], st->ListChatTurns(r.id));
      }
      return out;
    });
    if (selected_id_) pending_detail_ = true;
  }
  // The selected run's lineage (and the comparison) load once the previous read is done.
  if (pending_detail_ && selected_id_ && !detail_.Running()) {
    pending_detail_ = false;
    const int64_t id = *selected_id_;
    const std::optional<int64_t> other = compare_id_ && *compare_id_ != id ? compare_id_ : std::nullopt;
    detail_.Start(fmt::format("reading run {}", id), [db = db_, id, other](const auto&) -> Result<Detail> {
      LMS_ASSIGN_OR_RETURN(auto st, store::Store::Open(db));
      Detail d;
      LMS_ASSIGN_OR_RETURN(d.lineage, store::LoadRunLineage(*st, id));
      if (other) {
        LMS_ASSIGN_OR_RETURN(d.comparison, store::CompareRuns(*st, id, *other));
      }
      return d;
    });
  }
  ImGui::SameLine();
  ImGui::Text("%s: %zu runs", db_.c_str(), runs_.size());
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  DrawRunsTable();
  DrawDetail();
}

void HistoryPanel::DrawRunsTable() {
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders | ImGuiTableFlags_ScrollY | ImGuiTableFlags_Resizable;
  if (!ImGui::BeginTable("runs", 7, flags, ImVec2(0, ImGui::GetContentRegionAvail().y * 0.4f))) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  for (const char* h : {"id", "cmp", "kind", "name", "status", "started", "finished"}) ImGui::TableSetupColumn(h);
  ImGui::TableHeadersRow();
  for (const auto& r : runs_) {
    ImGui::PushID(static_cast<int>(r.id));
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    if (ImGui::Selectable(std::to_string(r.id).c_str(), selected_id_ == r.id)) Select(r.id);
    ImGui::TableSetColumnIndex(1);
    bool cmp = compare_id_ == r.id;
    if (ImGui::Checkbox("##cmp", &cmp)) {
      compare_id_ = cmp ? std::optional<int64_t>(r.id) : std::nullopt;
      pending_detail_ = selected_id_.has_value();
    }
    ImGui::TableSetColumnIndex(2);
    ImGui::TextUnformatted(r.kind.c_str());
    ImGui::TableSetColumnIndex(3);
    ImGui::TextUnformatted(r.name.c_str());
    ImGui::TableSetColumnIndex(4);
    const bool bad = r.status == "failed" || r.status == "cancelled";
    ImGui::TextColored(bad ? kBad : kGood, "%s", r.status.c_str());
    ImGui::TableSetColumnIndex(5);
    ImGui::TextUnformatted(r.started_at.c_str());
    ImGui::TableSetColumnIndex(6);
    ImGui::TextUnformatted(r.finished_at.c_str());
    ImGui::PopID();
  }
  ImGui::EndTable();
}

void HistoryPanel::DrawDetail() {
  if (!shown_) return;
  const store::RunLineage& l = shown_->lineage;
  ImGui::BeginChild("detail", ImVec2(0, 0), true);
  ImGui::Text("run %lld (%s) %s", static_cast<long long>(l.run.id), l.run.kind.c_str(), l.run.name.c_str());
  if (!shown_->comparison.empty()) {
    ImGui::Text("compared with run %lld (differences highlighted)", static_cast<long long>(compare_id_.value_or(0)));
    if (ImGui::BeginTable("compare", 3, ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders | ImGuiTableFlags_Resizable)) {
      for (const char* h : {"", "this run", "the other"}) ImGui::TableSetupColumn(h);
      ImGui::TableHeadersRow();
      for (const auto& row : shown_->comparison) {
        ImGui::TableNextRow();
        const ImVec4 c = row.differs() ? kDiff : ImGui::GetStyle().Colors[ImGuiCol_Text];
        ImGui::TableSetColumnIndex(0);
        ImGui::TextColored(c, "%s", row.what.c_str());
        ImGui::TableSetColumnIndex(1);
        ImGui::TextColored(c, "%s", row.a.c_str());
        ImGui::TableSetColumnIndex(2);
        ImGui::TextColored(c, "%s", row.b.c_str());
      }
      ImGui::EndTable();
    }
  }
  if (ImGui::CollapsingHeader("Lineage", ImGuiTreeNodeFlags_DefaultOpen)) {
    std::string wrote;
    for (const auto& [what, n] : l.produced) wrote += fmt::format("{}{} {}", wrote.empty() ? "" : ", ", n, what);
    ImGui::Text("wrote: %s", wrote.empty() ? "nothing yet" : wrote.c_str());
    for (const auto& [name, v] : l.last_metrics) ImGui::BulletText("%s = %.6g (latest step)", name.c_str(), v);
    auto links = [this](const char* label, const std::vector<store::RunInfo>& runs) {
      ImGui::TextUnformatted(label);
      if (runs.empty()) {
        ImGui::SameLine();
        ImGui::TextDisabled("none");
      }
      for (const auto& r : runs) {
        ImGui::PushID(static_cast<int>(r.id));
        if (ImGui::SmallButton(fmt::format("run {} ({}) {}", r.id, r.kind, r.name).c_str())) Select(r.id);
        ImGui::PopID();
      }
    };
    links("used the records of:", l.upstream);
    links("its records were used by:", l.downstream);
    for (const auto& m : l.models) {
      ImGui::BulletText("%s %s: %s%s", m.contestant.c_str(), m.role.c_str(), m.model_path.empty() ? "(endpoint)" : m.model_path.c_str(),
                        m.sha256.empty() ? "" : fmt::format(" (sha256 {}…)", m.sha256.substr(0, 12)).c_str());
    }
  }
  if (ImGui::CollapsingHeader("Configuration")) ImGui::TextWrapped("%s", l.run.config.c_str());
  if (auto chat = chats_.find(l.run.id); chat != chats_.end()) {
    ImGui::Separator();
    ImGui::Text("conversation (%zu turns):", chat->second.size());
    for (const auto& t : chat->second) {
      const bool user = t.role == "user";
      ImGui::TextColored(user ? ImVec4(0.5f, 0.8f, 1, 1) : ImVec4(0.6f, 1, 0.6f, 1), "%s", t.role.c_str());
      ImGui::TextWrapped("%s", t.content.c_str());
    }
  }
  ImGui::EndChild();
}

nlohmann::json HistoryPanel::Report() const {
  nlohmann::json j;
  j["runs"] = nlohmann::json::array();
  for (const auto& r : runs_) {
    nlohmann::json row = {{"id", r.id}, {"kind", r.kind}, {"name", r.name}, {"status", r.status}};
    if (auto c = chats_.find(r.id); c != chats_.end()) {
      row["turns"] = nlohmann::json::array();
      for (const auto& t : c->second) row["turns"].push_back({{"role", t.role}, {"content", t.content}});
    }
    j["runs"].push_back(std::move(row));
  }
  if (selected_id_) j["selected"] = *selected_id_;
  if (shown_) {
    const store::RunLineage& l = shown_->lineage;
    nlohmann::json s = {{"id", l.run.id}, {"upstream", nlohmann::json::array()}, {"downstream", nlohmann::json::array()},
                        {"produced", nlohmann::json::object()}, {"models", nlohmann::json::array()}};
    for (const auto& r : l.upstream) s["upstream"].push_back(r.id);
    for (const auto& r : l.downstream) s["downstream"].push_back(r.id);
    for (const auto& [what, n] : l.produced) s["produced"][what] = n;
    for (const auto& m : l.models) s["models"].push_back({{"contestant", m.contestant}, {"role", m.role}, {"path", m.model_path}});
    j["lineage"] = s;
    if (!shown_->comparison.empty()) {
      nlohmann::json c = nlohmann::json::array();
      for (const auto& row : shown_->comparison) c.push_back({{"what", row.what}, {"a", row.a}, {"b", row.b}, {"differs", row.differs()}});
      j["comparison"] = c;
    }
  }
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
