#include "core/eval/fastchat_judgments.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/eval/jobs.h"

namespace lms::eval {

namespace {

std::string IdOf(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Calls `fn` on each non-blank line parsed as JSON; errors name the file and line.
Status ForEachLine(const std::string& path, const std::function<Status(size_t, const nlohmann::json&)>& fn) {
  LMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  size_t line = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(fmt::format("{}: line {} is not a JSON object", path, line));
    Status s = fn(line, j);
    if (!s.ok()) return s.WithContext(fmt::format("{}: line {}", path, line));
  }
  return Status::Ok();
}

Result<int64_t> ContestantNamed(store::Store& db, const std::string& name) {
  LMS_ASSIGN_OR_RETURN(auto found, db.FindContestant(name));
  if (found) return *found;
  return db.UpsertContestant(name, "external", std::nullopt, "{}");
}

Result<std::optional<int64_t>> AnswerRow(store::Store& db, int64_t contestant, int64_t question_row, int turn) {
  LMS_ASSIGN_OR_RETURN(store::Statement st, db.db().Prepare("SELECT id FROM answers WHERE contestant_id = ?1 AND question_id = ?2 AND turn = ?3"));
  st.Bind(1, contestant).Bind(2, question_row).Bind(3, turn);
  LMS_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(st.Int(0));
}

std::map<std::string, int64_t> RowsById(const std::vector<Question>& questions, const std::vector<int64_t>& rows) {
  std::map<std::string, int64_t> m;
  for (size_t i = 0; i < questions.size() && i < rows.size(); ++i) m[questions[i].id] = rows[i];
  return m;
}

Result<std::string> Field(const nlohmann::json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) return Status::InvalidArgument(fmt::format("field '{}' missing or not text", name));
  return j[name].get<std::string>();
}

std::string ModeFor(const std::string& prompt_name, bool pairwise) {
  std::string mode = pairwise ? "pairwise" : "single";
  if (prompt_name.find("math") != std::string::npos) mode += "+reference";
  return mode;
}

// FastChat's game winner ("model_1", "model_2", "tie", "error") as the verdict of the judge who
// saw `first` as A.
PairVerdict GameVerdict(const std::string& winner, const char* first) {
  if (winner == "tie") return PairVerdict::kTie;
  if (winner == first) return PairVerdict::kA;
  if (winner == "model_1" || winner == "model_2") return PairVerdict::kB;
  return PairVerdict::kError;
}

std::string GameWinner(const store::Value& verdict, const char* shown_as_a, const char* shown_as_b) {
  if (!std::holds_alternative<std::string>(verdict)) return "error";
  const std::string& v = std::get<std::string>(verdict);
  return v == "A" ? shown_as_a : v == "B" ? shown_as_b : "tie";
}

nlohmann::ordered_json QuestionIdJson(const std::string& id) {
  const bool numeric = !id.empty() && id.size() < 10 && id.find_first_not_of("0123456789") == std::string::npos;
  return numeric ? nlohmann::ordered_json(std::stol(id)) : nlohmann::ordered_json(id);
}

double Tstamp(const std::string& iso) {
  // created_at is "YYYY-MM-DDTHH:MM:SS.sssZ"; FastChat writes Unix seconds.
  std::tm tm{};
  double frac = 0;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%lfZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &frac) != 6) return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = static_cast<int>(frac);
  return static_cast<double>(timegm(&tm)) + (frac - static_cast<double>(tm.tm_sec));
}

}  // namespace

Result<FastChatImportStats> ImportFastChatAnswers(store::Store& db, int64_t run_id, const std::vector<Question>& questions,
                                                  const std::vector<int64_t>& question_rows, const std::string& path,
                                                  const std::string& model) {
  const auto rows = RowsById(questions, question_rows);
  FastChatImportStats stats;
  LMS_ASSIGN_OR_RETURN(int64_t contestant, ContestantNamed(db, model));
  LMS_RETURN_IF_ERROR(db.db().Transaction([&]() -> Status {
    return ForEachLine(path, [&](size_t, const nlohmann::json& j) -> Status {
      if (!j.contains("question_id") || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
          !j["choices"][0].contains("turns") || !j["choices"][0]["turns"].is_array()) {
        return Status::InvalidArgument("lacks question_id or choices[0].turns");
      }
      auto row = rows.find(IdOf(j["question_id"]));
      if (row == rows.end()) {
        ++stats.skipped;
        return Status::Ok();
      }
      int turn = 0;
      for (const auto& t : j["choices"][0]["turns"]) {
        if (!t.is_string()) return Status::InvalidArgument("a turn is not text");
        LMS_RETURN_IF_ERROR(db.InsertAnswer({run_id, contestant, row->second, ++turn, t.get<std::string>(), 0, 0}).status());
        ++stats.answers;
      }
      return Status::Ok();
    });
  }));
  return stats;
}

Result<FastChatImportStats> ImportFastChatJudgments(store::Store& db, int64_t run_id, const std::vector<Question>& questions,
                                                    const std::vector<int64_t>& question_rows, const std::string& path,
                                                    const std::string& dedup_prefix) {
  const auto rows = RowsById(questions, question_rows);
  FastChatImportStats stats;
  LMS_RETURN_IF_ERROR(db.db().Transaction([&]() -> Status {
    return ForEachLine(path, [&](size_t line, const nlohmann::json& j) -> Status {
      if (!j.contains("question_id") || !j.contains("judge") || !j["judge"].is_array() || j["judge"].size() != 2 ||
          !j["judge"][0].is_string() || !j["judge"][1].is_string()) {
        return Status::InvalidArgument("lacks question_id or judge [model, prompt name]");
      }
      const int turn = j.value("turn", 1);
      auto row = rows.find(IdOf(j["question_id"]));
      if (row == rows.end()) {
        ++stats.skipped;
        return Status::Ok();
      }
      const std::string judge_name = j["judge"][0].get<std::string>(), prompt = j["judge"][1].get<std::string>();
      LMS_ASSIGN_OR_RETURN(int64_t judge, ContestantNamed(db, judge_name));
      store::Store::Judgment base;
      base.run_id = run_id;
      base.judge_id = judge;
      base.question_row = row->second;
      base.prompt_name = prompt;
      base.turn = turn;
      base.method = "import";
      if (j.contains("model")) {  // single
        LMS_ASSIGN_OR_RETURN(std::string model, Field(j, "model"));
        LMS_ASSIGN_OR_RETURN(int64_t c, ContestantNamed(db, model));
        LMS_ASSIGN_OR_RETURN(auto answer, AnswerRow(db, c, row->second, turn));
        if (!answer) {
          ++stats.skipped;
          return Status::Ok();
        }
        store::Store::Judgment jd = base;
        jd.mode = ModeFor(prompt, false);
        jd.answer_a = *answer;
        LMS_ASSIGN_OR_RETURN(jd.raw_output, Field(j, "judgment"));
        if (j.contains("user_prompt") && j["user_prompt"].is_string()) jd.user_prompt = j["user_prompt"].get<std::string>();
        const double score = j.value("score", -1.0);
        jd.parsed = score != -1;  // FastChat writes -1 when it found no rating
        if (jd.parsed) jd.score = score;
        else ++stats.unparseable;
        LMS_RETURN_IF_ERROR(db.InsertJudgment(jd).status());
        ++stats.judgments;
        return Status::Ok();
      }
      LMS_ASSIGN_OR_RETURN(std::string m1, Field(j, "model_1"));
      LMS_ASSIGN_OR_RETURN(std::string m2, Field(j, "model_2"));
      LMS_ASSIGN_OR_RETURN(std::string w1, Field(j, "g1_winner"));
      LMS_ASSIGN_OR_RETURN(std::string w2, Field(j, "g2_winner"));
      LMS_ASSIGN_OR_RETURN(int64_t c1, ContestantNamed(db, m1));
      LMS_ASSIGN_OR_RETURN(int64_t c2, ContestantNamed(db, m2));
      if (c1 == c2) return Status::InvalidArgument("model_1 and model_2 are the same");
      LMS_ASSIGN_OR_RETURN(auto a1, AnswerRow(db, c1, row->second, turn));
      LMS_ASSIGN_OR_RETURN(auto a2, AnswerRow(db, c2, row->second, turn));
      if (!a1 || !a2) {
        ++stats.skipped;
        return Status::Ok();
      }
      const PairVerdict v1 = GameVerdict(w1, "model_1"), v2 = GameVerdict(w2, "model_2");
      int64_t ids[2] = {0, 0};
      for (int g = 0; g < 2; ++g) {
        store::Store::Judgment jd = base;
        jd.mode = ModeFor(prompt, true);
        jd.answer_a = g == 0 ? *a1 : *a2;
        jd.answer_b = g == 0 ? *a2 : *a1;
        const std::string key = g == 0 ? "g1_" : "g2_";
        LMS_ASSIGN_OR_RETURN(jd.raw_output, Field(j, (key + "judgment").c_str()));
        if (j.contains(key + "user_prompt") && j[key + "user_prompt"].is_string()) jd.user_prompt = j[key + "user_prompt"].get<std::string>();
        const PairVerdict v = g == 0 ? v1 : v2;
        jd.parsed = v != PairVerdict::kError;
        if (jd.parsed) jd.verdict = PairVerdictName(v);
        else ++stats.unparseable;
        LMS_ASSIGN_OR_RETURN(ids[g], db.InsertJudgment(jd));
        ++stats.judgments;
      }
      bool consistent = false;
      auto winner = CombineOrders(v1, v2, &consistent);
      if (!winner) return Status::Ok();
      store::Store::BattleRow b;
      b.run_id = run_id;
      b.question_row = row->second;
      b.contestant_a = c1;
      b.contestant_b = c2;
      b.winner = *winner;
      b.source = "judge";
      b.voter = judge_name;
      b.judgment_1 = ids[0];
      b.judgment_2 = ids[1];
      b.dedup_key = fmt::format("fastchat:{}:{}", dedup_prefix, line);
      LMS_RETURN_IF_ERROR(db.InsertBattle(b).status());
      ++stats.battles;
      if (!consistent) ++stats.inconsistent;
      return Status::Ok();
    });
  }));
  return stats;
}

Result<std::string> ExportFastChatJudgments(store::Store& db, const std::string& judge_name, const std::string& mode) {
  LMS_ASSIGN_OR_RETURN(auto judge, db.FindContestant(judge_name));
  if (!judge) return Status::NotFound(fmt::format("no judge named '{}' in the record", judge_name));
  std::string out;
  auto emit = [&](const nlohmann::ordered_json& j) {
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
  };
  if (mode == "single") {
    LMS_ASSIGN_OR_RETURN(store::Statement st, db.db().Prepare(
        "SELECT q.question_id, c.name, j.prompt_name, COALESCE(j.user_prompt, ''), j.raw_output, j.score, j.turn, j.created_at "
        "FROM judgments j JOIN answers a ON a.id = j.answer_a JOIN contestants c ON c.id = a.contestant_id "
        "JOIN questions q ON q.id = j.question_id WHERE j.judge_id = ?1 AND j.answer_b IS NULL ORDER BY q.id, c.name, j.turn, j.id"));
    st.Bind(1, *judge);
    for (;;) {
      LMS_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      nlohmann::ordered_json j;
      j["question_id"] = QuestionIdJson(st.Text(0));
      j["model"] = st.Text(1);
      j["judge"] = {judge_name, st.Text(2)};
      j["user_prompt"] = st.Text(3);
      j["judgment"] = st.Text(4);
      const double score = st.IsNull(5) ? -1.0 : st.Real(5);
      if (score == std::floor(score) && std::abs(score) < 1e9) j["score"] = static_cast<int64_t>(score);  // FastChat keeps 8, not 8.0
      else j["score"] = score;
      j["turn"] = st.Int(6);
      j["tstamp"] = Tstamp(st.Text(7));
      emit(j);
    }
    return out;
  }
  if (mode != "pairwise") return Status::InvalidArgument(fmt::format("export mode '{}' is neither single nor pairwise", mode));
  // Game 1 is the earlier of the two orders recorded for the same answers, prompt and turn.
  LMS_ASSIGN_OR_RETURN(store::Statement st, db.db().Prepare(
      "SELECT q.question_id, c1.name, c2.name, j1.verdict, j2.verdict, j1.prompt_name, COALESCE(j1.user_prompt, ''), j1.raw_output, "
      "COALESCE(j2.user_prompt, ''), j2.raw_output, j1.turn, j2.created_at "
      "FROM judgments j1 JOIN judgments j2 ON j2.judge_id = j1.judge_id AND j2.prompt_name = j1.prompt_name AND j2.turn = j1.turn "
      "AND j2.answer_a = j1.answer_b AND j2.answer_b = j1.answer_a AND j2.id > j1.id "
      "JOIN answers a1 ON a1.id = j1.answer_a JOIN answers a2 ON a2.id = j1.answer_b "
      "JOIN contestants c1 ON c1.id = a1.contestant_id JOIN contestants c2 ON c2.id = a2.contestant_id "
      "JOIN questions q ON q.id = j1.question_id WHERE j1.judge_id = ?1 ORDER BY q.id, c1.name, c2.name, j1.turn, j1.id"));
  st.Bind(1, *judge);
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    nlohmann::ordered_json j;
    j["question_id"] = QuestionIdJson(st.Text(0));
    j["model_1"] = st.Text(1);
    j["model_2"] = st.Text(2);
    j["g1_winner"] = GameWinner(st.Get(3), "model_1", "model_2");
    j["g2_winner"] = GameWinner(st.Get(4), "model_2", "model_1");
    j["judge"] = {judge_name, st.Text(5)};
    j["g1_user_prompt"] = st.Text(6);
    j["g1_judgment"] = st.Text(7);
    j["g2_user_prompt"] = st.Text(8);
    j["g2_judgment"] = st.Text(9);
    j["turn"] = st.Int(10);
    j["tstamp"] = Tstamp(st.Text(11));
    emit(j);
  }
  return out;
}

}  // namespace lms::eval
