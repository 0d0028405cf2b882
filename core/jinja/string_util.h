// Python str operations used by template methods and filters. Case mapping is ASCII-only
// (chat templates transform role names and tags, not prose); everything else is UTF-8 safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lms::jinja {

// str.strip/lstrip/rstrip: whitespace, or any code point in `chars`.
std::string StripString(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
std::string AsciiUpper(std::string_view s);
std::string AsciiLower(std::string_view s);
std::string PyTitle(std::string_view s);      // str.title()
std::string JinjaTitle(std::string_view s);   // the `title` filter (words split at -, space, ( { [ <)
std::string Capitalize(std::string_view s);   // first character upper, rest lower
// str.split / str.rsplit: sep nullopt splits on whitespace runs and drops empties.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> PyRSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> SplitLines(std::string_view s);
std::string ReplaceString(std::string_view s, std::string_view old_sub, std::string_view new_sub, int64_t count);
int64_t CountSubstring(std::string_view s, std::string_view sub);
// isdigit / isalpha / isalnum / isspace / isupper / islower (ASCII classes; false if empty).
bool AsciiClassify(std::string_view s, const std::string& method);
bool IsPyWhitespace(char c);

}  // namespace lms::jinja
