// lmstation leaderboard --battles FILE — Elo, Bradley–Terry and bootstrap intervals from battles.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/eval/battles.h"
#include "core/eval/rating.h"
#include "core/util/log.h"
#include "core/util/sha256.h"

namespace lms::app {

namespace {

// Records a battles file in the database once (by content): an "import" run, its contestants
// and battles. Returns the run id and fills the battles' row ids in file order.
Result<int64_t> ImportBattles(store::Store& db, const std::string& path, const eval::BattleSet& set, std::vector<int64_t>* ids) {
  LMS_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
  nlohmann::json config = {{"sha256", sha}};
  LMS_ASSIGN_OR_RETURN(auto run, db.StartRun("import", path, config.dump()));
  std::vector<int64_t> contestant(set.num_models());
  ids->clear();
  LMS_RETURN_IF_ERROR(db.db().Transaction([&]() -> Status {
    for (int i = 0; i < set.num_models(); ++i) {
      LMS_ASSIGN_OR_RETURN(auto existing, db.FindContestant(set.models()[i]));
      if (existing) {
        contestant[i] = *existing;
      } else {
        LMS_ASSIGN_OR_RETURN(contestant[i], db.UpsertContestant(set.models()[i], "external", std::nullopt, "{}"));
      }
    }
    for (size_t k = 0; k < set.size(); ++k) {
      const eval::Battle& b = set.battles()[k];
      store::Store::BattleRow row;
      row.run_id = run.id;
      row.contestant_a = contestant[b.left];
      row.contestant_b = contestant[b.right];
      row.winner = b.winner;
      row.source = "import";
      row.voter = b.voter;
      row.dedup_key = fmt::format("import:{}:{}", sha, k);
      LMS_ASSIGN_OR_RETURN(int64_t id, db.InsertBattle(row));
      ids->push_back(id);
    }
    return Status::Ok();
  }));
  LMS_RETURN_IF_ERROR(db.FinishRun(run.id, "done"));
  return run.id;
}

}  // namespace

CommandFn AddLeaderboardCommand(CLI::App& cli) {
  struct Opts {
    std::string battles, anchor, export_path, db;
    bool json = false, save = false, from_db = false;
    int rounds = 1000;
    uint64_t seed = 0;
    double confidence = 0.95;
    int threads = 0;
    int64_t run = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("leaderboard", "Rate models from battles: online Elo, Bradley-Terry with bootstrap intervals");
  sub->add_option("--battles", o->battles, "Battles: CSV with left,right,winner columns, or FastChat-style JSON");
  sub->add_flag("--from-db", o->from_db, "Rate the battles recorded in the database instead of a file");
  sub->add_option("--run", o->run, "With --from-db: only the battles of this run (e.g. one judge run)");
  sub->add_flag("--save", o->save, "Record the battles (imported once, by content) and this rating snapshot in the database");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  sub->add_flag("--json", o->json, "Print a JSON array, one object per model");
  sub->add_option("--bootstrap", o->rounds, "Bootstrap rounds for the intervals (0: none)")->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->seed, "Bootstrap seed");
  sub->add_option("--confidence", o->confidence, "Interval coverage")->check(CLI::Range(0.5, 0.9999));
  sub->add_option("--anchor", o->anchor, "MODEL=RATING: shift the Bradley-Terry scale so MODEL has RATING");
  sub->add_option("--export", o->export_path, "Also write the battles to this file (.json: FastChat-style, otherwise CSV)");
  sub->add_option("-t,--threads", o->threads, "Threads for the bootstrap (default: the cores available)");
  return [o]() {
    if (o->battles.empty() == !o->from_db) return Fail(Status::InvalidArgument("give either --battles FILE or --from-db"));
    if (o->run > 0 && !o->from_db) return Fail(Status::InvalidArgument("--run goes with --from-db"));
    std::unique_ptr<store::Store> db;
    if (o->save || o->from_db) {
      auto st = OpenStore(o->db);
      if (!st.ok()) return Fail(st.status());
      db = std::move(*st);
    }
    std::vector<int64_t> battle_ids;
    std::optional<int64_t> run_id;
    Result<eval::BattleSet> set = Status::NotFound("no battles");
    if (o->from_db) {
      if (o->run > 0) run_id = o->run;
      set = db->LoadBattles(run_id, &battle_ids);
    } else {
      set = eval::LoadBattlesFile(o->battles);
      if (set.ok() && o->save) {
        auto imported = ImportBattles(*db, o->battles, *set, &battle_ids);
        if (!imported.ok()) return Fail(imported.status());
        run_id = *imported;
      }
    }
    if (!set.ok()) return Fail(set.status());
    eval::LeaderboardOptions lo;
    lo.bootstrap.rounds = o->rounds;
    lo.bootstrap.seed = o->seed;
    lo.bootstrap.confidence = o->confidence;
    lo.bootstrap.threads = o->threads;
    if (!o->anchor.empty()) {
      const size_t eq = o->anchor.rfind('=');
      double rating = 0;
      try {
        if (eq == std::string::npos) throw std::invalid_argument("no =");
        size_t used = 0;
        rating = std::stod(o->anchor.substr(eq + 1), &used);
        if (used != o->anchor.size() - eq - 1) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        return Fail(Status::InvalidArgument(fmt::format("--anchor '{}' is not MODEL=RATING", o->anchor)));
      }
      lo.anchor_model = o->anchor.substr(0, eq);
      lo.anchor_rating = rating;
    }
    auto lb = eval::ComputeLeaderboard(*set, lo);
    if (!lb.ok()) return Fail(lb.status());
    if (!lb->fit.well_posed) {
      LogWarn("Bradley-Terry has no finite maximum: some model never won or never lost (or the battles split into groups); its rating is clamped");
    } else if (!lb->fit.converged) {
      LogWarn(fmt::format("Bradley-Terry did not converge in {} iterations", lb->fit.iterations));
    }
    if (o->save) {
      nlohmann::json method = {{"elo", {{"k", lo.elo.k}, {"base", lo.elo.base}, {"scale", lo.elo.scale}, {"initial", lo.elo.initial}}},
                               {"bt", {{"tie_weight", 0.5}, {"iterations", lb->fit.iterations}, {"converged", lb->fit.converged}}},
                               {"bootstrap", {{"rounds", lo.bootstrap.rounds}, {"seed", lo.bootstrap.seed}, {"confidence", lo.bootstrap.confidence}}},
                               {"anchor", o->anchor}};
      std::vector<store::Store::RatingEntry> entries;
      for (const auto& r : lb->rows) entries.push_back({r.model, r.battles, r.elo, r.bt, r.bt_low, r.bt_high, r.rank});
      auto saved = db->SaveRating(run_id, method.dump(), entries, battle_ids);
      if (!saved.ok()) return Fail(saved.status());
      LogInfo(fmt::format("saved rating snapshot {} ({} battles) in {}", *saved, battle_ids.size(), db->db().path()));
    }
    if (!o->export_path.empty()) {
      const bool as_json = o->export_path.size() >= 5 && o->export_path.substr(o->export_path.size() - 5) == ".json";
      std::ofstream out(o->export_path, std::ios::binary);
      out << (as_json ? eval::BattlesToJson(*set) : eval::BattlesToCsv(*set));
      if (!out) return Fail(Status::IoError(fmt::format("cannot write '{}'", o->export_path)));
    }
    if (o->json) {
      nlohmann::ordered_json arr = nlohmann::ordered_json::array();
      for (const auto& r : lb->rows) {
        arr.push_back({{"model", r.model}, {"battles", r.battles}, {"elo", r.elo}, {"bt", r.bt},
                       {"bt_low", r.bt_low}, {"bt_high", r.bt_high}, {"rank", r.rank}});
      }
      std::printf("%s\n", arr.dump(1).c_str());
      return 0;
    }
    size_t width = 5;
    for (const auto& r : lb->rows) width = std::max(width, r.model.size());
    std::printf("%s\n", fmt::format("{:>4}  {:<{}}  {:>8}  {:>8}  {:>19}  {:>8}", "rank", "model", width, "bt", "elo",
                                    lo.bootstrap.rounds > 0 ? fmt::format("{:.0f}% interval", o->confidence * 100) : "interval", "battles").c_str());
    for (const auto& r : lb->rows) {
      std::printf("%s\n", fmt::format("{:>4}  {:<{}}  {:>8.1f}  {:>8.1f}  {:>8.1f} .. {:>7.1f}  {:>8}", r.rank, r.model, width, r.bt, r.elo,
                                      r.bt_low, r.bt_high, r.battles).c_str());
    }
    return 0;
  };
}

}  // namespace lms::app
