#include "core/eval/questions.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/eval/battles.h"
#include "core/util/sha256.h"

namespace lms::eval {

namespace {

std::string IdText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Calls fn(line_no, object) for every non-blank line.
template <typename Fn>
Status ForEachJsonLine(std::string_view text, const char* what, Fn&& fn) {
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(pos, e - pos);
    pos = e + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(fmt::format("{} line {} is not a JSON object", what, line_no));
    LMS_RETURN_IF_ERROR(fn(line_no, j));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> StringArray(const nlohmann::json& v, const std::string& where) {
  if (!v.is_array()) return Status::InvalidArgument(where + " is not an array");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) return Status::InvalidArgument(where + " holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

Result<std::vector<Question>> ParseQuestions(std::string_view jsonl) {
  std::vector<Question> out;
  LMS_RETURN_IF_ERROR(ForEachJsonLine(jsonl, "questions", [&](size_t line, const nlohmann::json& j) -> Status {
    if (!j.contains("question_id")) return Status::InvalidArgument(fmt::format("questions line {} lacks question_id", line));
    if (!j.contains("turns")) return Status::InvalidArgument(fmt::format("questions line {} lacks turns", line));
    Question q;
    q.id = IdText(j["question_id"]);
    q.category = j.value("category", "");
    LMS_ASSIGN_OR_RETURN(q.turns, StringArray(j["turns"], fmt::format("questions line {}: turns", line)));
    if (q.turns.empty()) return Status::InvalidArgument(fmt::format("questions line {}: no turns", line));
    if (j.contains("reference")) {
      LMS_ASSIGN_OR_RETURN(q.reference, StringArray(j["reference"], fmt::format("questions line {}: reference", line)));
    }
    out.push_back(std::move(q));
    return Status::Ok();
  }));
  if (out.empty()) return Status::InvalidArgument("no questions");
  return out;
}

Result<std::vector<Question>> LoadQuestions(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  auto r = ParseQuestions(text);
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

Result<std::map<std::string, std::vector<std::string>>> LoadModelAnswers(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  std::map<std::string, std::vector<std::string>> out;
  Status s = ForEachJsonLine(text, "model answers", [&](size_t line, const nlohmann::json& j) -> Status {
    if (!j.contains("question_id") || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
        !j["choices"][0].contains("turns")) {
      return Status::InvalidArgument(fmt::format("model answers line {} lacks question_id or choices[0].turns", line));
    }
    LMS_ASSIGN_OR_RETURN(out[IdText(j["question_id"])], StringArray(j["choices"][0]["turns"], fmt::format("line {}: turns", line)));
    return Status::Ok();
  });
  if (!s.ok()) return s.WithContext(path);
  return out;
}

std::string ModelAnswerLine(const std::string& question_id, const std::string& model_id, const std::vector<std::string>& turns,
                            double tstamp) {
  nlohmann::ordered_json j;
  const bool numeric = !question_id.empty() && question_id.find_first_not_of("0123456789") == std::string::npos && question_id.size() < 10;
  if (numeric) j["question_id"] = std::stol(question_id);
  else j["question_id"] = question_id;
  j["answer_id"] = Sha256Hex(model_id + "/" + question_id).substr(0, 22);  // stable, so re-exports match
  j["model_id"] = model_id;
  j["choices"] = nlohmann::json::array({{{"index", 0}, {"turns", turns}}});
  j["tstamp"] = tstamp;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lms::eval
