#include "core/store/lineage.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace lms::store {

namespace {

// Run ids (one column) selected by `sql` with ?1 bound to `run_id`.
Status CollectRuns(Database& db, const char* sql, int64_t run_id, std::set<int64_t>& out) {
  LMS_ASSIGN_OR_RETURN(Statement s, db.Prepare(sql));
  s.Bind(1, run_id);
  while (true) {
    LMS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    if (!s.IsNull(0) && s.Int(0) != run_id) out.insert(s.Int(0));
  }
  return Status::Ok();
}

Result<std::vector<RunInfo>> RunsById(Store& st, const std::set<int64_t>& ids) {
  LMS_ASSIGN_OR_RETURN(std::vector<RunInfo> all, st.ListRuns());
  std::vector<RunInfo> out;
  for (auto& r : all)
    if (ids.count(r.id)) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const RunInfo& a, const RunInfo& b) { return a.id < b.id; });
  return out;
}

// Records a run used: answers it judged or voted on, judgments its battles came from, battles
// its rating snapshots were computed from.
constexpr const char* kUpstream[] = {
    "SELECT DISTINCT a.run_id FROM judgments j JOIN answers a ON a.id IN (j.answer_a, j.answer_b) WHERE j.run_id = ?1",
    "SELECT DISTINCT j.run_id FROM battles b JOIN judgments j ON j.id IN (b.judgment_1, b.judgment_2) WHERE b.run_id = ?1",
    "SELECT DISTINCT b.run_id FROM ratings r JOIN rating_battles rb ON rb.rating_id = r.id JOIN battles b ON b.id = rb.battle_id "
    "WHERE r.run_id = ?1",
    "SELECT DISTINCT a.run_id FROM battles b JOIN answers a ON a.question_id = b.question_id AND a.contestant_id IN (b.contestant_a, "
    "b.contestant_b) WHERE b.run_id = ?1 AND b.judgment_1 IS NULL",
};
// The same links read the other way.
constexpr const char* kDownstream[] = {
    "SELECT DISTINCT j.run_id FROM answers a JOIN judgments j ON a.id IN (j.answer_a, j.answer_b) WHERE a.run_id = ?1",
    "SELECT DISTINCT b.run_id FROM judgments j JOIN battles b ON j.id IN (b.judgment_1, b.judgment_2) WHERE j.run_id = ?1",
    "SELECT DISTINCT r.run_id FROM battles b JOIN rating_battles rb ON rb.battle_id = b.id JOIN ratings r ON r.id = rb.rating_id "
    "WHERE b.run_id = ?1",
    "SELECT DISTINCT b.run_id FROM answers a JOIN battles b ON b.question_id = a.question_id AND a.contestant_id IN (b.contestant_a, "
    "b.contestant_b) WHERE a.run_id = ?1 AND b.judgment_1 IS NULL",
};

}  // namespace

Result<RunLineage> LoadRunLineage(Store& st, int64_t run_id) {
  Database& db = st.db();
  RunLineage out;
  {
    LMS_ASSIGN_OR_RETURN(std::vector<RunInfo> runs, RunsById(st, {run_id}));
    if (runs.empty()) return Status::NotFound(fmt::format("no run {} in the record", run_id));
    out.run = runs[0];
  }
  const std::pair<const char*, const char*> counts[] = {
      {"answers", "SELECT COUNT(*) FROM answers WHERE run_id = ?1"},
      {"judgments", "SELECT COUNT(*) FROM judgments WHERE run_id = ?1"},
      {"unparseable judgments", "SELECT COUNT(*) FROM judgments WHERE run_id = ?1 AND parsed = 0"},
      {"battles", "SELECT COUNT(*) FROM battles WHERE run_id = ?1"},
      {"rating snapshots", "SELECT COUNT(*) FROM ratings WHERE run_id = ?1"},
      {"metric points", "SELECT COUNT(*) FROM metrics WHERE run_id = ?1"},
  };
  for (const auto& [what, sql] : counts) {
    LMS_ASSIGN_OR_RETURN(Statement s, db.Prepare(sql));
    s.Bind(1, run_id);
    LMS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && s.Int(0) > 0) out.produced.emplace_back(what, s.Int(0));
  }
  {
    LMS_ASSIGN_OR_RETURN(Statement s, db.Prepare("SELECT m.name, m.value FROM metrics m WHERE m.run_id = ?1 AND m.step = "
                                                 "(SELECT MAX(step) FROM metrics WHERE run_id = ?1 AND name = m.name) ORDER BY m.name"));
    s.Bind(1, run_id);
    while (true) {
      LMS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.last_metrics.emplace_back(s.Text(0), s.Real(1));
    }
  }
  std::set<int64_t> up, down;
  for (const char* sql : kUpstream) LMS_RETURN_IF_ERROR(CollectRuns(db, sql, run_id, up));
  for (const char* sql : kDownstream) LMS_RETURN_IF_ERROR(CollectRuns(db, sql, run_id, down));
  LMS_ASSIGN_OR_RETURN(out.upstream, RunsById(st, up));
  LMS_ASSIGN_OR_RETURN(out.downstream, RunsById(st, down));
  {
    LMS_ASSIGN_OR_RETURN(
        Statement s,
        db.Prepare("SELECT name, role, path, sha256 FROM ("
                   " SELECT DISTINCT c.name, 'answered' AS role, m.path, m.sha256 FROM answers a JOIN contestants c ON c.id = a.contestant_id"
                   " LEFT JOIN models m ON m.id = c.model_id WHERE a.run_id = ?1"
                   " UNION SELECT DISTINCT c.name, 'judged', m.path, m.sha256 FROM judgments j JOIN contestants c ON c.id = j.judge_id"
                   " LEFT JOIN models m ON m.id = c.model_id WHERE j.run_id = ?1"
                   " UNION SELECT DISTINCT c.name, 'rated', m.path, m.sha256 FROM ratings r JOIN rating_entries e ON e.rating_id = r.id"
                   " JOIN contestants c ON c.id = e.contestant_id LEFT JOIN models m ON m.id = c.model_id WHERE r.run_id = ?1"
                   ") ORDER BY role, name"));
    s.Bind(1, run_id);
    while (true) {
      LMS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.models.push_back({s.Text(0), s.Text(1), s.IsNull(2) ? "" : s.Text(2), s.IsNull(3) ? "" : s.Text(3)});
    }
  }
  return out;
}

Result<std::vector<ComparisonRow>> CompareRuns(Store& st, int64_t run_a, int64_t run_b) {
  LMS_ASSIGN_OR_RETURN(RunLineage a, LoadRunLineage(st, run_a));
  LMS_ASSIGN_OR_RETURN(RunLineage b, LoadRunLineage(st, run_b));
  std::vector<ComparisonRow> rows = {
      {"kind", a.run.kind, b.run.kind},          {"name", a.run.name, b.run.name},
      {"status", a.run.status, b.run.status},    {"started", a.run.started_at, b.run.started_at},
      {"finished", a.run.finished_at, b.run.finished_at}, {"version", a.run.version, b.run.version},
  };
  // Configuration keys in order of first appearance; values as compact JSON.
  auto config_of = [](const std::string& text) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
    return j.is_object() ? j : nlohmann::ordered_json::object();
  };
  const nlohmann::ordered_json ca = config_of(a.run.config), cb = config_of(b.run.config);
  std::vector<std::string> keys;
  for (const auto& [k, v] : ca.items()) keys.push_back(k);
  for (const auto& [k, v] : cb.items())
    if (!ca.contains(k)) keys.push_back(k);
  auto shown = [](const nlohmann::ordered_json& c, const std::string& k) -> std::string {
    if (!c.contains(k)) return "";
    return c[k].is_string() ? c[k].get<std::string>() : c[k].dump();
  };
  for (const auto& k : keys) rows.push_back({"config." + k, shown(ca, k), shown(cb, k)});
  // Counts and metrics: the union of names, in order.
  auto merge = [&rows](const std::string& prefix, const auto& xs, const auto& ys, auto fmt_value) {
    std::vector<std::string> names;
    std::map<std::string, std::string> va, vb;
    for (const auto& [n, v] : xs) names.push_back(n), va[n] = fmt_value(v);
    for (const auto& [n, v] : ys) {
      if (!va.count(n)) names.push_back(n);
      vb[n] = fmt_value(v);
    }
    for (const auto& n : names) rows.push_back({prefix + n, va.count(n) ? va[n] : "", vb.count(n) ? vb[n] : ""});
  };
  merge("", a.produced, b.produced, [](int64_t v) { return std::to_string(v); });
  merge("metric ", a.last_metrics, b.last_metrics, [](double v) { return fmt::format("{:.6g}", v); });
  return rows;
}

}  // namespace lms::store
