// The evaluation jobs over the record: answering a question set and judging answers. Every unit
// of work (one answer turn, one judgment, one battle) is committed as soon as it exists, and is
// looked up before it is computed, so a job killed at any point and started again continues where
// it stopped: no duplicates, nothing lost (at most the unit in flight is computed again).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/eval/answerer.h"
#include "core/eval/judge.h"
#include "core/eval/questions.h"
#include "core/store/store.h"

namespace lms::eval {

struct JobStats {
  int64_t computed = 0;     // units produced by this call
  int64_t reused = 0;       // units already in the record
  int64_t unparseable = 0;  // judge outputs without a verdict (kept in the record)
  int64_t missing = 0;      // skipped: an answer to judge is not in the record
  int64_t battles = 0;      // battles written or found
  int64_t inconsistent = 0; // pairs whose two orders disagreed (counted as ties)
  int64_t both_orders = 0;  // pairs with a verdict in both orders
};

using ProgressFn = std::function<void(const std::string& what)>;

// Stores the question set (by name) and its questions; returns question row ids in order.
Result<std::vector<int64_t>> RecordQuestions(store::Store& db, const std::string& set_name, const std::string& source,
                                             const std::string& sha256, const std::vector<Question>& questions);

// Answers every turn of every question; turn k sees the earlier turns and their answers.
// `system_prompt` (optional) opens each conversation.
Result<JobStats> RunAnswerJob(store::Store& db, int64_t run_id, int64_t contestant_id, const std::vector<Question>& questions,
                              const std::vector<int64_t>& question_rows, Answerer& answerer, const std::string& system_prompt,
                              const ProgressFn& progress = {}, const std::atomic<bool>* stop = nullptr);

struct JudgeJobOptions {
  std::string mode = "pairwise";  // "pairwise" (all pairs, both orders) or "single" (1–10 grades)
  std::optional<int64_t> baseline;  // pairwise: every contestant against this one only
  bool multi_turn = false;          // also judge turn 2 with the multi-turn prompts
  int only_turn = 0;                // 1 or 2: judge that turn only (arena battles); 0: all
  std::string judge_name;           // recorded as the battles' voter
  // "text": the judge writes its judgment and the verdict is parsed from it (FastChat's way).
  // "logprob": forced choice: the reply is opened with "[[" and the verdict is the option
  // ("A]]", "B]]", "C]]", or "1]]" … "10]]" for grades) the judge finds most probable; the
  // probabilities are stored with the judgment. For local judges whose text rarely parses.
  std::string verdict = "text";
};

// Labels a forced-choice judge picks from for a prompt's output format ("[[A]]": A, B, C;
// "[[rating]]": 1 … 10); empty for formats it cannot be used with.
std::vector<std::string> ForcedChoiceLabels(const std::string& output_format);

// Judges the recorded answers of `contestants` to `questions` with `judge`. Math, reasoning and
// coding questions with reference answers use the reference-guided prompts (FastChat's rule).
Result<JobStats> RunJudgeJob(store::Store& db, int64_t run_id, int64_t judge_id, const std::vector<int64_t>& contestants,
                             const std::vector<Question>& questions, const std::vector<int64_t>& question_rows,
                             const std::vector<JudgePrompt>& prompts, Answerer& judge, const JudgeJobOptions& options,
                             const ProgressFn& progress = {}, const std::atomic<bool>* stop = nullptr);

// Combines a judge's verdicts on (a, b) shown as A/B and then as B/A into a winner for a (left)
// vs b (right): the same model both times wins; anything else is a tie (the paper's rule).
// nullopt when either verdict is unparseable.
std::optional<Winner> CombineOrders(PairVerdict first_ab, PairVerdict second_ba, bool* consistent = nullptr);

}  // namespace lms::eval
