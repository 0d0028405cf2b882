#include "core/jinja/template.h"

#include <new>

#include "core/jinja/interpreter.h"
#include "core/jinja/lexer.h"
#include "core/jinja/parser.h"

namespace lms::jinja {
namespace {

std::string Located(const TemplateError& e) {
  if (!e.has_position()) return e.what();
  return "line " + std::to_string(e.line()) + ":" + std::to_string(e.col()) + ": " + e.what();
}

}  // namespace

Result<Template> Template::Parse(std::string_view source, const ParseOptions& options) {
  try {
    LexOptions lex;
    lex.trim_blocks = options.trim_blocks;
    lex.lstrip_blocks = options.lstrip_blocks;
    auto program = std::make_shared<Program>();
    program->root = ParseTokens(Tokenize(source, lex));
    Template t;
    t.program_ = std::move(program);
    return t;
  } catch (const TemplateError& e) {
    return Status::InvalidArgument("template syntax error: " + Located(e));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("template parse: out of memory");
  }
}

Result<std::string> Template::RenderValue(const Value& context, const RenderOptions& options) const {
  if (!program_) return Status::Internal("Render on an empty Template");
  if (!context.is_dict()) return Status::InvalidArgument("template context must be a JSON object");
  try {
    return RenderProgram(program_->root, context, options);
  } catch (const TemplateError& e) {
    return Status::InvalidArgument("template error: " + Located(e));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("template render: out of memory");
  }
}

Result<std::string> Template::Render(const nlohmann::json& context, const RenderOptions& options) const {
  return RenderValue(Value::FromJson(context), options);
}

Result<std::string> Template::Render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  return RenderValue(Value::FromJson(context), options);
}

}  // namespace lms::jinja
