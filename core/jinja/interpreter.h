// Tree-walking evaluator for parsed templates (internal to core/jinja).
#pragma once

#include <string>

#include "core/jinja/ast.h"
#include "core/jinja/template.h"
#include "core/jinja/value.h"

namespace lms::jinja {

struct Program {
  NodeList root;
};

// Renders `root` with the variables of `context` (a Dict value). Throws TemplateError with the
// position of the failing node.
std::string RenderProgram(const NodeList& root, const Value& context, const RenderOptions& options);

}  // namespace lms::jinja
