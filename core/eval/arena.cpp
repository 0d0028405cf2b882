#include "core/eval/arena.h"

#include <cmath>

namespace lms::eval {

std::pair<int, int> ChoosePair(const std::vector<std::string>& contestants, const BattleSet& history, PairSampling mode, Rng& rng) {
  const int n = static_cast<int>(contestants.size());
  std::vector<std::pair<int, int>> best;
  if (mode == PairSampling::kUniform) {
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) best.emplace_back(i, j);
  } else {
    BtFit fit = FitBradleyTerry(CountWins(history));
    WinMatrix counts = CountWins(history);
    double top = -1;
    for (int i = 0; i < n; ++i) {
      for (int j = i + 1; j < n; ++j) {
        auto a = history.Find(contestants[i]), b = history.Find(contestants[j]);
        double p = 0.5, games = 0;
        if (a && b) {
          const double pa = fit.strengths[*a], pb = fit.strengths[*b];
          p = pa / (pa + pb);
          games = counts.wins[static_cast<size_t>(*a) * counts.n + *b] + counts.wins[static_cast<size_t>(*b) * counts.n + *a];
        }
        const double score = p * (1 - p) / (1 + games);
        if (score > top + 1e-15) {
          top = score;
          best.clear();
        }
        if (std::abs(score - top) <= 1e-15) best.emplace_back(i, j);
      }
    }
  }
  auto pick = best[rng.Below(best.size())];
  if (rng.Below(2)) std::swap(pick.first, pick.second);
  return pick;
}

}  // namespace lms::eval
