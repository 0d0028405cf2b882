// Helpers shared by the jinja interpreter tests.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/jinja/template.h"

namespace lms::jinja::testing {

// A template, its context (JSON object text) and the output Python jinja2 3.1 produced for it
// in Hugging Face's chat-template environment (trim_blocks, lstrip_blocks, loopcontrols,
// tojson = json.dumps(ensure_ascii=False)).
struct RenderCase {
  const char* tmpl;
  const char* context;
  const char* expected;
};

// Renders `tmpl` with `context_json`; on failure returns "ERROR: <status message>".
inline std::string RenderOrError(const std::string& tmpl, const std::string& context_json = "{}") {
  auto t = Template::Parse(tmpl);
  if (!t.ok()) return "ERROR: " + t.status().message();
  auto out = t->Render(nlohmann::ordered_json::parse(context_json));
  if (!out.ok()) return "ERROR: " + out.status().message();
  return *out;
}

}  // namespace lms::jinja::testing
