#include "core/eval/jobs.h"

#include <fmt/format.h>

#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/eval/job_workers.h"

namespace lms::eval {

namespace {

bool NeedsReference(const std::string& category) {
  return category == "math" || category == "reasoning" || category == "coding" || category == "arena-hard-200";
}

bool Stopped(const std::atomic<bool>* stop) { return stop && stop->load(); }

struct StoredJudgment {
  int64_t id = 0;
  std::string raw;
};

Result<std::optional<StoredJudgment>> FindJudgment(store::Store& db, int64_t judge_id, const std::string& prompt, int turn, int64_t a,
                                                   std::optional<int64_t> b) {
  LMS_ASSIGN_OR_RETURN(store::Statement st, db.db().Prepare("SELECT id, raw_output FROM judgments WHERE judge_id = ?1 AND prompt_name = ?2 "
                                                            "AND turn = ?3 AND answer_a = ?4 AND answer_b IS ?5"));
  st.Bind(1, judge_id).Bind(2, prompt).Bind(3, turn).Bind(4, a).Bind(5, b);
  LMS_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<StoredJudgment>();
  return std::optional<StoredJudgment>(StoredJudgment{st.Int(0), st.Text(1)});
}

Result<std::optional<int64_t>> AnswerId(store::Store& db, int64_t contestant, int64_t question_row, int turn) {
  LMS_ASSIGN_OR_RETURN(store::Statement st, db.db().Prepare("SELECT id FROM answers WHERE contestant_id = ?1 AND question_id = ?2 AND turn = ?3"));
  st.Bind(1, contestant).Bind(2, question_row).Bind(3, turn);
  LMS_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(st.Int(0));
}

}  // namespace

Result<std::vector<int64_t>> RecordQuestions(store::Store& db, const std::string& set_name, const std::string& source,
                                             const std::string& sha256, const std::vector<Question>& questions) {
  std::vector<int64_t> rows;
  LMS_RETURN_IF_ERROR(db.db().Transaction([&]() -> Status {
    LMS_ASSIGN_OR_RETURN(int64_t set_id, db.UpsertQuestionSet(set_name, source, sha256));
    for (const Question& q : questions) {
      LMS_ASSIGN_OR_RETURN(int64_t row, db.UpsertQuestion(set_id, q.id, q.category, nlohmann::json(q.turns).dump(), nlohmann::json(q.reference).dump()));
      rows.push_back(row);
    }
    return Status::Ok();
  }));
  return rows;
}

Result<JobStats> RunAnswerJob(store::Store& db, int64_t run_id, int64_t contestant_id, const std::vector<Question>& questions,
                              const std::vector<int64_t>& question_rows, Answerer& answerer, const std::string& system_prompt,
                              const ProgressFn& progress, const std::atomic<bool>* stop) {
  JobStats stats;
  std::mutex mu;  // guards db, stats and progress; the answerer runs unlocked
  // One question per unit: its turns in order, each seeing the earlier ones.
  auto answer_question = [&](size_t qi) -> Status {
    const Question& q = questions[qi];
    std::vector<ChatMessage> conv;
    if (!system_prompt.empty()) conv.push_back({"system", system_prompt});
    for (size_t t = 0; t < q.turns.size(); ++t) {
      if (Stopped(stop)) return Status::Cancelled("answer job stopped");
      const int turn = static_cast<int>(t) + 1;
      conv.push_back({"user", q.turns[t]});
      {
        std::lock_guard<std::mutex> lock(mu);
        LMS_ASSIGN_OR_RETURN(auto existing, db.FindAnswer(contestant_id, question_rows[qi], turn));
        if (existing) {
          conv.push_back({"assistant", *existing});
          ++stats.reused;
          continue;
        }
      }
      auto reply = answerer.Reply(conv);
      if (!reply.ok()) return reply.status().WithContext(fmt::format("question {} turn {}", q.id, turn));
      std::lock_guard<std::mutex> lock(mu);
      LMS_RETURN_IF_ERROR(db.InsertAnswer({run_id, contestant_id, question_rows[qi], turn, reply->text, reply->tokens, reply->latency_ms}).status());
      conv.push_back({"assistant", reply->text});
      ++stats.computed;
      if (progress) progress(fmt::format("question {} turn {}: {} tokens in {:.0f} ms", q.id, turn, reply->tokens, reply->latency_ms));
    }
    return Status::Ok();
  };
  LMS_RETURN_IF_ERROR(RunUnits(questions.size(), answerer.concurrency(), stop, answer_question, "answer job"));
  return stats;
}

std::optional<Winner> CombineOrders(PairVerdict first_ab, PairVerdict second_ba, bool* consistent) {
  if (first_ab == PairVerdict::kError || second_ba == PairVerdict::kError) return std::nullopt;
  auto as_left = [](PairVerdict v, bool swapped) {
    if (v == PairVerdict::kTie) return Winner::kTie;
    const bool a_won = v == PairVerdict::kA;
    return (a_won != swapped) ? Winner::kLeft : Winner::kRight;
  };
  const Winner w1 = as_left(first_ab, false), w2 = as_left(second_ba, true);
  if (consistent) *consistent = w1 == w2;
  return w1 == w2 ? w1 : Winner::kTie;
}

namespace {

// The values a FastChat-format template may use, for the turns up to `turn`.
std::map<std::string, std::string> TemplateValues(const Question& q, const std::vector<std::string>& answers_a,
                                                  const std::vector<std::string>& answers_b, int turn) {
  std::map<std::string, std::string> v;
  v["question"] = q.turns[turn - 1];
  v["question_1"] = q.turns[0];
  if (q.turns.size() > 1) v["question_2"] = q.turns[1];
  if (!answers_a.empty()) {
    v["answer"] = v["answer_a"] = answers_a[turn - 1];
    v["answer_1"] = v["answer_a_1"] = answers_a[0];
    if (answers_a.size() > 1) v["answer_2"] = v["answer_a_2"] = answers_a[1];
  }
  if (!answers_b.empty()) {
    v["answer_b"] = answers_b[turn - 1];
    v["answer_b_1"] = answers_b[0];
    if (answers_b.size() > 1) v["answer_b_2"] = answers_b[1];
  }
  if (!q.reference.empty()) v["ref_answer_1"] = q.reference[0];
  if (q.reference.size() > 1) v["ref_answer_2"] = q.reference[1];
  return v;
}

const JudgePrompt* ChoosePrompt(const std::vector<JudgePrompt>& prompts, const Question& q, bool pairwise, bool multi_turn) {
  const bool ref = NeedsReference(q.category) && !q.reference.empty() && (!multi_turn || q.reference.size() > 1);
  std::string name = pairwise ? (ref ? "pair-math-v1" : "pair-v2") : (ref ? "single-math-v1" : "single-v1");
  if (multi_turn) name += "-multi-turn";
  return FindJudgePrompt(prompts, name);
}

// The forced-choice verdict: the most probable label (first on equal probability); the raw
// output recorded is "[[label]]", so it parses like a generated verdict.
struct ForcedChoice {
  std::string raw;
  std::string probabilities;  // JSON object label -> probability
};

Result<ForcedChoice> ChooseByProbability(Answerer& judge, const std::vector<ChatMessage>& conv, const std::vector<std::string>& labels) {
  std::vector<std::string> options;
  for (const auto& l : labels) options.push_back(l + "]]");
  LMS_ASSIGN_OR_RETURN(std::vector<double> lps, judge.OptionLogProbs(conv, "[[", options));
  if (lps.size() != labels.size()) return Status::Internal("forced choice returned the wrong number of scores");
  size_t best = 0;
  nlohmann::ordered_json probs = nlohmann::ordered_json::object();
  for (size_t i = 0; i < labels.size(); ++i) {
    probs[labels[i]] = std::exp(lps[i]);
    if (lps[i] > lps[best]) best = i;
  }
  return ForcedChoice{"[[" + labels[best] + "]]", probs.dump()};
}

}  // namespace

std::vector<std::string> ForcedChoiceLabels(const std::string& output_format) {
  if (output_format == "[[A]]") return {"A", "B", "C"};
  if (output_format == "[[rating]]") return {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};
  return {};
}

Result<JobStats> RunJudgeJob(store::Store& db, int64_t run_id, int64_t judge_id, const std::vector<int64_t>& contestants,
                             const std::vector<Question>& questions, const std::vector<int64_t>& question_rows,
                             const std::vector<JudgePrompt>& prompts, Answerer& judge, const JudgeJobOptions& o,
                             const ProgressFn& progress, const std::atomic<bool>* stop) {
  JobStats stats;
  const bool pairwise = o.mode == "pairwise";
  if (!pairwise && o.mode != "single") return Status::InvalidArgument(fmt::format("judge mode '{}' is neither pairwise nor single", o.mode));
  const bool forced = o.verdict == "logprob";
  if (!forced && o.verdict != "text") return Status::InvalidArgument(fmt::format("verdict method '{}' is neither text nor logprob", o.verdict));

  std::mutex mu;  // guards db, stats and progress; the judge runs unlocked

  // Runs the judge on one prompt unless the record has it; returns (judgment id, raw output).
  auto judge_once = [&](const JudgePrompt& p, const Question& q, int64_t qrow, int turn, int64_t a, std::optional<int64_t> b,
                        const std::map<std::string, std::string>& values) -> Result<StoredJudgment> {
    {
      std::lock_guard<std::mutex> lock(mu);
      LMS_ASSIGN_OR_RETURN(auto found, FindJudgment(db, judge_id, p.name, turn, a, b));
      if (found) {
        ++stats.reused;
        return *found;
      }
    }
    LMS_ASSIGN_OR_RETURN(std::string user, FormatTemplate(p.prompt_template, values));
    std::vector<ChatMessage> conv;
    if (!p.system_prompt.empty()) conv.push_back({"system", p.system_prompt});
    conv.push_back({"user", user});
    store::Store::Judgment j;
    std::string raw;
    if (forced) {
      const std::vector<std::string> labels = ForcedChoiceLabels(p.output_format);
      if (labels.empty()) return Status::InvalidArgument(fmt::format("prompt '{}' ({}) has no forced-choice form", p.name, p.output_format));
      auto choice = ChooseByProbability(judge, conv, labels);
      if (!choice.ok()) return choice.status().WithContext(fmt::format("judging question {} turn {}", q.id, turn));
      raw = choice->raw;
      j.method = "logprob";
      j.probabilities = choice->probabilities;
    } else {
      auto reply = judge.Reply(conv);
      if (!reply.ok()) return reply.status().WithContext(fmt::format("judging question {} turn {}", q.id, turn));
      raw = reply->text;
    }
    j.run_id = run_id;
    j.judge_id = judge_id;
    j.question_row = qrow;
    j.mode = pairwise ? (o.baseline ? "pairwise-baseline" : "pairwise") : "single";
    if (p.reference_guided()) j.mode += "+reference";
    j.prompt_name = p.name;
    j.turn = turn;
    j.answer_a = a;
    j.answer_b = b;
    j.raw_output = raw;
    j.user_prompt = user;
    if (pairwise) {
      PairVerdict v = ParsePairVerdict(raw, p.output_format);
      j.parsed = v != PairVerdict::kError;
      if (j.parsed) j.verdict = PairVerdictName(v);
    } else {
      j.score = ParseRating(raw);
      j.parsed = j.score.has_value();
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!j.parsed) ++stats.unparseable;
    LMS_ASSIGN_OR_RETURN(int64_t id, db.InsertJudgment(j));
    ++stats.computed;
    if (progress) progress(fmt::format("question {} turn {} ({}): {}", q.id, turn, p.name, j.parsed ? (j.verdict ? *j.verdict : fmt::format("{}", *j.score)) : "unparseable"));
    return StoredJudgment{id, raw};
  };

  // Answers of one contestant to one question, all turns up to `turns`; false when one is
  // missing (counted).
  auto answers_of = [&](int64_t contestant, int64_t qrow, int turns, std::vector<std::string>& texts, int64_t& last_id) -> Result<bool> {
    std::lock_guard<std::mutex> lock(mu);
    texts.clear();
    for (int t = 1; t <= turns; ++t) {
      LMS_ASSIGN_OR_RETURN(auto text, db.FindAnswer(contestant, qrow, t));
      LMS_ASSIGN_OR_RETURN(auto id, AnswerId(db, contestant, qrow, t));
      if (!text || !id) {
        ++stats.missing;
        return false;
      }
      texts.push_back(*text);
      last_id = *id;
    }
    return true;
  };

  // One question per unit: every judgment and battle on it.
  auto judge_question = [&](size_t qi) -> Status {
    const Question& q = questions[qi];
    const int64_t qrow = question_rows[qi];
    std::vector<int> turns = {1};
    if (o.multi_turn && q.turns.size() > 1) turns.push_back(2);
    for (int turn : turns) {
      if (o.only_turn && turn != o.only_turn) continue;
      const bool mt = turn == 2;
      const JudgePrompt* p = ChoosePrompt(prompts, q, pairwise, mt);
      if (!p) return Status::NotFound(fmt::format("no judge prompt for question {} ({}{})", q.id, pairwise ? "pairwise" : "single", mt ? ", multi-turn" : ""));
      if (!pairwise) {
        for (int64_t c : contestants) {
          if (Stopped(stop)) return Status::Cancelled("judge job stopped");
          std::vector<std::string> texts;
          int64_t aid = 0;
          LMS_ASSIGN_OR_RETURN(bool have, answers_of(c, qrow, turn, texts, aid));
          if (!have) continue;
          LMS_RETURN_IF_ERROR(judge_once(*p, q, qrow, turn, aid, std::nullopt, TemplateValues(q, texts, {}, turn)).status());
        }
        continue;
      }
      std::vector<std::pair<int64_t, int64_t>> pairs;
      for (size_t i = 0; i < contestants.size(); ++i) {
        if (o.baseline) {
          if (contestants[i] != *o.baseline) pairs.emplace_back(contestants[i], *o.baseline);
          continue;
        }
        for (size_t k = i + 1; k < contestants.size(); ++k) pairs.emplace_back(contestants[i], contestants[k]);
      }
      for (auto [a, b] : pairs) {
        if (Stopped(stop)) return Status::Cancelled("judge job stopped");
        std::vector<std::string> ta, tb;
        int64_t ida = 0, idb = 0;
        LMS_ASSIGN_OR_RETURN(bool have_a, answers_of(a, qrow, turn, ta, ida));
        if (!have_a) continue;
        LMS_ASSIGN_OR_RETURN(bool have_b, answers_of(b, qrow, turn, tb, idb));
        if (!have_b) continue;
        LMS_ASSIGN_OR_RETURN(StoredJudgment j1, judge_once(*p, q, qrow, turn, ida, idb, TemplateValues(q, ta, tb, turn)));
        LMS_ASSIGN_OR_RETURN(StoredJudgment j2, judge_once(*p, q, qrow, turn, idb, ida, TemplateValues(q, tb, ta, turn)));
        bool consistent = false;
        auto winner = CombineOrders(ParsePairVerdict(j1.raw, p->output_format), ParsePairVerdict(j2.raw, p->output_format), &consistent);
        if (!winner) continue;  // an unparseable order: no battle; both judgments stay in the record
        store::Store::BattleRow row;
        row.run_id = run_id;
        row.question_row = qrow;
        row.contestant_a = a;
        row.contestant_b = b;
        row.winner = *winner;
        row.source = "judge";
        row.voter = o.judge_name;
        row.judgment_1 = j1.id;
        row.judgment_2 = j2.id;
        row.dedup_key = fmt::format("judge:{}:{}:{}", j1.id, j2.id, turn);
        std::lock_guard<std::mutex> lock(mu);
        ++stats.both_orders;
        if (!consistent) ++stats.inconsistent;
        LMS_RETURN_IF_ERROR(db.InsertBattle(row).status());
        ++stats.battles;
      }
    }
    return Status::Ok();
  };
  LMS_RETURN_IF_ERROR(RunUnits(questions.size(), judge.concurrency(), stop, judge_question, "judge job"));
  return stats;
}

}  // namespace lms::eval
