// Jinja interpreter: whitespace control: -, +, trim_blocks, lstrip_blocks, comments.
// Each expected string is what Python jinja2 3.1.6 rendered for the same template and context
// in HF's chat-template environment (see jinja_test_util.h); the table was produced by running
// the cases through jinja2, not written by hand.
#include <catch2/catch.hpp>

#include "tests/core/jinja/jinja_test_util.h"

namespace {

using lms::jinja::testing::RenderCase;
using lms::jinja::testing::RenderOrError;

const RenderCase kCases[] = {
    {"a\n{% if true %}\nb\n{% endif %}\nc",
     "{}",
     "a\nb\nc"},
    {"a\n    {% if true %}\n    b\n    {% endif %}\n    c\n",
     "{}",
     "a\n    b\n    c"},
    {"  {{ x }}  \n  {% if true %}y{% endif %}  \n",
     "{\"x\": 1}",
     "  1  \ny  "},
    {"a  {%- if true -%}  b  {%- endif -%}  c",
     "{}",
     "abc"},
    {"a\n  {{- x -}}  \nb",
     "{\"x\": 1}",
     "a1b"},
    {"a\n  {%+ if true %}x{% endif +%}\nb",
     "{}",
     "a\n  x\nb"},
    {"{% for i in [1, 2] %}\n  item {{ i }}\n{% endfor %}\n",
     "{}",
     "  item 1\n  item 2\n"},
    {"x {% if true %}\ny{% endif %}",
     "{}",
     "x y"},
    {"line1\n{# a comment #}\nline2\n  {# indented comment #}\nline3",
     "{}",
     "line1\nline2\nline3"},
    {"{%- for m in ['a', 'b'] %}\n    {{- m }}\n{%- endfor %}\n",
     "{}",
     "ab"},
    {"\t{% if true %}tab{% endif %}\n\t\t{{ 'v' }}",
     "{}",
     "tab\t\tv"},
    {"text\r\nmore\r\n{% if true %}\r\nin\r\n{% endif %}\r\n",
     "{}",
     "text\nmore\nin\n"},
    {"{{ 'a' }}\n{{ 'b' }}\n",
     "{}",
     "a\nb"},
    {"{% if true %}   \n  x{% endif %}",
     "{}",
     "   \n  x"},
    {"a{% if true %} {% endif %}\n  {% if true %}b{% endif %}",
     "{}",
     "a b"},
    {"{% set x = 1 %}\n\n{{ x }}\n\n",
     "{}",
     "\n1\n"},
    {"{{- '  lead' }}  {{ 'mid' -}}  \n  {{ 'end' }}",
     "{}",
     "  lead  midend"},
};

}  // namespace

TEST_CASE("jinja whitespace render like Python jinja2", "[jinja][whitespace]") {
  for (const RenderCase& c : kCases) {
    INFO("template: " << c.tmpl << "\ncontext: " << c.context);
    CHECK(RenderOrError(c.tmpl, c.context) == c.expected);
  }
}

TEST_CASE("jinja trim_blocks and lstrip_blocks can be switched off", "[jinja][whitespace]") {
  // Expected strings from Python jinja2.Environment(trim_blocks=…, lstrip_blocks=…).
  const char* src = "a\n  {% if true %}\n  b\n  {% endif %}\n  c\n{# c #}\nd";
  struct Mode {
    bool trim, lstrip;
    const char* expected;
  } modes[] = {
      {false, false, "a\n  \n  b\n  \n  c\n\nd"},
      {true, false, "a\n    b\n    c\nd"},
      {false, true, "a\n\n  b\n\n  c\n\nd"},
  };
  for (const Mode& m : modes) {
    lms::jinja::ParseOptions opts;
    opts.trim_blocks = m.trim;
    opts.lstrip_blocks = m.lstrip;
    auto t = lms::jinja::Template::Parse(src, opts);
    REQUIRE(t.ok());
    auto out = t->Render(nlohmann::json::object());
    REQUIRE(out.ok());
    INFO("trim_blocks=" << m.trim << " lstrip_blocks=" << m.lstrip);
    CHECK(*out == m.expected);
  }
}
