// A thin RAII layer over the SQLite C API: a connection and prepared statements that report
// errors as Status (with SQLite's message and the SQL that failed). Not thread-safe: one
// Database per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace lms::store {

// A column value as read back: NULL, integer, real or text (blobs are read as text).
using Value = std::variant<std::monostate, int64_t, double, std::string>;
std::string ValueToString(const Value& v);  // "" for NULL

class Statement {
 public:
  Statement(Statement&&) noexcept;
  Statement& operator=(Statement&&) noexcept;
  ~Statement();

  // 1-based parameter indices, as in SQLite.
  Statement& Bind(int index, int64_t v);
  Statement& Bind(int index, double v);
  Statement& Bind(int index, std::string_view v);
  Statement& Bind(int index, const char* v) { return Bind(index, std::string_view(v)); }
  Statement& Bind(int index, int v) { return Bind(index, static_cast<int64_t>(v)); }
  Statement& BindNull(int index);
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& v) {
    return v ? Bind(index, *v) : BindNull(index);
  }

  // true: a row is ready; false: done. Errors (a constraint, a busy database) as Status.
  Result<bool> Step();
  Status Run();  // Step until done, for statements that return no rows
  Status Reset();  // ready to bind and run again

  int columns() const;
  std::string column_name(int i) const;
  bool IsNull(int i) const;
  int64_t Int(int i) const;
  double Real(int i) const;
  std::string Text(int i) const;
  Value Get(int i) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* s, std::string sql) : db_(db), stmt_(s), sql_(std::move(sql)) {}
  Status Error(int rc) const;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
  Status bind_error_;
};

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

class Database {
 public:
  // Opens or creates `path` (":memory:" for a private in-memory database).
  static Result<std::unique_ptr<Database>> Open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Status Exec(std::string_view sql);  // one or more statements, no results
  Result<Statement> Prepare(std::string_view sql);
  Result<Table> Query(std::string_view sql);  // all rows of one statement
  int64_t LastInsertId() const;
  int Changes() const;
  const std::string& path() const { return path_; }

  // BEGIN IMMEDIATE … COMMIT; rolls back when `body` fails.
  template <typename Fn>
  Status Transaction(Fn&& body) {
    LMS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s = body();
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

 private:
  Database() = default;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace lms::store
