// The record: one SQLite file with every model, run, metric, question, answer, judgment, battle
// and rating snapshot, linked so that a rating can be walked back to the battles, judgments,
// answers, contestants and model files behind it.
//
// The file is opened in WAL mode with foreign keys on; the schema version lives in
// `PRAGMA user_version` and Open() applies any missing migrations in one transaction each.
// Writers that make jobs resumable rely on UNIQUE keys: re-inserting an answer, judgment or
// battle that is already there changes nothing (INSERT … ON CONFLICT DO NOTHING), so rerunning an
// interrupted job continues where it stopped without duplicates.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/eval/battles.h"
#include "core/store/sqlite_db.h"
#include "core/util/status.h"

namespace lms::store {

// $XDG_DATA_HOME/lmstation/lmstation.db, else ~/.local/share/lmstation/lmstation.db.
std::string DefaultDatabasePath();

// Latest schema version written by this build.
int SchemaVersion();

// Tables that `lmstation db export` may dump.
const std::vector<std::string>& ExportableTables();

struct RunInfo {
  int64_t id = 0;
  std::string kind, name, config, status, started_at, finished_at, version;
};

// One turn of a conversation saved from the Chat panel (table chat_turns, run kind "chat").
struct ChatTurn {
  int turn = 0;  // 0-based order
  std::string role, content;  // role: system, user or assistant
  std::optional<int64_t> tokens;  // generated tokens (assistant turns)
};

class Store {
 public:
  // Creates parent directories and the file when missing, then migrates.
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  Database& db() { return *db_; }
  int user_version();

  // Models by content: the same file (SHA-256) at the same path is one row.
  Result<int64_t> UpsertModel(const std::string& path, const std::string& sha256, const std::string& metadata_json);

  // A run is identified by (kind, config): starting the same job again returns the same run
  // (resumed = true) so it can skip the work already recorded.
  struct RunHandle {
    int64_t id = 0;
    bool resumed = false;
  };
  Result<RunHandle> StartRun(const std::string& kind, const std::string& name, const std::string& config_json);
  Status FinishRun(int64_t run_id, const std::string& status);  // "done", "failed", …
  Result<std::vector<RunInfo>> ListRuns();
  Status AddMetric(int64_t run_id, int64_t step, const std::string& name, double value);
  // Turns are keyed by (run, turn): saving a turn again changes nothing.
  Status AddChatTurn(int64_t run_id, const ChatTurn& turn);
  Result<std::vector<ChatTurn>> ListChatTurns(int64_t run_id);

  // Question sets: `questions_json` rows keep FastChat's fields (turns, reference).
  Result<int64_t> UpsertQuestionSet(const std::string& name, const std::string& source, const std::string& sha256);
  Result<int64_t> UpsertQuestion(int64_t set_id, const std::string& question_id, const std::string& category,
                                 const std::string& turns_json, const std::string& reference_json);

  // Contestants by name; `config_json` holds sampling settings, system prompt, endpoint…
  Result<int64_t> UpsertContestant(const std::string& name, const std::string& kind, std::optional<int64_t> model_id,
                                   const std::string& config_json);
  Result<std::optional<int64_t>> FindContestant(const std::string& name);

  struct Answer {
    int64_t run_id = 0, contestant_id = 0, question_row = 0;
    int turn = 1;
    std::string text;
    int64_t tokens = 0;
    double latency_ms = 0;
  };
  // Returns the row id, or the existing row's id when this (contestant, question, turn) exists.
  Result<int64_t> InsertAnswer(const Answer& a);
  Result<std::optional<std::string>> FindAnswer(int64_t contestant_id, int64_t question_row, int turn);

  struct Judgment {
    int64_t run_id = 0, judge_id = 0, question_row = 0;
    std::string mode;         // single | pairwise | pairwise-baseline | reference
    std::string prompt_name;  // judge prompt used
    int turn = 1;
    int64_t answer_a = 0;              // first answer shown (the graded one in single mode)
    std::optional<int64_t> answer_b;   // second answer shown (pairwise)
    std::string raw_output;
    std::optional<std::string> verdict;  // "A" | "B" | "tie" (pairwise)
    std::optional<double> score;         // 1–10 (single)
    bool parsed = false;                 // false: kept, counted, never dropped
    std::string method = "text";         // text | logprob (forced choice) | import
    std::optional<std::string> probabilities;  // logprob: JSON {"A": p, "B": p, "C": p} or {"1": p, …}
    std::optional<std::string> user_prompt;    // the filled prompt template the judge was shown
  };
  Result<int64_t> InsertJudgment(const Judgment& j);

  struct BattleRow {
    std::optional<int64_t> run_id;
    std::optional<int64_t> question_row;
    int64_t contestant_a = 0, contestant_b = 0;
    eval::Winner winner = eval::Winner::kTie;
    std::string source;  // human | judge | import
    std::string voter;
    std::optional<int64_t> judgment_1, judgment_2;  // the two orders a judge saw
    std::string dedup_key;  // unique per source event (resumable imports and arenas)
  };
  Result<int64_t> InsertBattle(const BattleRow& b);
  // Battles (optionally of one run) as a BattleSet, with their row ids in order.
  Result<eval::BattleSet> LoadBattles(std::optional<int64_t> run_id, std::vector<int64_t>* battle_ids = nullptr);

  struct RatingEntry {
    std::string contestant;
    int64_t battles = 0;
    double elo = 0, bt = 0, bt_low = 0, bt_high = 0;
    int rank = 0;
  };
  // A snapshot with the battles it was computed from (lineage).
  Result<int64_t> SaveRating(std::optional<int64_t> run_id, const std::string& method_json, const std::vector<RatingEntry>& entries,
                             const std::vector<int64_t>& battle_ids);

  // The whole table, for export. Errors name tables not in ExportableTables().
  Result<Table> ExportTable(const std::string& table);

 private:
  explicit Store(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  Status Migrate();
  std::unique_ptr<Database> db_;
};

std::string TableToCsv(const Table& t);
std::string TableToJson(const Table& t);  // array of objects, numbers as numbers, NULL as null

}  // namespace lms::store
