#include "core/eval/rating.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <thread>

#include "core/util/thread_pool.h"

namespace lms::eval {

namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Strengths outside this range mean the MLE ran off to 0 or infinity (a model that never lost
// or never won); clamping keeps the arithmetic finite and the order intact.
constexpr double kMinStrength = 1e-12;
constexpr double kMaxStrength = 1e12;

// True when every model can reach every other through "beat or tied" edges both ways: the
// condition (Zermelo, Ford) for the Bradley–Terry MLE to exist.
bool StronglyConnected(const WinMatrix& m) {
  if (m.n <= 1) return true;
  for (int direction = 0; direction < 2; ++direction) {
    std::vector<char> seen(m.n, 0);
    std::vector<int> stack = {0};
    seen[0] = 1;
    int count = 1;
    while (!stack.empty()) {
      int i = stack.back();
      stack.pop_back();
      for (int j = 0; j < m.n; ++j) {
        double w = direction == 0 ? m.wins[static_cast<size_t>(i) * m.n + j] : m.wins[static_cast<size_t>(j) * m.n + i];
        if (w > 0 && !seen[j]) {
          seen[j] = 1;
          ++count;
          stack.push_back(j);
        }
      }
    }
    if (count != m.n) return false;
  }
  return true;
}

void NormaliseGeometricMean(std::vector<double>& p) {
  double mean_log = 0;
  for (double v : p) mean_log += std::log(v);
  mean_log /= static_cast<double>(p.size());
  const double g = std::exp(mean_log);
  for (double& v : p) v /= g;
}

// numpy's default ("linear") percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double h = (static_cast<double>(sorted.size()) - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = SplitMix64(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Rng::Below(uint64_t n) {
  __uint128_t m = static_cast<__uint128_t>(Next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<__uint128_t>(Next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

std::vector<double> OnlineElo(const BattleSet& set, const EloOptions& o) {
  std::vector<double> r(set.num_models(), o.initial);
  for (const Battle& b : set.battles()) {
    const double qa = std::pow(o.base, r[b.left] / o.scale);
    const double qb = std::pow(o.base, r[b.right] / o.scale);
    const double ea = qa / (qa + qb), eb = qb / (qa + qb);
    double sa = 0, sb = 0;
    if (b.winner == Winner::kLeft) sa = 1;
    else if (b.winner == Winner::kRight) sb = 1;
    else sa = sb = o.tie_score;
    r[b.left] += o.k * (sa - ea);
    r[b.right] += o.k * (sb - eb);
  }
  return r;
}

WinMatrix CountWins(const BattleSet& set) {
  WinMatrix m;
  m.n = set.num_models();
  m.wins.assign(static_cast<size_t>(m.n) * m.n, 0.0);
  for (const Battle& b : set.battles()) {
    const size_t lr = static_cast<size_t>(b.left) * m.n + b.right, rl = static_cast<size_t>(b.right) * m.n + b.left;
    if (b.winner == Winner::kLeft) m.wins[lr] += 1;
    else if (b.winner == Winner::kRight) m.wins[rl] += 1;
    else {
      m.wins[lr] += 0.5;
      m.wins[rl] += 0.5;
    }
  }
  return m;
}

BtFit FitBradleyTerry(const WinMatrix& m, const BtOptions& o, const std::vector<double>* start) {
  BtFit fit;
  const int n = m.n;
  fit.strengths = start && static_cast<int>(start->size()) == n ? *start : std::vector<double>(n, 1.0);
  if (n == 0) {
    fit.converged = true;
    return fit;
  }
  fit.well_posed = StronglyConnected(m);
  std::vector<double>& p = fit.strengths;
  const double* w = m.wins.data();
  for (fit.iterations = 1; fit.iterations <= o.max_iterations; ++fit.iterations) {
    double max_change = 0;
    // Newman's update: p_i <- sum_j w_ij p_j/(p_i+p_j) / sum_j w_ji/(p_i+p_j), in place.
    for (int i = 0; i < n; ++i) {
      double num = 0, den = 0;
      const double pi = p[i];
      for (int j = 0; j < n; ++j) {
        if (j == i) continue;
        const double inv = 1.0 / (pi + p[j]);
        num += w[static_cast<size_t>(i) * n + j] * p[j] * inv;
        den += w[static_cast<size_t>(j) * n + i] * inv;
      }
      double next = den > 0 ? num / den : kMaxStrength;
      next = std::clamp(next, kMinStrength, kMaxStrength);
      max_change = std::max(max_change, std::abs(std::log(next / pi)));
      p[i] = next;
    }
    NormaliseGeometricMean(p);
    for (double& v : p) v = std::clamp(v, kMinStrength, kMaxStrength);
    if (max_change < o.tolerance) {
      fit.converged = true;
      break;
    }
  }
  if (fit.iterations > o.max_iterations) fit.iterations = o.max_iterations;
  return fit;
}

std::vector<double> ToEloScale(const std::vector<double>& strengths, const std::optional<Anchor>& anchor) {
  std::vector<double> r(strengths.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = 400.0 * std::log10(strengths[i]) + 1000.0;
  if (anchor && anchor->model >= 0 && anchor->model < static_cast<int>(r.size())) {
    const double shift = anchor->rating - r[anchor->model];
    for (double& v : r) v += shift;
  }
  return r;
}

std::vector<Interval> BootstrapBradleyTerry(const BattleSet& set, const BootstrapOptions& o, const std::optional<Anchor>& anchor,
                                            const std::vector<double>* start) {
  const int n = set.num_models();
  if (o.rounds <= 0 || n == 0) return {};
  // Each battle adds 0.5 to two cells of the win matrix (the same cell twice for a decisive
  // result), so one resampled battle costs two adds and no branch.
  const size_t nb = set.size();
  std::vector<uint32_t> cell_a(nb), cell_b(nb);
  for (size_t k = 0; k < nb; ++k) {
    const Battle& b = set.battles()[k];
    const uint32_t lr = static_cast<uint32_t>(b.left * n + b.right), rl = static_cast<uint32_t>(b.right * n + b.left);
    cell_a[k] = b.winner == Winner::kRight ? rl : lr;
    cell_b[k] = b.winner == Winner::kLeft ? lr : rl;
  }
  std::vector<double> ratings(static_cast<size_t>(o.rounds) * n);  // (round, model)
  std::atomic<int> next_round{0};
  auto worker = [&]() {
    WinMatrix m;
    m.n = n;
    for (int r; (r = next_round.fetch_add(1)) < o.rounds;) {
      m.wins.assign(static_cast<size_t>(n) * n, 0.0);
      Rng rng(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(r) + 1);
      double* w = m.wins.data();
      for (size_t k = 0; k < nb; ++k) {
        const size_t pick = rng.Below(nb);
        w[cell_a[pick]] += 0.5;
        w[cell_b[pick]] += 0.5;
      }
      BtOptions bo;
      bo.tolerance = 1e-10;
      bo.max_iterations = 10000;
      BtFit fit = FitBradleyTerry(m, bo, start);
      std::vector<double> e = ToEloScale(fit.strengths, anchor);
      std::copy(e.begin(), e.end(), ratings.begin() + static_cast<size_t>(r) * n);
    }
  };
  int threads = o.threads > 0 ? o.threads : ThreadPool::AvailableCores();
  threads = std::max(1, std::min(threads, o.rounds));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  std::vector<Interval> out(n);
  const double tail = (1.0 - o.confidence) / 2.0;
  std::vector<double> column(o.rounds);
  for (int i = 0; i < n; ++i) {
    for (int r = 0; r < o.rounds; ++r) column[r] = ratings[static_cast<size_t>(r) * n + i];
    std::sort(column.begin(), column.end());
    out[i] = {Percentile(column, tail), Percentile(column, 1.0 - tail)};
  }
  return out;
}

std::vector<int> RankByIntervals(const std::vector<Interval>& iv) {
  std::vector<int> rank(iv.size(), 1);
  for (size_t i = 0; i < iv.size(); ++i) {
    for (size_t j = 0; j < iv.size(); ++j) {
      if (j != i && iv[j].low > iv[i].high) ++rank[i];
    }
  }
  return rank;
}

Result<Leaderboard> ComputeLeaderboard(const BattleSet& set, const LeaderboardOptions& o) {
  if (set.size() == 0) return Status::InvalidArgument("no battles to rate");
  std::optional<Anchor> anchor;
  if (o.anchor_model) {
    auto idx = set.Find(*o.anchor_model);
    if (!idx) return Status::InvalidArgument(fmt::format("anchor model '{}' is not in the battles", *o.anchor_model));
    anchor = Anchor{*idx, o.anchor_rating};
  }
  if (o.bootstrap.rounds < 0) return Status::InvalidArgument("bootstrap rounds must be >= 0");
  if (!(o.bootstrap.confidence > 0 && o.bootstrap.confidence < 1)) return Status::InvalidArgument("confidence must be in (0, 1)");
  Leaderboard lb;
  const int n = set.num_models();
  std::vector<double> elo = OnlineElo(set, o.elo);
  lb.fit = FitBradleyTerry(CountWins(set), o.bt);
  std::vector<double> bt = ToEloScale(lb.fit.strengths, anchor);
  std::vector<Interval> iv = BootstrapBradleyTerry(set, o.bootstrap, anchor, &lb.fit.strengths);
  if (iv.empty()) {
    iv.resize(n);
    for (int i = 0; i < n; ++i) iv[i] = {bt[i], bt[i]};
  }
  std::vector<int> ranks = RankByIntervals(iv);
  std::vector<int64_t> counts(n, 0);
  for (const Battle& b : set.battles()) {
    ++counts[b.left];
    ++counts[b.right];
  }
  for (int i = 0; i < n; ++i) {
    lb.rows.push_back(LeaderboardRow{set.models()[i], counts[i], elo[i], bt[i], iv[i].low, iv[i].high, ranks[i]});
  }
  std::stable_sort(lb.rows.begin(), lb.rows.end(), [](const LeaderboardRow& a, const LeaderboardRow& b) { return a.bt > b.bt; });
  return lb;
}

}  // namespace lms::eval
