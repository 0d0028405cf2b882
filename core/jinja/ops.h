// Python/Jinja2 semantics of the operations the interpreter performs on values: attribute and
// item access (jinja2's getattr/getitem fallbacks), slicing, iteration, arithmetic,
// comparisons, membership, the string/dict/list methods templates call, and the filters and
// tests. All throw TemplateError on type errors, like Python's TypeError.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/jinja/value.h"

namespace lms::jinja {

// Throws the error an Undefined carries ("'x' is undefined").
[[noreturn]] void ThrowUndefined(const Value& v);

// obj.name: dict methods (items/keys/values/get) win over keys, as Python getattr does; then
// the key; then Undefined. Accessing anything on Undefined throws.
Value GetAttr(const Value& obj, const std::string& name);
// obj[key]: key first, then methods, then Undefined (never throws except on Undefined obj).
Value GetItem(const Value& obj, const Value& key);
Value SliceValue(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Items of a for loop / filter input: list items, dict keys, string code points; Undefined
// iterates as empty.
std::vector<Value> Iterate(const Value& v);

// op in + - * / // % ** ~
Value BinaryOp(const std::string& op, const Value& a, const Value& b);
// op in == != < <= > >= in notin
bool CompareOp(const std::string& op, const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);
// Python ordering for sort/min/max: -1, 0, 1. Throws for unorderable pairs.
int Compare(const Value& a, const Value& b);

// Filters and tests by jinja2 name.
Value ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
bool ApplyTest(const std::string& name, const Value& v, CallArgs& args);

// Binds call arguments to named parameters (positional first, then keywords); throws for
// unknown keywords or too many positionals. `what` names the callee in errors.
std::vector<std::optional<Value>> BindArgs(const std::string& what, CallArgs& args,
                                           const std::vector<std::string>& params);

}  // namespace lms::jinja
