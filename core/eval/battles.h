// Battles: pairwise votes between named models, the input of every rating method.
//
// Formats read and written:
//  - CSV with a header naming at least `left,right,winner` (winner: left | right | tie |
//    both_bad). Optional columns kept for agreement analysis: `question` (or `prompt`,
//    `question_id`) and `voter` (or `worker`, `judge`). Other columns are ignored, so real
//    crowd files such as llmfao's comparisons load directly.
//  - FastChat-style JSON: a list of objects (or JSON lines) with `model_a`, `model_b`,
//    `winner` (model_a | model_b | tie | tie (bothbad)), optional `question_id` and `judge`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/util/status.h"

namespace lms::eval {

enum class Winner : uint8_t { kLeft, kRight, kTie, kBothBad };

// "left", "right", "tie", "both_bad".
const char* WinnerName(Winner w);
// Accepts the CSV and FastChat spellings (left/model_a/a, right/model_b/b, tie, both_bad,
// "tie (bothbad)"), case-insensitive.
std::optional<Winner> ParseWinner(std::string_view s);
inline bool IsTie(Winner w) { return w == Winner::kTie || w == Winner::kBothBad; }

struct Battle {
  int left = 0;   // index into BattleSet::models()
  int right = 0;
  Winner winner = Winner::kTie;
  std::string question;  // question / prompt id; empty when unknown
  std::string voter;     // who voted (crowd worker, judge name); empty when unknown
};

class BattleSet {
 public:
  // Index of `name`, adding it when new. Model order is first appearance.
  int Intern(std::string_view name);
  std::optional<int> Find(std::string_view name) const;
  const std::vector<std::string>& models() const { return models_; }
  int num_models() const { return static_cast<int>(models_.size()); }

  // REQUIRES: left != right, both interned.
  void Add(int left, int right, Winner winner, std::string question = {}, std::string voter = {});
  const std::vector<Battle>& battles() const { return battles_; }
  size_t size() const { return battles_.size(); }

 private:
  std::vector<std::string> models_;
  std::unordered_map<std::string, int> index_;
  std::vector<Battle> battles_;
};

Result<BattleSet> ParseBattlesCsv(std::string_view text);
Result<BattleSet> ParseBattlesJson(std::string_view text);
// JSON when the first non-blank character is '[' or '{', CSV otherwise. Errors name the path.
Result<BattleSet> LoadBattlesFile(const std::string& path);

std::string BattlesToCsv(const BattleSet& set);   // left,right,winner,question,voter
std::string BattlesToJson(const BattleSet& set);  // FastChat-style list

// Reads a whole file; the error names the path.
Result<std::string> ReadWholeFile(const std::string& path);

// One CSV record split into fields (RFC 4180 quoting: "a ""b""", embedded commas/newlines).
// `pos` advances past the record; returns false at end of input.
bool NextCsvRecord(std::string_view text, size_t& pos, std::vector<std::string>& fields);
std::string CsvField(std::string_view s);  // quoted when needed

}  // namespace lms::eval
