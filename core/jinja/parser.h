// Recursive-descent parser for the Jinja subset, following jinja2's grammar and operator
// precedence (filters and `is` tests bind tighter than arithmetic; `**` is left-associative;
// `a if c else b`; chained comparisons).
#pragma once

#include <string>
#include <vector>

#include "core/jinja/ast.h"
#include "core/jinja/lexer.h"

namespace lms::jinja {

// Throws TemplateError with the line and column of the offending token; unsupported tags,
// filters and tests are reported by name.
NodeList ParseTokens(std::vector<Token> tokens);

// Names the interpreter implements (checked at parse time, as jinja2 does).
bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);

}  // namespace lms::jinja
