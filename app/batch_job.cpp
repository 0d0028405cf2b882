#include "app/batch_job.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace lms::app {
namespace {

namespace fs = std::filesystem;

std::string NumberText(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v > -1e15 && v < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return fmt::format("{}", v);
}

// One option value as command-line text, or an error naming what is wrong with it.
Result<std::string> ScalarText(const toml::node& n) {
  if (auto s = n.value_exact<std::string>()) return *s;
  if (auto i = n.value_exact<int64_t>()) return std::to_string(*i);
  if (auto d = n.value_exact<double>()) return NumberText(*d);
  return Status::InvalidArgument("must be a string or a number");
}

}  // namespace

Result<std::string> ExpandBatchVars(const std::string& s, const std::string& workdir, const std::string& jobdir,
                                    const std::string& assets) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '$') {
      out += s[i];
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (i + 1 >= s.size() || s[i + 1] != '{') {
      return Status::InvalidArgument(fmt::format("'$' must start ${{workdir}}, ${{jobdir}}, ${{assets}} or $$ in \"{}\"", s));
    }
    const size_t close = s.find('}', i + 2);
    if (close == std::string::npos) return Status::InvalidArgument(fmt::format("unclosed ${{ in \"{}\"", s));
    const std::string var = s.substr(i + 2, close - i - 2);
    if (var == "workdir") {
      out += workdir;
    } else if (var == "jobdir") {
      out += jobdir;
    } else if (var == "assets") {
      out += assets;
    } else {
      return Status::InvalidArgument(
          fmt::format("unknown variable ${{{}}} (known: ${{workdir}}, ${{jobdir}}, ${{assets}})", var));
    }
    i = close;
  }
  return out;
}

Result<BatchJob> LoadBatchJob(const std::string& path, const BatchPaths& paths) {
  BatchJob job;
  job.file = path;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::NotFound(fmt::format("cannot read job file {}", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    job.text = ss.str();
  }
  toml::table t;
  try {
    t = toml::parse(job.text, path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}: line {}: {}", path, e.source().begin.line, e.description()));
  }
  auto fail = [&](const std::string& what) { return Status::InvalidArgument(fmt::format("{}: {}", path, what)); };
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key != "name" && key != "workdir" && key != "db" && key != "step") {
      return fail(fmt::format("unknown key '{}' (known: name, workdir, db, [[step]])", key));
    }
  }
  auto top_string = [&](const char* key, std::string& out) -> Status {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    auto s = n->value_exact<std::string>();
    if (!s) return fail(fmt::format("'{}' must be a string", key));
    out = *s;
    return Status::Ok();
  };
  std::string workdir_raw, db_raw;
  LMS_RETURN_IF_ERROR(top_string("name", job.name));
  LMS_RETURN_IF_ERROR(top_string("workdir", workdir_raw));
  LMS_RETURN_IF_ERROR(top_string("db", db_raw));
  if (job.name.empty()) job.name = fs::path(path).stem().string();
  for (char c : job.name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return fail("'name' must not contain slashes or control characters");
  }

  std::error_code ec;
  const std::string jobdir = fs::absolute(fs::path(path), ec).parent_path().lexically_normal().string();
  // The workdir may not refer to itself; the other variables may.
  if (workdir_raw.find("${workdir}") != std::string::npos) return fail("'workdir' cannot use ${workdir}");
  auto wd = ExpandBatchVars(workdir_raw.empty() ? "lmstation-" + job.name : workdir_raw, "", jobdir, paths.assets);
  if (!wd.ok()) return fail("workdir: " + wd.status().message());
  fs::path wdp(*wd);
  if (wdp.is_relative()) wdp = fs::path(paths.cwd) / wdp;
  job.workdir = wdp.lexically_normal().string();
  while (job.workdir.size() > 1 && job.workdir.back() == '/') job.workdir.pop_back();
  auto expand = [&](const std::string& s) { return ExpandBatchVars(s, job.workdir, jobdir, paths.assets); };
  if (!db_raw.empty()) {
    auto db = expand(db_raw);
    if (!db.ok()) return fail("db: " + db.status().message());
    job.db = *db;
  }

  const toml::node* steps = t.get("step");
  if (!steps) return fail("no steps: add at least one [[step]] table");
  const toml::array* arr = steps->as_array();
  if (!arr || !arr->is_array_of_tables()) return fail("'step' must be an array of tables: write each as [[step]]");
  if (arr->empty()) return fail("no steps: add at least one [[step]] table");
  int index = 0;
  for (const toml::node& node : *arr) {
    const toml::table& st = *node.as_table();
    BatchStep step;
    step.index = ++index;
    auto step_fail = [&](const std::string& what) {
      const std::string label = step.name.empty() ? step.command : step.name;
      return fail(fmt::format("step {}{}: {}", step.index, label.empty() ? "" : " (" + label + ")", what));
    };
    if (const toml::node* r = st.get("run")) {
      auto s = r->value_exact<std::string>();
      if (!s || s->empty()) return step_fail("'run' must name an lmstation subcommand, e.g. run = \"answer\"");
      step.command = *s;
    } else {
      return step_fail("missing 'run' (the lmstation subcommand to run)");
    }
    if (const toml::node* n = st.get("name")) {
      auto s = n->value_exact<std::string>();
      if (!s || s->empty()) return step_fail("'name' must be a non-empty string");
      step.name = *s;
    } else {
      step.name = step.command;
    }
    if (const toml::node* n = st.get("seconds")) {
      auto d = n->value<double>();
      if (!d || !(*d > 0) || *d > 7 * 24 * 3600.0) return step_fail("'seconds' must be a number of seconds > 0");
      if (step.command != "serve") return step_fail("'seconds' applies to serve steps only");
      step.seconds = *d;
    } else if (step.command == "serve") {
      return step_fail("a serve step needs 'seconds' (how long to serve before stopping)");
    }
    // The positional arguments, then the options in the file's key order (positionals first so
    // that a nested subcommand such as `db runs` comes before its own options).
    std::vector<std::string> positional;
    for (const auto& [k, v] : st) {
      const std::string key(k.str());
      if (key == "run" || key == "name" || key == "seconds") continue;
      if (key == "args") {
        const toml::array* a = v.as_array();
        if (!a) return step_fail("'args' must be an array, e.g. args = [\"smollm2\"]");
        for (const toml::node& e : *a) {
          auto text = ScalarText(e);
          if (!text.ok()) return step_fail("args: every element " + text.status().message());
          auto x = expand(*text);
          if (!x.ok()) return step_fail("args: " + x.status().message());
          positional.push_back(*x);
        }
        continue;
      }
      if (key.empty() || key[0] == '-' || key.find_first_of(" =") != std::string::npos) {
        return step_fail(fmt::format("'{}' is not an option name (write it without dashes)", key));
      }
      const std::string flag = (key.size() == 1 ? "-" : "--") + key;
      auto add_value = [&](const toml::node& e) -> Status {
        if (auto b = e.value_exact<bool>()) {
          if (*b) step.args.push_back(flag);
          return Status::Ok();
        }
        auto text = ScalarText(e);
        if (!text.ok()) return step_fail(fmt::format("'{}' {} (or true/false)", key, text.status().message()));
        auto x = expand(*text);
        if (!x.ok()) return step_fail(fmt::format("'{}': {}", key, x.status().message()));
        step.args.push_back(flag);
        step.args.push_back(*x);
        return Status::Ok();
      };
      if (const toml::array* a = v.as_array()) {
        for (const toml::node& e : *a) LMS_RETURN_IF_ERROR(add_value(e));
      } else if (v.is_table()) {
        return step_fail(fmt::format("'{}' is a table; options take strings, numbers, booleans or arrays", key));
      } else {
        LMS_RETURN_IF_ERROR(add_value(v));
      }
    }
    step.args.insert(step.args.begin(), positional.begin(), positional.end());
    job.steps.push_back(std::move(step));
  }
  return job;
}

}  // namespace lms::app
