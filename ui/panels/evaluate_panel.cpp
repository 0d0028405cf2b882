#include "ui/panels/evaluate_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <chrono>
#include <filesystem>

#include "app/assets_dir.h"
#include "core/store/store.h"

namespace lms::ui {
namespace {

namespace fs = std::filesystem;

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

EvaluatePanel::EvaluatePanel() {
  questions_ = (fs::path(app::AssetsDir()) / "eval" / "questions.jsonl").string();
}

EvaluatePanel::~EvaluatePanel() {
  if (runner_) runner_->Cancel();
  Join();
}

void EvaluatePanel::Join() {
  if (thread_.joinable()) thread_.join();
}

Result<app::BatchJob> EvaluatePanel::MakeJob(const UiShared& shared) const {
  if (contestants_.size() < 2) return Status::InvalidArgument("add at least two contestants");
  if (judge_model_.empty()) return Status::InvalidArgument("choose a judge model");
  if (!fs::is_regular_file(questions_)) return Status::NotFound("no question file at " + questions_);
  app::BatchJob job;
  job.file = "(desktop: Evaluate)";
  job.name = "evaluate";
  job.db = shared.db_path.empty() ? store::DefaultDatabasePath() : shared.db_path;
  // Step outputs and logs beside the database.
  job.workdir = (fs::absolute(fs::path(job.db)).parent_path() / "evaluate").string();
  std::string names;
  int index = 0;
  std::string text = fmt::format("name = \"evaluate\"\ndb = {}\n", TomlString(job.db));
  auto add = [&](app::BatchStep s) {
    s.index = ++index;
    text += fmt::format("\n[[step]]\nname = {}\nrun = {}\nargs = [", TomlString(s.name), TomlString(s.command));
    for (size_t i = 0; i < s.args.size(); ++i) text += (i ? ", " : "") + TomlString(s.args[i]);
    text += "]\n";
    job.steps.push_back(std::move(s));
  };
  for (const auto& c : contestants_) {
    if (c.name.empty() || c.model.empty()) return Status::InvalidArgument("every contestant needs a name and a model");
    if (c.name.find(',') != std::string::npos) return Status::InvalidArgument("contestant names cannot contain commas");
    names += (names.empty() ? "" : ",") + c.name;
    add({0, "answer " + c.name, "answer",
         {"--questions", questions_, "--contestant", c.name, "--model", c.model, "--temp", fmt::format("{}", c.temperature),
          "-n", std::to_string(max_tokens_), "--limit", std::to_string(limit_)}});
  }
  add({0, "judge", "judge",
       {"--questions", questions_, "--contestants", names, "--judge", "judge-" + fs::path(judge_model_).stem().string(),
        "--model", judge_model_, "--mode", "pairwise", "--verdict", verdict_logprob_ ? "logprob" : "text", "--limit",
        std::to_string(limit_)}});
  add({0, "leaderboard", "leaderboard", {"--from-db", "--bootstrap", "200", "--json"}});
  job.text = text;
  return job;
}

void EvaluatePanel::Start(const UiShared& shared) {
  auto job = MakeJob(shared);
  if (!job.ok()) {
    error_ = job.status().message();
    return;
  }
  error_.clear();
  Join();
  app::BatchOptions o;
  o.executable = app::SelfExecutable();
  o.echo_logs = false;
  runner_ = std::make_unique<app::BatchRunner>(std::move(*job), o);
  if (Status st = runner_->Validate(); !st.ok()) {
    error_ = st.message();
    runner_.reset();
    return;
  }
  summary_ = nullptr;
  running_ = true;
  started_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] {
    nlohmann::ordered_json s = runner_->Run();
    summary_ = std::move(s);
    running_ = false;
  });
}

void EvaluatePanel::Draw(UiShared& shared) {
  if (contestants_.empty() && !shared.selected_model.empty()) {
    contestants_.push_back({"greedy", shared.selected_model, 0.0f});
    contestants_.push_back({"hot", shared.selected_model, 1.2f});
    judge_model_ = shared.selected_model;
  }
  if (pending_start_ && !contestants_.empty()) {
    pending_start_ = false;
    Start(shared);
  }
  const bool running = running_.load();
  ImGui::BeginDisabled(running);
  ImGui::SetNextItemWidth(520);
  ImGui::InputText("questions (FastChat jsonl)", &questions_);
  ImGui::SetNextItemWidth(100);
  ImGui::InputInt("questions to use", &limit_);
  limit_ = std::clamp(limit_, 1, 10000);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(100);
  ImGui::InputInt("max tokens per answer", &max_tokens_);
  max_tokens_ = std::clamp(max_tokens_, 8, 4096);
  ImGui::TextUnformatted("Contestants");
  EditContestants(contestants_, shared.selected_model, "model-");
  ImGui::SetNextItemWidth(520);
  ImGui::InputText("judge model", &judge_model_);
  ImGui::SameLine();
  ImGui::Checkbox("forced-choice verdicts (next-token probabilities)", &verdict_logprob_);
  ImGui::EndDisabled();
  if (running) {
    if (ImGui::Button("Cancel")) runner_->Cancel();
  } else if (ImGui::Button("Run evaluation")) {
    Start(shared);
  }
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  ImGui::Separator();

  if (runner_) {
    const app::BatchSnapshot snap = runner_->Snapshot();
    int done = 0;
    for (const auto& s : snap.steps) done += s.status == "done";
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    // ETA from the steps finished so far (answer steps dominate and are alike).
    std::string eta = done > 0 && running ? fmt::format(", about {:.0f} s left", elapsed / done * (snap.total - done)) : "";
    ImGui::ProgressBar(snap.total ? static_cast<float>(done) / snap.total : 0.0f, ImVec2(-1, 0),
                       fmt::format("{}/{} steps, {:.0f} s{}", done, snap.total, running ? elapsed : summary_.value("seconds", elapsed), eta).c_str());
    if (ImGui::BeginTable("steps", 4, ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders)) {
      for (const char* h : {"step", "status", "seconds", "latest"}) ImGui::TableSetupColumn(h);
      ImGui::TableHeadersRow();
      for (size_t i = 0; i < snap.steps.size(); ++i) {
        const auto& s = snap.steps[i];
        ImGui::TableNextRow();
        ImGui::TableSetColumnIndex(0);
        ImGui::TextUnformatted(runner_->job().steps[i].name.c_str());
        ImGui::TableSetColumnIndex(1);
        const bool bad = s.status == "failed" || s.status == "cancelled";
        ImGui::TextColored(bad ? ImVec4(1, 0.5f, 0.4f, 1) : ImVec4(0.8f, 0.9f, 0.8f, 1), "%s", s.status.c_str());
        ImGui::TableSetColumnIndex(2);
        if (s.seconds > 0) ImGui::Text("%.1f", s.seconds);
        ImGui::TableSetColumnIndex(3);
        ImGui::TextUnformatted(s.last_line.c_str());
      }
      ImGui::EndTable();
    }
  }
  if (!running && summary_.is_object()) {
    const auto& steps = summary_["steps"];
    const auto& last = steps.empty() ? nlohmann::ordered_json() : steps.back();
    if (last.contains("output") && last["output"].is_array()) {
      ImGui::TextUnformatted("Leaderboard (Bradley-Terry on the Elo scale, 95% bootstrap interval)");
      if (ImGui::BeginTable("board", 6, ImGuiTableFlags_RowBg | ImGuiTableFlags_Borders)) {
        for (const char* h : {"rank", "model", "battles", "elo", "bt", "interval"}) ImGui::TableSetupColumn(h);
        ImGui::TableHeadersRow();
        for (const auto& m : last["output"]) {
          ImGui::TableNextRow();
          ImGui::TableSetColumnIndex(0);
          ImGui::Text("%d", m.value("rank", 0));
          ImGui::TableSetColumnIndex(1);
          ImGui::TextUnformatted(m.value("model", "").c_str());
          ImGui::TableSetColumnIndex(2);
          ImGui::Text("%d", m.value("battles", 0));
          ImGui::TableSetColumnIndex(3);
          ImGui::Text("%.0f", m.value("elo", 0.0));
          ImGui::TableSetColumnIndex(4);
          ImGui::Text("%.0f", m.value("bt", 0.0));
          ImGui::TableSetColumnIndex(5);
          ImGui::Text("%.0f .. %.0f", m.value("bt_low", 0.0), m.value("bt_high", 0.0));
        }
        ImGui::EndTable();
      }
    } else if (summary_.value("status", "") != "done") {
      const auto& f = summary_["failed_step"];
      ImGui::TextColored(ImVec4(1, 0.5f, 0.4f, 1), "%s",
                         f.is_object() ? fmt::format("step {} ({}) failed; its log: {}", f.value("index", 0), f.value("name", ""),
                                                     f.value("log_file", "")).c_str()
                                       : summary_.value("status", "").c_str());
    }
  }
}

nlohmann::json EvaluatePanel::Report() const {
  nlohmann::json j;
  j["questions"] = questions_;
  j["contestants"] = nlohmann::json::array();
  for (const auto& c : contestants_) j["contestants"].push_back({{"name", c.name}, {"model", c.model}, {"temperature", c.temperature}});
  j["judge"] = judge_model_;
  j["running"] = running_.load();
  if (!running_.load() && summary_.is_object()) j["summary"] = nlohmann::json::parse(summary_.dump());
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
