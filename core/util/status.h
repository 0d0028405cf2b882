// Status and Result<T>: how fallible core calls report errors. No exception crosses a core API.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace lms {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from the caller or a file: the message names what was wrong
  kNotFound,
  kIoError,
  kUnsupported,      // valid input we do not handle (an unknown tensor type, architecture…)
  kOutOfRange,
  kResourceExhausted,
  kCancelled,
  kInternal,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: tensor 'x' extends past the end of the file"
  std::string ToString() const;
  // Prefix context: s.WithContext("loading model.gguf") -> "loading model.gguf: <message>".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T>: a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {    // NOLINT(implicit)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lms

#define LMS_CONCAT_INNER(a, b) a##b
#define LMS_CONCAT(a, b) LMS_CONCAT_INNER(a, b)

// Return the status from the enclosing function if it is not OK.
#define LMS_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::lms::Status lms_status_ = (expr);            \
    if (!lms_status_.ok()) return lms_status_;     \
  } while (0)

// LMS_ASSIGN_OR_RETURN(auto x, MakeX()); — assigns the value or returns the status.
#define LMS_ASSIGN_OR_RETURN(lhs, expr) LMS_ASSIGN_OR_RETURN_IMPL(LMS_CONCAT(lms_result_, __LINE__), lhs, expr)
#define LMS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
