#include "core/eval/judge.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/eval/battles.h"

namespace lms::eval {

Result<std::vector<JudgePrompt>> ParseJudgePrompts(std::string_view jsonl) {
  std::vector<JudgePrompt> out;
  size_t pos = 0, line_no = 0;
  while (pos < jsonl.size()) {
    size_t e = jsonl.find('\n', pos);
    if (e == std::string_view::npos) e = jsonl.size();
    std::string_view line = jsonl.substr(pos, e - pos);
    pos = e + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(fmt::format("judge prompts line {} is not a JSON object", line_no));
    JudgePrompt p;
    auto field = [&](const char* key, std::string& dst, bool required) -> Status {
      if (!j.contains(key)) {
        return required ? Status::InvalidArgument(fmt::format("judge prompts line {} lacks '{}'", line_no, key)) : Status::Ok();
      }
      if (!j[key].is_string()) return Status::InvalidArgument(fmt::format("judge prompts line {}: '{}' is not a string", line_no, key));
      dst = j[key].get<std::string>();
      return Status::Ok();
    };
    LMS_RETURN_IF_ERROR(field("name", p.name, true));
    LMS_RETURN_IF_ERROR(field("type", p.type, true));
    LMS_RETURN_IF_ERROR(field("system_prompt", p.system_prompt, false));
    LMS_RETURN_IF_ERROR(field("prompt_template", p.prompt_template, true));
    LMS_RETURN_IF_ERROR(field("output_format", p.output_format, true));
    LMS_RETURN_IF_ERROR(field("category", p.category, false));
    LMS_RETURN_IF_ERROR(field("description", p.description, false));
    if (p.type != "single" && p.type != "pairwise") {
      return Status::InvalidArgument(fmt::format("judge prompt '{}': type '{}' is neither single nor pairwise", p.name, p.type));
    }
    if (p.output_format != "[[rating]]" && p.output_format != "[[A]]" && p.output_format != "[[rating_a,rating_b]]") {
      return Status::InvalidArgument(fmt::format("judge prompt '{}': unknown output_format '{}'", p.name, p.output_format));
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<JudgePrompt>> LoadJudgePrompts(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  auto r = ParseJudgePrompts(text);
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

const JudgePrompt* FindJudgePrompt(const std::vector<JudgePrompt>& prompts, std::string_view name) {
  for (const auto& p : prompts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Result<std::string> FormatTemplate(std::string_view t, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '{') {
      if (i + 1 < t.size() && t[i + 1] == '{') {
        out.push_back('{');
        ++i;
        continue;
      }
      const size_t close = t.find('}', i);
      if (close == std::string_view::npos) return Status::InvalidArgument(fmt::format("template has an unclosed '{{' at offset {}", i));
      const std::string key(t.substr(i + 1, close - i - 1));
      auto it = values.find(key);
      if (it == values.end()) return Status::InvalidArgument(fmt::format("template field '{}' has no value", key));
      out += it->second;
      i = close;
    } else if (c == '}') {
      if (i + 1 < t.size() && t[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return Status::InvalidArgument(fmt::format("template has a stray '}}' at offset {}", i));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace {

// FastChat's patterns; ECMAScript \d is ASCII digits only, where Python's matches any Unicode
// digit (which ast.literal_eval would then reject anyway).
const std::regex& OneScore() {
  static const std::regex r(R"(\[\[(\d+\.?\d*)\]\])");
  return r;
}
const std::regex& OneScoreBackup() {
  static const std::regex r(R"(\[(\d+\.?\d*)\])");
  return r;
}
const std::regex& TwoScore() {
  static const std::regex r(R"(\[\[(\d+\.?\d*),\s?(\d+\.?\d*)\]\])");
  return r;
}
const std::regex& TwoScoreBackup() {
  static const std::regex r(R"(\[(\d+\.?\d*),\s?(\d+\.?\d*)\])");
  return r;
}

}  // namespace

std::optional<double> ParseRating(std::string_view judgment) {
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(judgment.begin(), judgment.end(), m, OneScore()) ||
      std::regex_search(judgment.begin(), judgment.end(), m, OneScoreBackup())) {
    return std::stod(m[1].str());
  }
  return std::nullopt;
}

const char* PairVerdictName(PairVerdict v) {
  switch (v) {
    case PairVerdict::kA: return "A";
    case PairVerdict::kB: return "B";
    case PairVerdict::kTie: return "tie";
    case PairVerdict::kError: return "error";
  }
  return "error";
}

PairVerdict ParsePairVerdict(std::string_view judgment, std::string_view output_format) {
  if (output_format == "[[rating_a,rating_b]]") {
    std::match_results<std::string_view::const_iterator> m;
    if (std::regex_search(judgment.begin(), judgment.end(), m, TwoScore()) ||
        std::regex_search(judgment.begin(), judgment.end(), m, TwoScoreBackup())) {
      const double a = std::stod(m[1].str()), b = std::stod(m[2].str());
      if (std::abs(a - b) <= 0.1) return PairVerdict::kTie;
      return a > b ? PairVerdict::kA : PairVerdict::kB;
    }
    return PairVerdict::kError;
  }
  if (judgment.find("[[A]]") != std::string_view::npos) return PairVerdict::kA;
  if (judgment.find("[[B]]") != std::string_view::npos) return PairVerdict::kB;
  if (judgment.find("[[C]]") != std::string_view::npos) return PairVerdict::kTie;
  return PairVerdict::kError;
}

}  // namespace lms::eval
