#include "core/eval/agreement.h"

#include <map>
#include <tuple>
#include <vector>

namespace lms::eval {

namespace {

// A vote with the winner named by model, not by side: +1 first model (by name order) won,
// -1 second won, 0 tie.
struct Vote {
  int sign = 0;
  bool shown_reversed = false;  // the first model (by name) was on the right
  std::string voter;
};

using Key = std::tuple<std::string, std::string, std::string>;  // question, model lo, model hi

std::map<Key, std::vector<Vote>> GroupVotes(const BattleSet& set) {
  std::map<Key, std::vector<Vote>> groups;
  for (const Battle& b : set.battles()) {
    const std::string& l = set.models()[b.left];
    const std::string& r = set.models()[b.right];
    const bool reversed = r < l;
    int sign = 0;
    if (b.winner == Winner::kLeft) sign = 1;
    else if (b.winner == Winner::kRight) sign = -1;
    if (reversed) sign = -sign;
    groups[Key{b.question, reversed ? r : l, reversed ? l : r}].push_back(Vote{sign, reversed, b.voter});
  }
  return groups;
}

void Count(int a, int b, AgreementReport& r) {
  r.with_ties.total++;
  if (a == b) r.with_ties.agree++;
  if (a != 0 && b != 0) {
    r.without_ties.total++;
    if (a == b) r.without_ties.agree++;
  }
}

// The judge's verdicts on one item: one per order it saw; when both orders were judged, they
// combine to one verdict (a disagreement is a tie).
std::vector<int> CombinedJudgeVotes(const std::vector<Vote>& votes) {
  std::vector<const Vote*> normal, reversed;
  for (const Vote& v : votes) (v.shown_reversed ? reversed : normal).push_back(&v);
  std::vector<int> out;
  size_t both = std::min(normal.size(), reversed.size());
  for (size_t i = 0; i < both; ++i) out.push_back(normal[i]->sign == reversed[i]->sign ? normal[i]->sign : 0);
  for (size_t i = both; i < normal.size(); ++i) out.push_back(normal[i]->sign);
  for (size_t i = both; i < reversed.size(); ++i) out.push_back(reversed[i]->sign);
  return out;
}

}  // namespace

AgreementReport JudgeHumanAgreement(const BattleSet& judge, const BattleSet& human) {
  AgreementReport r;
  auto jg = GroupVotes(judge);
  auto hg = GroupVotes(human);
  for (const auto& [key, jvotes] : jg) {
    auto it = hg.find(key);
    if (it == hg.end()) continue;
    ++r.shared_items;
    for (int j : CombinedJudgeVotes(jvotes)) {
      for (const Vote& h : it->second) Count(j, h.sign, r);
    }
  }
  return r;
}

AgreementReport HumanHumanAgreement(const BattleSet& human) {
  AgreementReport r;
  for (const auto& [key, votes] : GroupVotes(human)) {
    if (votes.size() < 2) continue;
    ++r.shared_items;
    for (size_t i = 0; i + 1 < votes.size(); ++i) {
      for (size_t j = i + 1; j < votes.size(); ++j) {
        if (!votes[i].voter.empty() && votes[i].voter == votes[j].voter) continue;
        Count(votes[i].sign, votes[j].sign, r);
      }
    }
  }
  return r;
}

ConsistencyReport PositionConsistency(const BattleSet& judge) {
  ConsistencyReport c;
  std::map<std::pair<Key, std::string>, std::pair<std::vector<int>, std::vector<int>>> by_voter;
  for (const auto& [key, votes] : GroupVotes(judge)) {
    for (const Vote& v : votes) {
      auto& slot = by_voter[{key, v.voter}];
      (v.shown_reversed ? slot.second : slot.first).push_back(v.sign);
    }
  }
  for (const auto& [k, orders] : by_voter) {
    const size_t both = std::min(orders.first.size(), orders.second.size());
    for (size_t i = 0; i < both; ++i) {
      ++c.pairs_both_orders;
      if (orders.first[i] == orders.second[i]) ++c.consistent;
    }
  }
  return c;
}

}  // namespace lms::eval
