// A Jinja template interpreter covering what Hugging Face chat templates use.
//
// Parsing and rendering follow jinja2 3.1 as HF configures it for chat templates
// (ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True, loop controls,
// `tojson` = json.dumps(ensure_ascii=False), globals raise_exception and strftime_now):
// output is byte-identical for the templates in tests/data/chat/. Undefined variables render
// as "" and are falsy; using one in arithmetic, as an object or a callee is an error.
//
// Supported: {{ }}, {% %}, {# #}, whitespace control; if/elif/else, for (loop.*, `for … if`,
// else, break/continue), set (plain, tuple, ns.attr, block with filters), macro (defaults,
// keyword args), with, filter blocks, raw, generation; the filters and tests listed in
// core/jinja/filters.cpp; str/dict/list methods listed in core/jinja/ops.cpp; globals range,
// namespace, dict, raise_exception, strftime_now. Anything else (include, extends, call
// blocks, unknown filters…) is a parse error naming the construct and its line:column.
//
// Thread-safety: a parsed Template is immutable; Render may run concurrently.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/util/status.h"

namespace lms::jinja {

struct Program;
class Value;

struct ParseOptions {
  bool trim_blocks = true;    // drop the first newline after a block/comment tag
  bool lstrip_blocks = true;  // drop spaces/tabs before a block/comment tag at line start
};

struct RenderOptions {
  // What strftime_now() formats; nullopt: the current local time.
  std::optional<std::tm> now;
  // Rendering stops with an error past these (runaway loops / recursion in a template).
  size_t max_output_bytes = size_t{64} << 20;
  uint64_t max_steps = 5'000'000;  // statements, expressions and loop iterations evaluated
};

class Template {
 public:
  // Syntax errors: InvalidArgument "line L:C: what was wrong".
  static Result<Template> Parse(std::string_view source, const ParseOptions& options = {});

  // `context` must be a JSON object; its keys become template variables. With
  // nlohmann::ordered_json, dict iteration and tojson keep the caller's key order (as Python
  // dicts do); nlohmann::json sorts keys. Runtime errors (including raise_exception):
  // InvalidArgument "line L:C: what".
  Result<std::string> Render(const nlohmann::json& context, const RenderOptions& options = {}) const;
  Result<std::string> Render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

 private:
  Result<std::string> RenderValue(const Value& context, const RenderOptions& options) const;
  std::shared_ptr<const Program> program_;
};

}  // namespace lms::jinja
