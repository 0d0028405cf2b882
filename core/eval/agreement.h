// Agreement between voters on the same (question, model pair), as in the MT-Bench paper
// (Zheng et al. 2023, §4.2 and FastChat's compute_agreement.py):
//  - judge vs human: every (judge vote, human vote) pair on a shared (question, pair);
//  - human vs human: every two human votes on the same (question, pair);
//  - "with ties" counts all such vote pairs (two ties agree); "without ties" only those where
//    neither vote is a tie. "Both bad" counts as a tie.
//  - position consistency: where the judge voted on both orders of a pair, the share of pairs
//    whose two verdicts name the same winner (or both say tie). An inconsistent pair counts as a
//    tie in the judge's vote, as the paper prescribes.
// Votes are matched by question and model names, whatever side each model was shown on.
#pragma once

#include <cstdint>
#include <string>

#include "core/eval/battles.h"

namespace lms::eval {

struct AgreementCount {
  int64_t agree = 0;
  int64_t total = 0;
  double rate() const { return total ? static_cast<double>(agree) / static_cast<double>(total) : 0.0; }
};

struct AgreementReport {
  int64_t shared_items = 0;  // (question, pair) keys voted on by both sides
  AgreementCount with_ties, without_ties;
};

struct ConsistencyReport {
  int64_t pairs_both_orders = 0;  // (question, pair, voter) seen in both orders
  int64_t consistent = 0;
  double rate() const { return pairs_both_orders ? static_cast<double>(consistent) / static_cast<double>(pairs_both_orders) : 0.0; }
};

// `judge` holds one vote per (question, pair) — or two in both orders, combined as above.
AgreementReport JudgeHumanAgreement(const BattleSet& judge, const BattleSet& human);
// Pairs of different votes on the same item; two votes by the same named voter are skipped.
AgreementReport HumanHumanAgreement(const BattleSet& human);
ConsistencyReport PositionConsistency(const BattleSet& judge);

}  // namespace lms::eval
