#include "core/store/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace lms::store {

namespace {

// Migration i brings the schema from user_version i to i + 1. Never edit a shipped migration:
// append a new one.
const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> m = {
      R"sql(
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  metadata TEXT NOT NULL DEFAULT '{}',      -- JSON: architecture, parameters, quantisation…
  added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  UNIQUE (sha256, path)
);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,                       -- answer | judge | arena | leaderboard | import | train…
  name TEXT NOT NULL DEFAULT '',
  config TEXT NOT NULL,                     -- JSON; (kind, config) identifies a resumable job
  status TEXT NOT NULL DEFAULT 'running',
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  finished_at TEXT,
  version TEXT NOT NULL,
  UNIQUE (kind, config)
);
CREATE TABLE metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (run_id, step, name)
);
CREATE TABLE question_sets (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL DEFAULT '',
  sha256 TEXT NOT NULL DEFAULT ''
);
CREATE TABLE questions (
  id INTEGER PRIMARY KEY,
  set_id INTEGER NOT NULL REFERENCES question_sets(id) ON DELETE CASCADE,
  question_id TEXT NOT NULL,                -- the set's own id (FastChat question_id)
  category TEXT NOT NULL DEFAULT '',
  turns TEXT NOT NULL,                      -- JSON array of user turns
  reference TEXT NOT NULL DEFAULT '[]',     -- JSON array of reference answers
  UNIQUE (set_id, question_id)
);
CREATE TABLE contestants (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('local', 'endpoint', 'external')),
  model_id INTEGER REFERENCES models(id),
  config TEXT NOT NULL DEFAULT '{}'         -- JSON: sampling, system prompt, endpoint URL…
);
CREATE TABLE answers (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  contestant_id INTEGER NOT NULL REFERENCES contestants(id),
  question_id INTEGER NOT NULL REFERENCES questions(id),
  turn INTEGER NOT NULL CHECK (turn >= 1),
  text TEXT NOT NULL,
  tokens INTEGER NOT NULL DEFAULT 0,
  latency_ms REAL NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  UNIQUE (contestant_id, question_id, turn)
);
CREATE TABLE judgments (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  judge_id INTEGER NOT NULL REFERENCES contestants(id),
  question_id INTEGER NOT NULL REFERENCES questions(id),
  mode TEXT NOT NULL,
  prompt_name TEXT NOT NULL,
  turn INTEGER NOT NULL,
  answer_a INTEGER NOT NULL REFERENCES answers(id),
  answer_b INTEGER REFERENCES answers(id),
  raw_output TEXT NOT NULL,
  verdict TEXT CHECK (verdict IN ('A', 'B', 'tie')),
  score REAL,
  parsed INTEGER NOT NULL,                  -- 0: unparseable output, kept and counted
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  UNIQUE (judge_id, prompt_name, turn, answer_a, answer_b)
);
CREATE TABLE battles (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  question_id INTEGER REFERENCES questions(id),
  contestant_a INTEGER NOT NULL REFERENCES contestants(id),
  contestant_b INTEGER NOT NULL REFERENCES contestants(id),
  winner TEXT NOT NULL CHECK (winner IN ('left', 'right', 'tie', 'both_bad')),
  source TEXT NOT NULL CHECK (source IN ('human', 'judge', 'import')),
  voter TEXT NOT NULL DEFAULT '',
  judgment_1 INTEGER REFERENCES judgments(id),
  judgment_2 INTEGER REFERENCES judgments(id),
  dedup_key TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  CHECK (contestant_a != contestant_b)
);
CREATE TABLE ratings (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id),
  method TEXT NOT NULL,                     -- JSON: Elo and BT settings, bootstrap rounds and seed
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE rating_entries (
  rating_id INTEGER NOT NULL REFERENCES ratings(id) ON DELETE CASCADE,
  contestant_id INTEGER NOT NULL REFERENCES contestants(id),
  battles INTEGER NOT NULL,
  elo REAL NOT NULL,
  bt REAL NOT NULL,
  bt_low REAL NOT NULL,
  bt_high REAL NOT NULL,
  rank INTEGER NOT NULL,
  PRIMARY KEY (rating_id, contestant_id)
);
CREATE TABLE rating_battles (               -- lineage: the battles a snapshot was computed from
  rating_id INTEGER NOT NULL REFERENCES ratings(id) ON DELETE CASCADE,
  battle_id INTEGER NOT NULL REFERENCES battles(id),
  PRIMARY KEY (rating_id, battle_id)
);
CREATE INDEX answers_by_question ON answers(question_id);
CREATE INDEX battles_by_run ON battles(run_id);
)sql",
      // 1 -> 2: how a judgment's verdict was obtained: "text" (generated, parsed as FastChat
      // does), "logprob" (forced choice by next-token probabilities, kept as JSON) or "import"
      // (FastChat judgment files); and the prompt the judge was shown (FastChat exports it).
      R"sql(
ALTER TABLE judgments ADD COLUMN method TEXT NOT NULL DEFAULT 'text' CHECK (method IN ('text', 'logprob', 'import'));
ALTER TABLE judgments ADD COLUMN probabilities TEXT;
ALTER TABLE judgments ADD COLUMN user_prompt TEXT;
)sql",
      // 2 -> 3: conversations from the desktop app's Chat panel: a run of kind "chat" (its config
      // names the model, system prompt and sampling) and its turns in order.
      R"sql(
CREATE TABLE chat_turns (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  turn INTEGER NOT NULL,                    -- 0, 1, … in conversation order
  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content TEXT NOT NULL,
  tokens INTEGER,                           -- generated tokens (assistant turns)
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY (run_id, turn)
);
)sql",
  };
  return m;
}

constexpr const char* kVersion = "lmstation 0.1.0";

}  // namespace

std::string DefaultDatabasePath() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  std::string base;
  if (xdg && *xdg) base = xdg;
  else {
    const char* home = std::getenv("HOME");
    base = std::string(home && *home ? home : ".") + "/.local/share";
  }
  return base + "/lmstation/lmstation.db";
}

int SchemaVersion() { return static_cast<int>(Migrations().size()); }

const std::vector<std::string>& ExportableTables() {
  static const std::vector<std::string> t = {"models", "runs", "metrics", "question_sets", "questions", "contestants", "answers",
                                             "judgments", "battles", "ratings", "rating_entries", "rating_battles", "chat_turns"};
  return t;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  if (path != ":memory:") {
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return Status::IoError(fmt::format("cannot create directory '{}': {}", parent.string(), ec.message()));
  }
  LMS_ASSIGN_OR_RETURN(auto db, Database::Open(path));
  // WAL: readers (the GUI, `sqlite3`) never block the job writing; NORMAL sync is durable across
  // a killed process (only an OS crash may lose the last transactions).
  LMS_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  std::unique_ptr<Store> s(new Store(std::move(db)));
  LMS_RETURN_IF_ERROR(s->Migrate().WithContext(path));
  return s;
}

int Store::user_version() {
  auto t = db_->Query("PRAGMA user_version");
  if (!t.ok() || t->rows.empty()) return -1;
  return static_cast<int>(std::get<int64_t>(t->rows[0][0]));
}

Status Store::Migrate() {
  const int have = user_version();
  const int want = SchemaVersion();
  if (have > want) {
    return Status::Unsupported(fmt::format("database schema version {} is newer than this lmstation understands ({})", have, want));
  }
  for (int v = have; v < want; ++v) {
    LMS_RETURN_IF_ERROR(db_->Transaction([&]() -> Status {
      // Another process opening the same new file may have migrated it while this one waited
      // for the write lock: the version read under the lock decides.
      if (user_version() > v) return Status::Ok();
      LMS_RETURN_IF_ERROR(db_->Exec(Migrations()[v]));
      return db_->Exec(fmt::format("PRAGMA user_version = {}", v + 1));
    }));
  }
  return Status::Ok();
}

namespace {

// INSERT … ON CONFLICT DO NOTHING, then the id of the row holding the unique key.
Result<int64_t> InsertOrFind(Database& db, Statement& insert, Statement& find) {
  LMS_RETURN_IF_ERROR(insert.Run());
  LMS_ASSIGN_OR_RETURN(bool row, find.Step());
  if (!row) return Status::Internal("row vanished after insert");
  return find.Int(0);
  (void)db;
}

}  // namespace

Result<int64_t> Store::UpsertModel(const std::string& path, const std::string& sha256, const std::string& metadata_json) {
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO models(path, sha256, metadata) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING"));
  ins.Bind(1, path).Bind(2, sha256).Bind(3, metadata_json);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM models WHERE sha256 = ?1 AND path = ?2"));
  find.Bind(1, sha256).Bind(2, path);
  return InsertOrFind(*db_, ins, find);
}

Result<Store::RunHandle> Store::StartRun(const std::string& kind, const std::string& name, const std::string& config_json) {
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM runs WHERE kind = ?1 AND config = ?2"));
  find.Bind(1, kind).Bind(2, config_json);
  LMS_ASSIGN_OR_RETURN(bool found, find.Step());
  if (found) {
    RunHandle h{find.Int(0), true};
    LMS_ASSIGN_OR_RETURN(Statement upd, db_->Prepare("UPDATE runs SET status = 'running', finished_at = NULL, version = ?2 WHERE id = ?1"));
    upd.Bind(1, h.id).Bind(2, kVersion);
    LMS_RETURN_IF_ERROR(upd.Run());
    return h;
  }
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO runs(kind, name, config, version) VALUES(?1, ?2, ?3, ?4)"));
  ins.Bind(1, kind).Bind(2, name).Bind(3, config_json).Bind(4, kVersion);
  LMS_RETURN_IF_ERROR(ins.Run());
  return RunHandle{db_->LastInsertId(), false};
}

Status Store::FinishRun(int64_t run_id, const std::string& status) {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare("UPDATE runs SET status = ?2, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1"));
  st.Bind(1, run_id).Bind(2, status);
  return st.Run();
}

Result<std::vector<RunInfo>> Store::ListRuns() {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare("SELECT id, kind, name, config, status, started_at, IFNULL(finished_at, ''), version FROM runs ORDER BY id"));
  std::vector<RunInfo> out;
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(RunInfo{st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Text(5), st.Text(6), st.Text(7)});
  }
  return out;
}

Status Store::AddMetric(int64_t run_id, int64_t step, const std::string& name, double value) {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare("INSERT INTO metrics(run_id, step, name, value) VALUES(?1, ?2, ?3, ?4) "
                                                  "ON CONFLICT(run_id, step, name) DO UPDATE SET value = excluded.value"));
  st.Bind(1, run_id).Bind(2, step).Bind(3, name).Bind(4, value);
  return st.Run();
}

Status Store::AddChatTurn(int64_t run_id, const ChatTurn& t) {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare("INSERT INTO chat_turns(run_id, turn, role, content, tokens) VALUES(?1, ?2, ?3, ?4, ?5) "
                                                  "ON CONFLICT(run_id, turn) DO NOTHING"));
  st.Bind(1, run_id).Bind(2, t.turn).Bind(3, t.role).Bind(4, t.content).Bind(5, t.tokens);
  return st.Run();
}

Result<std::vector<ChatTurn>> Store::ListChatTurns(int64_t run_id) {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare("SELECT turn, role, content, tokens FROM chat_turns WHERE run_id = ?1 ORDER BY turn"));
  st.Bind(1, run_id);
  std::vector<ChatTurn> out;
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ChatTurn t;
    t.turn = static_cast<int>(st.Int(0));
    t.role = st.Text(1);
    t.content = st.Text(2);
    if (!st.IsNull(3)) t.tokens = st.Int(3);
    out.push_back(std::move(t));
  }
  return out;
}

Result<int64_t> Store::UpsertQuestionSet(const std::string& name, const std::string& source, const std::string& sha256) {
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO question_sets(name, source, sha256) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING"));
  ins.Bind(1, name).Bind(2, source).Bind(3, sha256);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM question_sets WHERE name = ?1"));
  find.Bind(1, name);
  return InsertOrFind(*db_, ins, find);
}

Result<int64_t> Store::UpsertQuestion(int64_t set_id, const std::string& question_id, const std::string& category,
                                      const std::string& turns_json, const std::string& reference_json) {
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO questions(set_id, question_id, category, turns, reference) "
                                                   "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"));
  ins.Bind(1, set_id).Bind(2, question_id).Bind(3, category).Bind(4, turns_json).Bind(5, reference_json);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM questions WHERE set_id = ?1 AND question_id = ?2"));
  find.Bind(1, set_id).Bind(2, question_id);
  return InsertOrFind(*db_, ins, find);
}

Result<int64_t> Store::UpsertContestant(const std::string& name, const std::string& kind, std::optional<int64_t> model_id,
                                        const std::string& config_json) {
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO contestants(name, kind, model_id, config) VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"));
  ins.Bind(1, name).Bind(2, kind).Bind(3, model_id).Bind(4, config_json);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id, kind, config FROM contestants WHERE name = ?1"));
  find.Bind(1, name);
  LMS_RETURN_IF_ERROR(ins.Run());
  LMS_ASSIGN_OR_RETURN(bool row, find.Step());
  if (!row) return Status::Internal("contestant vanished after insert");
  if (find.Text(1) != kind || find.Text(2) != config_json) {
    return Status::InvalidArgument(fmt::format("contestant '{}' already exists with another definition; choose another name", name));
  }
  return find.Int(0);
}

Result<std::optional<int64_t>> Store::FindContestant(const std::string& name) {
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM contestants WHERE name = ?1"));
  find.Bind(1, name);
  LMS_ASSIGN_OR_RETURN(bool row, find.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(find.Int(0));
}

Result<int64_t> Store::InsertAnswer(const Answer& a) {
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO answers(run_id, contestant_id, question_id, turn, text, tokens, latency_ms) "
                                                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"));
  ins.Bind(1, a.run_id).Bind(2, a.contestant_id).Bind(3, a.question_row).Bind(4, a.turn).Bind(5, a.text).Bind(6, a.tokens).Bind(7, a.latency_ms);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM answers WHERE contestant_id = ?1 AND question_id = ?2 AND turn = ?3"));
  find.Bind(1, a.contestant_id).Bind(2, a.question_row).Bind(3, a.turn);
  return InsertOrFind(*db_, ins, find);
}

Result<std::optional<std::string>> Store::FindAnswer(int64_t contestant_id, int64_t question_row, int turn) {
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT text FROM answers WHERE contestant_id = ?1 AND question_id = ?2 AND turn = ?3"));
  find.Bind(1, contestant_id).Bind(2, question_row).Bind(3, turn);
  LMS_ASSIGN_OR_RETURN(bool row, find.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(find.Text(0));
}

Result<int64_t> Store::InsertJudgment(const Judgment& j) {
  // answer_b is NULL in single mode; UNIQUE treats NULLs as distinct, so look up first.
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM judgments WHERE judge_id = ?1 AND prompt_name = ?2 AND turn = ?3 "
                                                    "AND answer_a = ?4 AND answer_b IS ?5"));
  find.Bind(1, j.judge_id).Bind(2, j.prompt_name).Bind(3, j.turn).Bind(4, j.answer_a).Bind(5, j.answer_b);
  LMS_ASSIGN_OR_RETURN(bool row, find.Step());
  if (row) return find.Int(0);
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO judgments(run_id, judge_id, question_id, mode, prompt_name, turn, answer_a, "
                                                   "answer_b, raw_output, verdict, score, parsed, method, probabilities, user_prompt) "
                                                   "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"));
  ins.Bind(1, j.run_id).Bind(2, j.judge_id).Bind(3, j.question_row).Bind(4, j.mode).Bind(5, j.prompt_name).Bind(6, j.turn).Bind(7, j.answer_a);
  ins.Bind(8, j.answer_b).Bind(9, j.raw_output).Bind(10, j.verdict).Bind(11, j.score).Bind(12, j.parsed ? 1 : 0);
  ins.Bind(13, j.method).Bind(14, j.probabilities).Bind(15, j.user_prompt);
  LMS_RETURN_IF_ERROR(ins.Run());
  return db_->LastInsertId();
}

Result<int64_t> Store::InsertBattle(const BattleRow& b) {
  if (b.dedup_key.empty()) return Status::InvalidArgument("a battle needs a dedup key");
  LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO battles(run_id, question_id, contestant_a, contestant_b, winner, source, voter, "
                                                   "judgment_1, judgment_2, dedup_key) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) ON CONFLICT DO NOTHING"));
  ins.Bind(1, b.run_id).Bind(2, b.question_row).Bind(3, b.contestant_a).Bind(4, b.contestant_b).Bind(5, eval::WinnerName(b.winner));
  ins.Bind(6, b.source).Bind(7, b.voter).Bind(8, b.judgment_1).Bind(9, b.judgment_2).Bind(10, b.dedup_key);
  LMS_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM battles WHERE dedup_key = ?1"));
  find.Bind(1, b.dedup_key);
  return InsertOrFind(*db_, ins, find);
}

Result<eval::BattleSet> Store::LoadBattles(std::optional<int64_t> run_id, std::vector<int64_t>* battle_ids) {
  LMS_ASSIGN_OR_RETURN(Statement st, db_->Prepare(
      "SELECT b.id, ca.name, cb.name, b.winner, IFNULL(q.question_id, ''), b.voter FROM battles b "
      "JOIN contestants ca ON ca.id = b.contestant_a JOIN contestants cb ON cb.id = b.contestant_b "
      "LEFT JOIN questions q ON q.id = b.question_id WHERE ?1 IS NULL OR b.run_id = ?1 ORDER BY b.id"));
  st.Bind(1, run_id);
  eval::BattleSet set;
  if (battle_ids) battle_ids->clear();
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    auto w = eval::ParseWinner(st.Text(3));
    if (!w) return Status::Internal(fmt::format("battle {} has winner '{}'", st.Int(0), st.Text(3)));
    set.Add(set.Intern(st.Text(1)), set.Intern(st.Text(2)), *w, st.Text(4), st.Text(5));
    if (battle_ids) battle_ids->push_back(st.Int(0));
  }
  return set;
}

Result<int64_t> Store::SaveRating(std::optional<int64_t> run_id, const std::string& method_json, const std::vector<RatingEntry>& entries,
                                  const std::vector<int64_t>& battle_ids) {
  int64_t rating_id = 0;
  LMS_RETURN_IF_ERROR(db_->Transaction([&]() -> Status {
    LMS_ASSIGN_OR_RETURN(Statement ins, db_->Prepare("INSERT INTO ratings(run_id, method) VALUES(?1, ?2)"));
    ins.Bind(1, run_id).Bind(2, method_json);
    LMS_RETURN_IF_ERROR(ins.Run());
    rating_id = db_->LastInsertId();
    LMS_ASSIGN_OR_RETURN(Statement entry, db_->Prepare("INSERT INTO rating_entries(rating_id, contestant_id, battles, elo, bt, bt_low, bt_high, rank) "
                                                       "SELECT ?1, id, ?3, ?4, ?5, ?6, ?7, ?8 FROM contestants WHERE name = ?2"));
    for (const auto& e : entries) {
      entry.Bind(1, rating_id).Bind(2, e.contestant).Bind(3, e.battles).Bind(4, e.elo).Bind(5, e.bt).Bind(6, e.bt_low).Bind(7, e.bt_high).Bind(8, e.rank);
      LMS_RETURN_IF_ERROR(entry.Run());
      if (db_->Changes() != 1) return Status::InvalidArgument(fmt::format("rating names unknown contestant '{}'", e.contestant));
      LMS_RETURN_IF_ERROR(entry.Reset());
    }
    LMS_ASSIGN_OR_RETURN(Statement link, db_->Prepare("INSERT INTO rating_battles(rating_id, battle_id) VALUES(?1, ?2)"));
    for (int64_t b : battle_ids) {
      link.Bind(1, rating_id).Bind(2, b);
      LMS_RETURN_IF_ERROR(link.Run());
      LMS_RETURN_IF_ERROR(link.Reset());
    }
    return Status::Ok();
  }));
  return rating_id;
}

Result<Table> Store::ExportTable(const std::string& table) {
  const auto& ok = ExportableTables();
  if (std::find(ok.begin(), ok.end(), table) == ok.end()) {
    std::string list;
    for (const auto& t : ok) {
      if (!list.empty()) list += ", ";
      list += t;
    }
    return Status::InvalidArgument(fmt::format("unknown table '{}' (one of: {})", table, list));
  }
  return db_->Query("SELECT * FROM " + table);  // name checked against the fixed list above
}

std::string TableToCsv(const Table& t) {
  std::string out;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    if (i) out += ',';
    out += eval::CsvField(t.columns[i]);
  }
  out += "\n";
  for (const auto& row : t.rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) out += ',';
      out += eval::CsvField(ValueToString(row[i]));
    }
    out += "\n";
  }
  return out;
}

std::string TableToJson(const Table& t) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& row : t.rows) {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (size_t i = 0; i < row.size(); ++i) {
      const Value& v = row[i];
      if (std::holds_alternative<int64_t>(v)) o[t.columns[i]] = std::get<int64_t>(v);
      else if (std::holds_alternative<double>(v)) o[t.columns[i]] = std::get<double>(v);
      else if (std::holds_alternative<std::string>(v)) o[t.columns[i]] = std::get<std::string>(v);
      else o[t.columns[i]] = nullptr;
    }
    arr.push_back(std::move(o));
  }
  return arr.dump(1) + "\n";
}

}  // namespace lms::store
