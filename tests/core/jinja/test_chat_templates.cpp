// Real models' chat templates must render byte-identically to Hugging Face's jinja2
// environment. Expected outputs live in tests/data/chat/expected/ (made by
// tests/tools/render_chat_fixtures.py); the third-party templates themselves are read from the
// shared data directory and the test skips when it is absent.
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/model/chat_template.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

const fs::path kChatData = fs::path(LMS_SOURCE_DIR) / "tests" / "data" / "chat";

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::tm FixtureDate(const std::string& ymd) {  // "2024-07-26"
  std::tm tm{};
  tm.tm_year = std::stoi(ymd.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(ymd.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(ymd.substr(8, 2));
  tm.tm_hour = 12;
  return tm;
}

}  // namespace

TEST_CASE("real chat templates render exactly like HF's jinja2", "[jinja][chat]") {
  const ordered_json sets = ordered_json::parse(ReadFile(kChatData / "message_sets.json"));
  const auto shared = lms::test::SharedDataDir();
  const bool have_shared = shared && fs::is_directory(fs::path(*shared) / "chat_templates");
  int templates = 0, cases = 0, skipped = 0;
  std::set<std::string> covered;
  for (const auto& entry : fs::directory_iterator(kChatData / "expected")) {
    const ordered_json fx = ordered_json::parse(ReadFile(entry.path()));
    const std::string name = fx["template"].get<std::string>();
    covered.insert(name);
    fs::path tmpl_path = fx["template_origin"] == "shared" ? fs::path(shared.value_or("")) / "chat_templates" / name
                                                           : kChatData / name;
    if (fx["template_origin"] == "shared" && !have_shared) {
      ++skipped;
      continue;
    }
    REQUIRE(fs::exists(tmpl_path));
    auto tmpl = lms::ChatTemplate::FromSource(ReadFile(tmpl_path), fx["bos_token"], fx["eos_token"]);
    INFO("template " << name);
    REQUIRE(tmpl.ok());
    lms::jinja::RenderOptions opts;
    opts.now = FixtureDate(fx["now"]);
    tmpl->set_render_options(opts);
    ++templates;
    for (const auto& c : fx["cases"]) {
      const ordered_json& spec = sets.at(c["messages"].get<std::string>());
      ordered_json extra = fx["extra_context"];
      extra["tools"] = spec.value("tools", ordered_json(nullptr));
      extra["documents"] = spec.value("documents", ordered_json(nullptr));
      auto out = tmpl->Apply(spec["messages"], c["add_generation_prompt"].get<bool>(), extra);
      INFO("case " << c["messages"] << " add_generation_prompt=" << c["add_generation_prompt"]);
      ++cases;
      if (c.contains("error")) {
        INFO("jinja2 raised: " << c["error"]);
        CHECK_FALSE(out.ok());
      } else {
        INFO((out.ok() ? std::string() : out.status().message()));
        REQUIRE(out.ok());
        CHECK(*out == c["expected"].get<std::string>());
      }
    }
  }
  if (!have_shared) {
    WARN("SKIPPED " << skipped << " templates: shared data (chat_templates) not found");
  } else {
    // Every shared template has fixtures (re-run the generator after adding one).
    for (const auto& entry : fs::directory_iterator(fs::path(*shared) / "chat_templates")) {
      if (entry.path().extension() != ".jinja") continue;
      INFO("no fixture for " << entry.path().filename());
      CHECK(covered.count(entry.path().filename().string()) == 1);
    }
    CHECK(templates >= 18);
  }
  CHECK(cases >= 16);  // SmolLM2's fixture always runs
}

TEST_CASE("ChatTemplate applies typed messages and extra context", "[jinja][chat]") {
  auto tmpl = lms::ChatTemplate::FromSource(ReadFile(kChatData / "SmolLM2-135M-Instruct.jinja"), "", "");
  REQUIRE(tmpl.ok());
  std::vector<lms::ChatMessage> msgs = {{"user", "Hi there", {}}};
  auto out = tmpl->Apply(msgs, true);
  REQUIRE(out.ok());
  CHECK(*out ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
  msgs.insert(msgs.begin(), lms::ChatMessage{"system", "Be brief.", {}});
  out = tmpl->Apply(msgs, false);
  REQUIRE(out.ok());
  CHECK(*out == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n");

  // Extras and extra context reach the template; bos/eos come from the model.
  auto custom = lms::ChatTemplate::FromSource(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.name }};{% endfor %}"
      "{{ tools is none }}{{ flag }}{{ eos_token }}",
      "<B>", "<E>");
  REQUIRE(custom.ok());
  lms::ChatMessage tool{"tool", "42", nlohmann::ordered_json{{"name", "calc"}}};
  out = custom->Apply(std::vector<lms::ChatMessage>{tool}, false);
  REQUIRE(out.ok());
  CHECK(*out == "<B>tool:42:calc;True<E>");
  out = custom->Apply(nlohmann::json::array({{{"role", "user"}, {"content", "x"}}}), true,
                      nlohmann::json{{"flag", "!"}, {"tools", nlohmann::json::array()}});
  REQUIRE(out.ok());
  CHECK(*out == "<B>user:x:;False!<E>");
}

TEST_CASE("ChatTemplate reports bad input and template errors", "[jinja][chat]") {
  auto tmpl = lms::ChatTemplate::FromSource(
      "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok", "", "");
  REQUIRE(tmpl.ok());
  auto out = tmpl->Apply(nlohmann::json::array({{{"role", "system"}, {"content", "x"}}}), true);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().message().find("System role not supported") != std::string::npos);
  CHECK_FALSE(tmpl->Apply(nlohmann::json::object(), true).ok());                       // not an array
  CHECK_FALSE(tmpl->Apply(nlohmann::json::array({1, 2}), true).ok());                  // not objects
  CHECK_FALSE(tmpl->Apply(nlohmann::json::array(), true, nlohmann::json(3)).ok());     // extra not an object

  auto bad = lms::ChatTemplate::FromSource("{% for m in messages %}{{ m | frobnicate }}{% endfor %}", "", "");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("line 1:") != std::string::npos);
  CHECK(bad.status().message().find("frobnicate") != std::string::npos);
}

TEST_CASE("DefaultChatMlTemplate renders ChatML", "[jinja][chat]") {
  auto tmpl = lms::ChatTemplate::FromSource(lms::DefaultChatMlTemplate(), "", "");
  REQUIRE(tmpl.ok());
  auto msgs = nlohmann::json::array({{{"role", "system"}, {"content", "S"}},
                                     {{"role", "user"}, {"content", "U"}},
                                     {{"role", "assistant"}, {"content", nullptr}}});
  auto out = tmpl->Apply(msgs, false);
  REQUIRE(out.ok());
  CHECK(*out == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n");
  out = tmpl->Apply(nlohmann::json::array({{{"role", "user"}, {"content", "U"}}}), true);
  REQUIRE(out.ok());
  CHECK(*out == "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}
