// lmstation db — the record: list runs, export tables as CSV or JSON, print the database path,
// import and export FastChat judgment files.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/db_fastchat.h"
#include "core/store/store.h"

namespace lms::app {

Result<std::unique_ptr<store::Store>> OpenStore(const std::string& db_flag) {
  return store::Store::Open(db_flag.empty() ? store::DefaultDatabasePath() : db_flag);
}

CommandFn AddDbCommand(CLI::App& cli) {
  struct Opts {
    std::string db, table, format = "csv", out;
    bool json = false;
    FastChatDbOptions fastchat;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("db", "The results database: list runs, export tables, import/export FastChat judgments");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  sub->require_subcommand(1);
  auto* runs = sub->add_subcommand("runs", "List runs (id, kind, status, times)");
  runs->add_flag("--json", o->json, "Print JSON");
  auto* exp = sub->add_subcommand("export", "Print a table as CSV or JSON");
  exp->add_option("table", o->table, "models, runs, metrics, question_sets, questions, contestants, answers, judgments, battles, ratings, rating_entries, rating_battles, chat_turns")->required();
  exp->add_option("--format", o->format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  exp->add_option("-o,--output", o->out, "Write to this file instead of stdout");
  auto* path = sub->add_subcommand("path", "Print the database path");
  AddFastChatDbSubcommands(sub, &o->fastchat);
  return [o, runs, exp, path]() {
    const std::string file = o->db.empty() ? store::DefaultDatabasePath() : o->db;
    if (path->parsed()) {
      std::printf("%s\n", file.c_str());
      return 0;
    }
    auto st = OpenStore(o->db);
    if (!st.ok()) return Fail(st.status());
    if (int rc = RunFastChatDbSubcommand(**st, o->fastchat); rc >= 0) return rc;
    if (runs->parsed()) {
      auto list = (*st)->ListRuns();
      if (!list.ok()) return Fail(list.status());
      if (o->json) {
        nlohmann::ordered_json arr = nlohmann::ordered_json::array();
        for (const auto& r : *list) {
          arr.push_back({{"id", r.id}, {"kind", r.kind}, {"name", r.name}, {"status", r.status}, {"started_at", r.started_at},
                         {"finished_at", r.finished_at}, {"version", r.version}, {"config", nlohmann::json::parse(r.config, nullptr, false)}});
        }
        std::printf("%s\n", arr.dump(1).c_str());
      } else {
        std::printf("%5s  %-12s  %-9s  %-24s  %-24s  %s\n", "id", "kind", "status", "started", "finished", "name");
        for (const auto& r : *list) {
          std::printf("%5lld  %-12s  %-9s  %-24s  %-24s  %s\n", static_cast<long long>(r.id), r.kind.c_str(), r.status.c_str(),
                      r.started_at.c_str(), r.finished_at.c_str(), r.name.c_str());
        }
      }
      return 0;
    }
    if (exp->parsed()) {
      auto t = (*st)->ExportTable(o->table);
      if (!t.ok()) return Fail(t.status());
      const std::string text = o->format == "json" ? store::TableToJson(*t) : store::TableToCsv(*t);
      if (o->out.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
      } else {
        std::ofstream f(o->out, std::ios::binary);
        f << text;
        if (!f) return Fail(Status::IoError(fmt::format("cannot write '{}'", o->out)));
      }
      return 0;
    }
    return 0;
  };
}

}  // namespace lms::app
