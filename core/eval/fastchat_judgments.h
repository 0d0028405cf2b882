// FastChat's llm_judge files in and out of the record.
//
//  - model_answer jsonl ({"question_id", "model_id", "choices":[{"turns":[…]}]}): imported as
//    answers of one "external" contestant, named as FastChat's judge names it: after the file
//    (model_answer/<model>.jsonl), not after model_id.
//  - model_judgment/<judge>_single.jsonl: {"question_id", "model", "judge": [judge, prompt name],
//    "user_prompt", "judgment", "score" (-1: unparseable), "turn", "tstamp"}.
//  - model_judgment/<judge>_pair.jsonl: {"question_id", "model_1", "model_2", "g1_winner",
//    "g2_winner" (model_1 | model_2 | tie | error), "judge", "g1_user_prompt", "g1_judgment",
//    "g2_user_prompt", "g2_judgment", "turn", "tstamp"}; game 1 shows model_1 as A, game 2
//    shows model_2 as A.
// An imported pair becomes two judgments (one per order) and, when neither game is an error, a
// battle model_1 (left) vs model_2 (right): the winner both games agree on, else a tie (the
// MT-Bench paper's rule for inconsistent pairs). Judgments link to the answers they judged, so
// the judged models' answers must be in the record (answered here or imported first).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/eval/questions.h"
#include "core/store/store.h"

namespace lms::eval {

struct FastChatImportStats {
  int64_t answers = 0;       // answer turns recorded (new or already there)
  int64_t judgments = 0;     // judgments recorded (new or already there)
  int64_t unparseable = 0;   // of those, without a verdict or score
  int64_t battles = 0;       // battles derived from pairs
  int64_t inconsistent = 0;  // pairs whose two games disagreed (recorded as ties)
  int64_t skipped = 0;       // lines naming a question or answer not in the record
};

// `questions` and `question_rows` (from RecordQuestions) say which record rows the file's
// question ids mean. Lines are recorded under `run_id`; re-importing changes nothing.
Result<FastChatImportStats> ImportFastChatAnswers(store::Store& db, int64_t run_id, const std::vector<Question>& questions,
                                                  const std::vector<int64_t>& question_rows, const std::string& path,
                                                  const std::string& model);
// Single and pair lines may be mixed in one file; `dedup_prefix` (e.g. the file's SHA-256)
// makes the battles of one file unique.
Result<FastChatImportStats> ImportFastChatJudgments(store::Store& db, int64_t run_id, const std::vector<Question>& questions,
                                                    const std::vector<int64_t>& question_rows, const std::string& path,
                                                    const std::string& dedup_prefix);

// The recorded judgments of judge `judge_name` as FastChat jsonl: mode "single" (grades) or
// "pairwise" (one line per pair of orders). Lines are ordered by question, models, turn.
Result<std::string> ExportFastChatJudgments(store::Store& db, const std::string& judge_name, const std::string& mode);

}  // namespace lms::eval
