// lmstation agreement --human FILE --judge FILE... — judge-vs-human and human-vs-human
// agreement (with and without ties) and the judges' position consistency.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/eval/agreement.h"
#include "core/eval/battles.h"

namespace lms::app {

namespace {

nlohmann::json ToJson(const eval::AgreementReport& r) {
  auto count = [](const eval::AgreementCount& c) { return nlohmann::json{{"agree", c.agree}, {"total", c.total}, {"rate", c.rate()}}; };
  return {{"shared_items", r.shared_items}, {"with_ties", count(r.with_ties)}, {"without_ties", count(r.without_ties)}};
}

std::string Line(const std::string& name, const eval::AgreementReport& r) {
  return fmt::format("{:<44} {:>6.1f}% ({}/{})   {:>6.1f}% ({}/{})   {} items", name, 100 * r.with_ties.rate(), r.with_ties.agree,
                     r.with_ties.total, 100 * r.without_ties.rate(), r.without_ties.agree, r.without_ties.total, r.shared_items);
}

}  // namespace

CommandFn AddAgreementCommand(CLI::App& cli) {
  struct Opts {
    std::string human;
    std::vector<std::string> judges;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("agreement", "Agreement between judges and humans on the same pairs (MT-Bench paper)");
  sub->add_option("--human", o->human, "Human votes (battles file with question and voter columns)");
  sub->add_option("--judge", o->judges, "Judge votes (battles file); repeatable");
  sub->add_flag("--json", o->json, "Print one JSON object");
  return [o]() {
    if (o->human.empty() && o->judges.empty()) return Fail(Status::InvalidArgument("give --human and/or --judge battle files"));
    nlohmann::json out = nlohmann::json::object();
    std::vector<std::string> lines;
    std::optional<eval::BattleSet> human;
    if (!o->human.empty()) {
      auto h = eval::LoadBattlesFile(o->human);
      if (!h.ok()) return Fail(h.status());
      human = std::move(*h);
      auto hh = eval::HumanHumanAgreement(*human);
      out["human_human"] = ToJson(hh);
      lines.push_back(Line("human vs human", hh));
    }
    out["judges"] = nlohmann::json::array();
    for (const std::string& path : o->judges) {
      auto j = eval::LoadBattlesFile(path);
      if (!j.ok()) return Fail(j.status());
      nlohmann::json e = {{"file", path}};
      auto pc = eval::PositionConsistency(*j);
      e["position_consistency"] = {{"pairs_both_orders", pc.pairs_both_orders}, {"consistent", pc.consistent}, {"rate", pc.rate()}};
      if (human) {
        auto jh = eval::JudgeHumanAgreement(*j, *human);
        e["judge_human"] = ToJson(jh);
        lines.push_back(Line("judge vs human: " + path.substr(path.find_last_of('/') + 1), jh));
      }
      lines.push_back(pc.pairs_both_orders ? fmt::format("  position consistency {:.1f}% ({}/{} pairs judged in both orders)", 100 * pc.rate(),
                                                         pc.consistent, pc.pairs_both_orders)
                                           : "  position consistency: no pair was judged in both orders");
      out["judges"].push_back(std::move(e));
    }
    if (o->json) {
      std::printf("%s\n", out.dump(1).c_str());
      return 0;
    }
    std::printf("%-44s %-21s   %-21s\n", "", "with ties", "without ties");
    for (const auto& l : lines) std::printf("%s\n", l.c_str());
    return 0;
  };
}

}  // namespace lms::app
