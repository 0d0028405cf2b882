#include "core/jinja/string_util.h"

#include <algorithm>

#include "core/jinja/value.h"

namespace lms::jinja {

bool IsPyWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || (c >= 0x1c && c <= 0x1f);
}

namespace {
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }
char ToUpper(char c) { return IsLower(c) ? static_cast<char>(c - 32) : c; }
char ToLower(char c) { return IsUpper(c) ? static_cast<char>(c + 32) : c; }
}  // namespace

std::string StripString(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  if (!chars) {
    size_t b = 0, e = s.size();
    if (left)
      while (b < e && IsPyWhitespace(s[b])) ++b;
    if (right)
      while (e > b && IsPyWhitespace(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
  }
  // Strip whole code points that occur in `chars`.
  std::vector<size_t> offs = Utf8Offsets(s);
  std::vector<size_t> set_offs = Utf8Offsets(*chars);
  auto in_set = [&](size_t i) {
    std::string_view cp = s.substr(offs[i], offs[i + 1] - offs[i]);
    for (size_t k = 0; k + 1 < set_offs.size(); ++k)
      if (std::string_view(*chars).substr(set_offs[k], set_offs[k + 1] - set_offs[k]) == cp) return true;
    return false;
  };
  size_t b = 0, e = offs.size() - 1;
  if (left)
    while (b < e && in_set(b)) ++b;
  if (right)
    while (e > b && in_set(e - 1)) --e;
  return std::string(s.substr(offs[b], offs[e] - offs[b]));
}

std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToUpper(c);
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

std::string PyTitle(std::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    if (IsAlpha(c)) {
      c = prev_cased ? ToLower(c) : ToUpper(c);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string JinjaTitle(std::string_view s) {
  // jinja2: "".join(w[0].upper() + w[1:].lower() for w in re.split(r"([-\s({\[<]+)", s) if w)
  std::string out(s);
  bool word_start = true;
  for (char& c : out) {
    bool sep = c == '-' || IsPyWhitespace(c) || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      word_start = true;
      continue;
    }
    c = word_start ? ToUpper(c) : ToLower(c);
    word_start = false;
  }
  return out;
}

std::string Capitalize(std::string_view s) {
  std::string out = AsciiLower(s);
  if (!out.empty()) out[0] = ToUpper(out[0]);
  return out;
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && IsPyWhitespace(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && IsPyWhitespace(s[e - 1])) --e;
        out.emplace_back(s.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !IsPyWhitespace(s[j])) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t pos = s.find(*sep, start);
    if (pos == std::string_view::npos) break;
    out.emplace_back(s.substr(start, pos - start));
    start = pos + sep->size();
  }
  out.emplace_back(s.substr(start));
  return out;
}

std::vector<std::string> PyRSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return PySplit(s, sep, maxsplit);
  std::vector<std::string> rev;
  if (!sep) {
    size_t e = s.size();
    while (true) {
      while (e > 0 && IsPyWhitespace(s[e - 1])) --e;
      if (e == 0) break;
      if (static_cast<int64_t>(rev.size()) == maxsplit) {
        size_t b = 0;
        while (b < e && IsPyWhitespace(s[b])) ++b;
        rev.emplace_back(s.substr(b, e - b));
        break;
      }
      size_t b = e;
      while (b > 0 && !IsPyWhitespace(s[b - 1])) --b;
      rev.emplace_back(s.substr(b, e - b));
      e = b;
    }
  } else {
    size_t end = s.size();
    while (static_cast<int64_t>(rev.size()) < maxsplit && end >= sep->size()) {
      size_t pos = s.rfind(*sep, end - sep->size());
      if (pos == std::string_view::npos) break;
      rev.emplace_back(s.substr(pos + sep->size(), end - pos - sep->size()));
      end = pos;
    }
    rev.emplace_back(s.substr(0, end));
  }
  std::reverse(rev.begin(), rev.end());
  return rev;
}

std::vector<std::string> SplitLines(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      out.emplace_back(s.substr(start, i - start));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string ReplaceString(std::string_view s, std::string_view old_sub, std::string_view new_sub, int64_t count) {
  std::string out;
  if (old_sub.empty()) {
    // Python inserts `new` before every code point and at the end.
    std::vector<size_t> offs = Utf8Offsets(s);
    const size_t n = offs.size() - 1;
    int64_t done = 0;
    for (size_t i = 0; i <= n; ++i) {
      if (count < 0 || done < count) {
        out += new_sub;
        ++done;
      }
      if (i < n) out.append(s.substr(offs[i], offs[i + 1] - offs[i]));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t pos = s.find(old_sub, start);
    if (pos == std::string_view::npos) break;
    out.append(s.substr(start, pos - start));
    out.append(new_sub);
    start = pos + old_sub.size();
    ++done;
  }
  out.append(s.substr(start));
  return out;
}

int64_t CountSubstring(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(Utf8Length(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

bool AsciiClassify(std::string_view s, const std::string& method) {
  if (s.empty()) return false;
  if (method == "isupper" || method == "islower") {
    bool any_cased = false;
    for (char c : s) {
      if (method == "isupper" ? IsLower(c) : IsUpper(c)) return false;
      any_cased = any_cased || IsAlpha(c);
    }
    return any_cased;
  }
  for (char c : s) {
    bool ok = method == "isdigit"   ? (c >= '0' && c <= '9')
              : method == "isalpha" ? IsAlpha(c)
              : method == "isalnum" ? (IsAlpha(c) || (c >= '0' && c <= '9'))
                                    : IsPyWhitespace(c);
    if (!ok) return false;
  }
  return true;
}

}  // namespace lms::jinja
