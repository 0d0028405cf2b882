// LLM-as-a-judge text handling: judge prompt sets (FastChat's judge_prompts.jsonl format),
// filling their templates, and parsing verdicts the way FastChat's llm_judge does.
//
// Parsing rules (FastChat fastchat/llm_judge/common.py):
//  - "[[rating]]": the first "[[N]]" (N digits with an optional decimal part); failing that the
//    first "[N]"; failing both the output is unparseable.
//  - "[[A]]": "[[A]]" anywhere wins for A, else "[[B]]" for B, else "[[C]]" for a tie, else
//    unparseable (checked in that order, as FastChat does).
//  - "[[rating_a,rating_b]]": "[[x, y]]" (then "[x, y]"); a tie when |x - y| <= 0.1.
// Unparseable outputs are reported as such, never mapped to a score.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"

namespace lms::eval {

struct JudgePrompt {
  std::string name;           // "pair-v2", "single-math-v1-multi-turn", …
  std::string type;           // "single" or "pairwise"
  std::string system_prompt;
  std::string prompt_template;  // Python str.format placeholders: {question}, {answer_a}, …
  std::string output_format;  // "[[rating]]", "[[A]]" or "[[rating_a,rating_b]]"
  std::string category;       // "general" or "math" (reference-guided)
  std::string description;
  bool multi_turn() const { return name.find("multi-turn") != std::string::npos; }
  bool reference_guided() const { return category == "math"; }
};

// One JSON object per line with the fields above; errors name the line and field.
Result<std::vector<JudgePrompt>> ParseJudgePrompts(std::string_view jsonl);
Result<std::vector<JudgePrompt>> LoadJudgePrompts(const std::string& path);
const JudgePrompt* FindJudgePrompt(const std::vector<JudgePrompt>& prompts, std::string_view name);

// Python str.format with named fields only: "{name}" is replaced, "{{" and "}}" are literal
// braces. A field not in `values` or a stray brace is an error naming it.
Result<std::string> FormatTemplate(std::string_view tmpl, const std::map<std::string, std::string>& values);

// The score from a "[[rating]]" output, nullopt when unparseable.
std::optional<double> ParseRating(std::string_view judgment);

enum class PairVerdict { kA, kB, kTie, kError };
const char* PairVerdictName(PairVerdict v);  // "A", "B", "tie", "error" (FastChat's words)
// `output_format` is "[[A]]" or "[[rating_a,rating_b]]".
PairVerdict ParsePairVerdict(std::string_view judgment, std::string_view output_format = "[[A]]");

}  // namespace lms::eval
