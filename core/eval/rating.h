// Ratings from battles: online Elo, Bradley–Terry by maximum likelihood, seeded bootstrap
// intervals and ranks from non-overlapping intervals (as the Chatbot Arena leaderboard does).
//
// Conventions:
//  - Ties (and "both bad") count as half a win each way in Bradley–Terry and as a score of
//    `tie_score` for both sides in Elo.
//  - Bradley–Terry strengths p_i (P(i beats j) = p_i / (p_i + p_j)) are normalised to a
//    geometric mean of 1 and put on the Elo scale as 400·log10(p_i) + 1000, unless an anchor
//    model is given, in which case the scale is shifted so that the anchor has its rating.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/eval/battles.h"
#include "core/util/status.h"

namespace lms::eval {

struct EloOptions {
  double k = 4.0;
  double base = 10.0;
  double scale = 400.0;
  double initial = 1000.0;
  double tie_score = 0.5;
};

// Online Elo over the battles in order. One rating per model of `set`.
std::vector<double> OnlineElo(const BattleSet& set, const EloOptions& options = {});

// wins[i * n + j]: how often i beat j, ties adding 0.5 both ways. Shape (n, n), row-major.
struct WinMatrix {
  int n = 0;
  std::vector<double> wins;
};
WinMatrix CountWins(const BattleSet& set);

struct BtOptions {
  double tolerance = 1e-12;  // stop when no log-strength moves more than this in a sweep
  int max_iterations = 100000;
};
struct BtFit {
  std::vector<double> strengths;  // geometric mean 1
  int iterations = 0;
  bool converged = false;
  // False when the MLE does not exist: some model never won or never lost, or the comparison
  // graph is split. Strengths are then clamped and only their order is meaningful.
  bool well_posed = true;
};
// Minorise–maximise iteration (Newman 2023, Gauss–Seidel sweeps). `start` (optional) warm-starts
// from earlier strengths of the same models.
BtFit FitBradleyTerry(const WinMatrix& m, const BtOptions& options = {}, const std::vector<double>* start = nullptr);

// 400·log10(p) + 1000 with p at geometric mean 1, or shifted so that model `anchor` gets `rating`.
struct Anchor {
  int model = -1;
  double rating = 1000.0;
};
std::vector<double> ToEloScale(const std::vector<double>& strengths, const std::optional<Anchor>& anchor = std::nullopt);

struct BootstrapOptions {
  int rounds = 1000;
  uint64_t seed = 0;
  double confidence = 0.95;  // central interval from percentiles of the bootstrap ratings
  int threads = 0;           // 0: the cores available; results do not depend on this
};
struct Interval {
  double low = 0, high = 0;
};
// Resamples the battles with replacement `rounds` times (round r draws from its own stream
// seeded by (seed, r)), fits Bradley–Terry to each and returns percentile intervals of the
// Elo-scale ratings. Rounds = 0 gives empty intervals.
std::vector<Interval> BootstrapBradleyTerry(const BattleSet& set, const BootstrapOptions& options,
                                            const std::optional<Anchor>& anchor = std::nullopt,
                                            const std::vector<double>* start = nullptr);

// Rank 1 + the number of models whose interval lies wholly above this one's (low > high).
std::vector<int> RankByIntervals(const std::vector<Interval>& intervals);

struct LeaderboardOptions {
  EloOptions elo;
  BtOptions bt;
  BootstrapOptions bootstrap;
  std::optional<std::string> anchor_model;
  double anchor_rating = 1000.0;
};
struct LeaderboardRow {
  std::string model;
  int64_t battles = 0;
  double elo = 0;
  double bt = 0;
  double bt_low = 0, bt_high = 0;  // equal to bt when no bootstrap was run
  int rank = 0;
};
struct Leaderboard {
  std::vector<LeaderboardRow> rows;  // best bt first
  BtFit fit;
};
Result<Leaderboard> ComputeLeaderboard(const BattleSet& set, const LeaderboardOptions& options);

// Deterministic 64-bit generator (xoshiro256**, seeded through splitmix64).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n) without modulo bias (Lemire's method).
  uint64_t Below(uint64_t n);

 private:
  uint64_t s_[4];
};

}  // namespace lms::eval
