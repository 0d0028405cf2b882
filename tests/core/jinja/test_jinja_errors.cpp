// Jinja interpreter: syntax and runtime errors are Status values naming the construct and
// its line:column; runaway templates stop with an error instead of hanging or crashing.
#include <string>

#include <catch2/catch.hpp>

#include "tests/core/jinja/jinja_test_util.h"

using lms::jinja::Template;
using lms::jinja::testing::RenderOrError;

namespace {

std::string ParseError(const std::string& src) {
  auto t = Template::Parse(src);
  if (t.ok()) return "(parsed)";
  CHECK(t.status().code() == lms::StatusCode::kInvalidArgument);
  return t.status().message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("jinja syntax errors name the problem and its position", "[jinja][errors]") {
  struct Case {
    const char* src;
    const char* expect1;
    const char* expect2;
  } cases[] = {
      {"{{ 1 + }}", "line 1:8", "unexpected '}}'"},
      {"{% if %}x{% endif %}", "line 1:7", "expected an expression"},
      {"{% for %}", "line 1:8", "expected a name"},
      {"a\n{% endif %}", "line 2:4", "unexpected 'endif'"},
      {"{% if x %}unclosed", "unexpected end of template", "'endif'"},
      {"{% for x in [1] %}{% endif %}", "line 1:22", "'endif'"},
      {"{{ x | nosuchfilter }}", "line 1:8", "unsupported filter 'nosuchfilter'"},
      {"{{ x is nosuchtest }}", "line 1:9", "unsupported test 'nosuchtest'"},
      {"line1\n  {% include 'x' %}", "line 2:6", "unsupported tag 'include'"},
      {"{% extends 'base' %}", "line 1:4", "unsupported tag 'extends'"},
      {"{% call foo() %}{% endcall %}", "line 1:4", "unsupported tag 'call'"},
      {"{% for x in y recursive %}{% endfor %}", "line 1:15", "recursive"},
      {"{{ f(*args) }}", "line 1:6", "*args"},
      {"{{ 'unterminated }}", "line 1:4", "unterminated string"},
      {"{# unclosed", "line 1:1", "'#}'"},
      {"{{ (1 }}", "line 1:7", "expected ')'"},
      {"{{ x !! y }}", "line 1:6", "unexpected character '!'"},
      {"{{ 1 }", "line 1:6", "unexpected '}'"},
      {"{% break %}", "line 1:4", "outside of a loop"},
      {"{% raw %}never closed", "line 1:1", "endraw"},
  };
  for (const Case& c : cases) {
    std::string msg = ParseError(c.src);
    INFO("template: " << c.src << "\nmessage: " << msg);
    CHECK(Contains(msg, "syntax error"));
    CHECK(Contains(msg, c.expect1));
    CHECK(Contains(msg, c.expect2));
  }
}

TEST_CASE("jinja runtime errors name the problem and its position", "[jinja][errors]") {
  struct Case {
    const char* src;
    const char* expect1;
    const char* expect2;
  } cases[] = {
      {"{{ foo.bar }}", "line 1:8", "'foo' is undefined"},
      {"{{ d.x.y }}", "line 1:8", "has no attribute 'x'"},
      {"{{ 'a' + 1 }}", "line 1:8", "can only concatenate str"},
      {"{{ x + 1 }}", "line 1:6", "'x' is undefined"},
      {"{{ nofn() }}", "line 1:8", "'nofn' is undefined"},
      {"line1\n{{ raise_exception('Roles must alternate') }}", "line 2:", "raise_exception: Roles must alternate"},
      {"{% for x in 5 %}{% endfor %}", "line 1:4", "'int' object is not iterable"},
      {"{% for x in none %}{% endfor %}", "line 1:4", "'NoneType' object is not iterable"},
      {"{% set x = 1 %}{% set x.y = 2 %}", "line 1:19", "not a namespace"},
      {"{% set a, b = [1] %}", "line 1:4", "not enough values to unpack"},
      {"{{ {'a': 1}|items|tojson }}", "filter 'tojson'", "not JSON serializable"},
      {"{{ [1]|map('string')|length }}", "filter 'length'", "has no len()"},
      {"{{ 1 / 0 }}", "line 1:6", "division by zero"},
      {"{{ 'a' < 1 }}", "line 1:4", "not supported between"},
      {"{{ x|trim(1, 2, 3) }}", "filter 'trim'", "at most 1"},
      {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "macro 'm'", "not more than 1"},
      {"{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", "macro 'm'", "no keyword argument 'b'"},
      {"{{ 'x'.nosuchmethod() }}", "line 1:", "has no attribute 'nosuchmethod'"},
      {"{{ {1: 2} }}", "line 1:", "dict literal keys must be strings"},
  };
  for (const Case& c : cases) {
    std::string msg = RenderOrError(c.src, R"({"d": {}})");
    INFO("template: " << c.src << "\nmessage: " << msg);
    CHECK(Contains(msg, "ERROR: template error"));
    CHECK(Contains(msg, c.expect1));
    CHECK(Contains(msg, c.expect2));
  }
}

TEST_CASE("jinja stops runaway templates", "[jinja][errors]") {
  CHECK(Contains(RenderOrError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "recursed too deeply"));
  CHECK(Contains(RenderOrError("{% for i in range(1000000) %}{% endfor %}"), "range() too big"));
  // 10^10 iterations of an empty body: the evaluation budget ends it (a small budget here to
  // keep the test fast; the default is RenderOptions::max_steps).
  auto nested = Template::Parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  REQUIRE(nested.ok());
  lms::jinja::RenderOptions small_budget;
  small_budget.max_steps = 200000;
  auto out = nested->Render(nlohmann::json::object(), small_budget);
  REQUIRE_FALSE(out.ok());
  CHECK(Contains(out.status().message(), "evaluation budget"));
  CHECK(Contains(RenderOrError("{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}"),
                 "size limit"));
  // Deeply nested expressions are a syntax error, not a stack overflow.
  std::string deep = "{{ ";  // appended piecewise: GCC 12 -Wrestrict misfires on "lit" + string&&
  deep.append(5000, '(').append("1").append(5000, ')').append(" }}");
  CHECK(Contains(ParseError(deep), "nested too deeply"));
  std::string deep_if;
  for (int i = 0; i < 1000; ++i) deep_if += "{% if true %}";
  CHECK(Contains(ParseError(deep_if), "nested too deeply"));
}

TEST_CASE("jinja rejects a non-object render context", "[jinja][errors]") {
  auto t = Template::Parse("x");
  REQUIRE(t.ok());
  auto out = t->Render(nlohmann::json::array());
  REQUIRE_FALSE(out.ok());
  CHECK(Contains(out.status().message(), "JSON object"));
}
