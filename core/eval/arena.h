// Arena pair sampling: which two contestants meet next.
//  - uniform: every unordered pair equally likely;
//  - uncertain: the pair whose order is least settled: the largest p(1-p) / (1 + n), where p is
//    the Bradley–Terry probability that one beats the other from the battles so far and n the
//    number of battles between them (unseen pairs first). Ties broken at random.
// The order shown (who is "A") is random in both modes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/eval/battles.h"
#include "core/eval/rating.h"

namespace lms::eval {

enum class PairSampling { kUniform, kUncertain };

// Indices into `contestants`; REQUIRES contestants.size() >= 2. `history` may name other models.
std::pair<int, int> ChoosePair(const std::vector<std::string>& contestants, const BattleSet& history, PairSampling mode, Rng& rng);

}  // namespace lms::eval
