#include "core/eval/battles.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace lms::eval {

const char* WinnerName(Winner w) {
  switch (w) {
    case Winner::kLeft: return "left";
    case Winner::kRight: return "right";
    case Winner::kTie: return "tie";
    case Winner::kBothBad: return "both_bad";
  }
  return "tie";
}

std::optional<Winner> ParseWinner(std::string_view s) {
  std::string t;
  for (char c : s) t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  size_t b = 0;
  while (b < t.size() && std::isspace(static_cast<unsigned char>(t[b]))) ++b;
  t = t.substr(b);
  if (t == "left" || t == "model_a" || t == "a") return Winner::kLeft;
  if (t == "right" || t == "model_b" || t == "b") return Winner::kRight;
  if (t == "tie" || t == "draw" || t == "c") return Winner::kTie;
  if (t == "both_bad" || t == "tie (bothbad)" || t == "bothbad" || t == "both bad") return Winner::kBothBad;
  return std::nullopt;
}

int BattleSet::Intern(std::string_view name) {
  auto it = index_.find(std::string(name));
  if (it != index_.end()) return it->second;
  int id = static_cast<int>(models_.size());
  models_.emplace_back(name);
  index_.emplace(models_.back(), id);
  return id;
}

std::optional<int> BattleSet::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void BattleSet::Add(int left, int right, Winner winner, std::string question, std::string voter) {
  battles_.push_back(Battle{left, right, winner, std::move(question), std::move(voter)});
}

bool NextCsvRecord(std::string_view text, size_t& pos, std::vector<std::string>& fields) {
  fields.clear();
  // Skip blank lines between records.
  while (pos < text.size() && (text[pos] == '\n' || text[pos] == '\r')) ++pos;
  if (pos >= text.size()) return false;
  std::string field;
  bool quoted = false;
  while (pos < text.size()) {
    char c = text[pos];
    if (quoted) {
      if (c == '"') {
        if (pos + 1 < text.size() && text[pos + 1] == '"') {
          field.push_back('"');
          pos += 2;
          continue;
        }
        quoted = false;
      } else {
        field.push_back(c);
      }
      ++pos;
      continue;
    }
    if (c == '"') {
      quoted = true;
      ++pos;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      ++pos;
    } else if (c == '\n' || c == '\r') {
      break;
    } else {
      field.push_back(c);
      ++pos;
    }
  }
  fields.push_back(std::move(field));
  return true;
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

Result<BattleSet> ParseBattlesCsv(std::string_view text) {
  size_t pos = 0;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;  // UTF-8 BOM
  std::vector<std::string> header;
  if (!NextCsvRecord(text, pos, header)) return Status::InvalidArgument("battles CSV is empty");
  auto column = [&](std::initializer_list<const char*> names) -> int {
    for (const char* n : names) {
      auto it = std::find(header.begin(), header.end(), n);
      if (it != header.end()) return static_cast<int>(it - header.begin());
    }
    return -1;
  };
  const int c_left = column({"left"}), c_right = column({"right"}), c_winner = column({"winner"});
  if (c_left < 0 || c_right < 0 || c_winner < 0) {
    return Status::InvalidArgument("battles CSV header must name the columns left, right and winner");
  }
  const int c_question = column({"question", "question_id", "prompt"});
  const int c_voter = column({"voter", "worker", "judge"});
  BattleSet set;
  std::vector<std::string> f;
  size_t line = 1;
  while (NextCsvRecord(text, pos, f)) {
    ++line;
    const int need = std::max({c_left, c_right, c_winner});
    if (static_cast<int>(f.size()) <= need) {
      return Status::InvalidArgument(fmt::format("battles CSV record {} has {} fields, expected {}", line, f.size(), header.size()));
    }
    auto w = ParseWinner(f[c_winner]);
    if (!w) return Status::InvalidArgument(fmt::format("battles CSV record {}: unknown winner '{}' (left, right, tie, both_bad)", line, f[c_winner]));
    if (f[c_left].empty() || f[c_right].empty()) return Status::InvalidArgument(fmt::format("battles CSV record {}: empty model name", line));
    if (f[c_left] == f[c_right]) return Status::InvalidArgument(fmt::format("battles CSV record {}: model '{}' against itself", line, f[c_left]));
    int l = set.Intern(f[c_left]), r = set.Intern(f[c_right]);
    set.Add(l, r, *w, c_question >= 0 && c_question < static_cast<int>(f.size()) ? f[c_question] : std::string(),
            c_voter >= 0 && c_voter < static_cast<int>(f.size()) ? f[c_voter] : std::string());
  }
  return set;
}

namespace {

std::string JsonScalarText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return {};
  if (v.is_array()) {  // FastChat judges are written as ["gpt-4", "pair-v2"]
    std::string s;
    for (const auto& e : v) {
      if (!s.empty()) s += '/';
      s += JsonScalarText(e);
    }
    return s;
  }
  return v.dump();
}

Status AddJsonBattle(BattleSet& set, const nlohmann::json& o, size_t n) {
  if (!o.is_object()) return Status::InvalidArgument(fmt::format("battle {} is not a JSON object", n));
  for (const char* k : {"model_a", "model_b", "winner"}) {
    if (!o.contains(k) || !o[k].is_string()) return Status::InvalidArgument(fmt::format("battle {} lacks the string field '{}'", n, k));
  }
  auto w = ParseWinner(o["winner"].get<std::string>());
  if (!w) return Status::InvalidArgument(fmt::format("battle {}: unknown winner '{}'", n, o["winner"].get<std::string>()));
  const std::string a = o["model_a"], b = o["model_b"];
  if (a.empty() || b.empty() || a == b) return Status::InvalidArgument(fmt::format("battle {}: models must be two different names", n));
  int l = set.Intern(a), r = set.Intern(b);
  set.Add(l, r, *w, o.contains("question_id") ? JsonScalarText(o["question_id"]) : std::string(),
          o.contains("judge") ? JsonScalarText(o["judge"]) : std::string());
  return Status::Ok();
}

}  // namespace

Result<BattleSet> ParseBattlesJson(std::string_view text) {
  BattleSet set;
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return Status::InvalidArgument("battles JSON is empty");
  if (text[b] == '[') {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) return Status::InvalidArgument("battles file is not valid JSON");
    size_t n = 0;
    for (const auto& o : j) LMS_RETURN_IF_ERROR(AddJsonBattle(set, o, n++));
    return set;
  }
  // JSON lines.
  size_t pos = 0, n = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(pos, e - pos);
    pos = e + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return Status::InvalidArgument(fmt::format("battles JSON line {} is not valid JSON", n + 1));
    LMS_RETURN_IF_ERROR(AddJsonBattle(set, j, n++));
  }
  return set;
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(fmt::format("cannot open '{}'", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(fmt::format("cannot read '{}'", path));
  return ss.str();
}

Result<BattleSet> LoadBattlesFile(const std::string& path) {
  LMS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  size_t b = text.find_first_not_of(" \t\r\n");
  Result<BattleSet> r = (b != std::string::npos && (text[b] == '[' || text[b] == '{')) ? ParseBattlesJson(text) : ParseBattlesCsv(text);
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

std::string BattlesToCsv(const BattleSet& set) {
  std::string out = "left,right,winner,question,voter\n";
  for (const Battle& b : set.battles()) {
    out += CsvField(set.models()[b.left]) + "," + CsvField(set.models()[b.right]) + "," + WinnerName(b.winner) + "," +
           CsvField(b.question) + "," + CsvField(b.voter) + "\n";
  }
  return out;
}

std::string BattlesToJson(const BattleSet& set) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Battle& b : set.battles()) {
    const char* w = b.winner == Winner::kLeft ? "model_a" : b.winner == Winner::kRight ? "model_b" : b.winner == Winner::kTie ? "tie" : "tie (bothbad)";
    nlohmann::json o = {{"model_a", set.models()[b.left]}, {"model_b", set.models()[b.right]}, {"winner", w}};
    if (!b.question.empty()) {
      // FastChat writes numeric question ids as numbers.
      const bool numeric = b.question.size() < 10 && std::all_of(b.question.begin(), b.question.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (numeric) o["question_id"] = std::stol(b.question);
      else o["question_id"] = b.question;
    }
    if (!b.voter.empty()) o["judge"] = b.voter;
    arr.push_back(std::move(o));
  }
  return arr.dump(1) + "\n";
}

}  // namespace lms::eval
