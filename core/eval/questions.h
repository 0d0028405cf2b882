// Question sets in FastChat's MT-Bench format: one JSON object per line with `question_id`,
// `category` and `turns` (user messages, answered in order: turn 2 sees turn 1's answer), and
// optionally `reference` (reference answers per turn). Reference answers can also come from a
// FastChat model_answer file (`choices[0].turns`).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"

namespace lms::eval {

struct Question {
  std::string id;  // question_id as text
  std::string category;
  std::vector<std::string> turns;
  std::vector<std::string> reference;  // may be empty
};

Result<std::vector<Question>> ParseQuestions(std::string_view jsonl);
Result<std::vector<Question>> LoadQuestions(const std::string& path);

// question_id -> turns, from a FastChat model_answer jsonl (e.g. reference_answer/gpt-4.jsonl).
Result<std::map<std::string, std::vector<std::string>>> LoadModelAnswers(const std::string& path);

// One FastChat model_answer line: {"question_id", "answer_id", "model_id", "choices":[{"index":0,"turns":[…]}], "tstamp"}.
std::string ModelAnswerLine(const std::string& question_id, const std::string& model_id, const std::vector<std::string>& turns,
                            double tstamp);

}  // namespace lms::eval
