#include "app/db_fastchat.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/contestant_setup.h"
#include "core/eval/fastchat_judgments.h"
#include "core/eval/jobs.h"
#include "core/util/sha256.h"

namespace lms::app {

void AddFastChatDbSubcommands(CLI::App* db, FastChatDbOptions* o) {
  o->import_cmd = db->add_subcommand("import-judgments", "Import FastChat judgments (model_judgment/*_single.jsonl, *_pair.jsonl); pairs become battles");
  o->import_cmd->add_option("file", o->file, "FastChat judgment jsonl")->required();
  o->import_cmd->add_option("--questions", o->questions, "The question file the judgments are about (FastChat question.jsonl)")->required();
  o->import_cmd->add_option("--answers", o->answers, "FastChat model_answer jsonl of a judged model, [NAME=]FILE (default NAME: the file's stem, as FastChat names models); repeatable, imported first");
  o->export_cmd = db->add_subcommand("export-judgments", "Write a judge's recorded judgments as FastChat judgment jsonl");
  o->export_cmd->add_option("--judge", o->judge, "Judge contestant name")->required();
  o->export_cmd->add_option("--mode", o->mode, "pairwise (FastChat's _pair.jsonl) or single (_single.jsonl)")->check(CLI::IsMember({"pairwise", "single"}));
  o->export_cmd->add_option("-o,--output", o->out, "Write to this file instead of stdout");
}

int RunFastChatDbSubcommand(store::Store& st, const FastChatDbOptions& o) {
  if (o.export_cmd->parsed()) {
    auto text = eval::ExportFastChatJudgments(st, o.judge, o.mode);
    if (!text.ok()) return Fail(text.status());
    if (o.out.empty()) {
      std::fwrite(text->data(), 1, text->size(), stdout);
      return 0;
    }
    std::ofstream f(o.out, std::ios::binary);
    f << *text;
    if (!f) return Fail(Status::IoError(fmt::format("cannot write '{}'", o.out)));
    return 0;
  }
  if (!o.import_cmd->parsed()) return -1;
  auto questions = eval::LoadQuestions(o.questions);
  if (!questions.ok()) return Fail(questions.status());
  auto qsha = Sha256File(o.questions);
  if (!qsha.ok()) return Fail(qsha.status());
  auto rows = eval::RecordQuestions(st, QuestionSetName(o.questions, *qsha), o.questions, *qsha, *questions);
  if (!rows.ok()) return Fail(rows.status());
  for (const auto& arg : o.answers) {
    // NAME=FILE, or FILE named model_answer/<NAME>.jsonl as FastChat lays them out.
    const size_t eq = arg.find('=');
    const bool named = eq != std::string::npos && arg.substr(0, eq).find('/') == std::string::npos;
    const std::string path = named ? arg.substr(eq + 1) : arg;
    const std::string model = named ? arg.substr(0, eq) : std::filesystem::path(path).stem().string();
    auto sha = Sha256File(path);
    if (!sha.ok()) return Fail(sha.status());
    auto run = st.StartRun("import", path, nlohmann::json({{"sha256", *sha}, {"format", "fastchat-model-answer"}, {"model", model}}).dump());
    if (!run.ok()) return Fail(run.status());
    auto stats = eval::ImportFastChatAnswers(st, run->id, *questions, *rows, path, model);
    if (!stats.ok()) return Fail(stats.status());
    (void)st.FinishRun(run->id, "done");
    std::printf("%s: %lld answer turns of %s, %lld lines about other questions skipped\n", path.c_str(), static_cast<long long>(stats->answers), model.c_str(),
                static_cast<long long>(stats->skipped));
  }
  auto sha = Sha256File(o.file);
  if (!sha.ok()) return Fail(sha.status());
  auto run = st.StartRun("import", o.file, nlohmann::json({{"sha256", *sha}, {"format", "fastchat-judgment"}}).dump());
  if (!run.ok()) return Fail(run.status());
  auto stats = eval::ImportFastChatJudgments(st, run->id, *questions, *rows, o.file, *sha);
  if (!stats.ok()) return Fail(stats.status());
  (void)st.FinishRun(run->id, "done");
  std::printf("run %lld: %lld judgments (%lld unparseable, kept), %lld battles (%lld inconsistent pairs as ties), %lld lines skipped "
              "(question or answer not in the record)\n",
              static_cast<long long>(run->id), static_cast<long long>(stats->judgments), static_cast<long long>(stats->unparseable),
              static_cast<long long>(stats->battles), static_cast<long long>(stats->inconsistent), static_cast<long long>(stats->skipped));
  return 0;
}

}  // namespace lms::app
