#include "core/store/sqlite_db.h"

#include <fmt/format.h>
#include <sqlite3.h>

namespace lms::store {

std::string ValueToString(const Value& v) {
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return fmt::format("{}", std::get<double>(v));
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  return {};
}

Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), sql_(std::move(o.sql_)), bind_error_(std::move(o.bind_error_)) {
  o.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    if (stmt_) sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    sql_ = std::move(o.sql_);
    bind_error_ = std::move(o.bind_error_);
    o.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Status Statement::Error(int rc) const {
  std::string msg = fmt::format("sqlite: {} ({})", sqlite3_errmsg(db_), sqlite3_errstr(rc));
  std::string sql = sql_.size() > 160 ? sql_.substr(0, 160) + "…" : sql_;
  return Status::IoError(msg + " in: " + sql);
}

Statement& Statement::Bind(int index, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, index, v);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = Error(rc);
  return *this;
}

Statement& Statement::Bind(int index, double v) {
  int rc = sqlite3_bind_double(stmt_, index, v);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = Error(rc);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view v) {
  int rc = sqlite3_bind_text64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = Error(rc);
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = Error(rc);
  return *this;
}

Result<bool> Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(rc);
}

Status Statement::Run() {
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::Ok();
  }
}

Status Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = Status::Ok();
  return Status::Ok();
}

int Statement::columns() const { return sqlite3_column_count(stmt_); }
std::string Statement::column_name(int i) const { return sqlite3_column_name(stmt_, i); }
bool Statement::IsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
int64_t Statement::Int(int i) const { return sqlite3_column_int64(stmt_, i); }
double Statement::Real(int i) const { return sqlite3_column_double(stmt_, i); }
std::string Statement::Text(int i) const {
  const unsigned char* t = sqlite3_column_text(stmt_, i);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, i)) : std::string();
}

Value Statement::Get(int i) const {
  switch (sqlite3_column_type(stmt_, i)) {
    case SQLITE_NULL: return std::monostate{};
    case SQLITE_INTEGER: return Int(i);
    case SQLITE_FLOAT: return Real(i);
    default: return Text(i);
  }
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  std::unique_ptr<Database> db(new Database());
  db->path_ = path;
  int rc = sqlite3_open_v2(path.c_str(), &db->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db->db_ ? sqlite3_errmsg(db->db_) : sqlite3_errstr(rc);
    return Status::IoError(fmt::format("cannot open database '{}': {}", path, msg));
  }
  sqlite3_busy_timeout(db->db_, 10000);  // another process (a second lmstation) may hold the lock briefly
  return db;
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

Status Database::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status::IoError(fmt::format("sqlite: {} in: {}", msg, s.size() > 160 ? s.substr(0, 160) + "…" : s));
  }
  return Status::Ok();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    return Status::InvalidArgument(fmt::format("sqlite: {} in: {}", sqlite3_errmsg(db_), sql));
  }
  return Statement(db_, s, std::string(sql));
}

Result<Table> Database::Query(std::string_view sql) {
  LMS_ASSIGN_OR_RETURN(Statement st, Prepare(sql));
  Table t;
  for (int i = 0; i < st.columns(); ++i) t.columns.push_back(st.column_name(i));
  for (;;) {
    LMS_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::vector<Value> r;
    for (int i = 0; i < st.columns(); ++i) r.push_back(st.Get(i));
    t.rows.push_back(std::move(r));
  }
  return t;
}

int64_t Database::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
int Database::Changes() const { return sqlite3_changes(db_); }

}  // namespace lms::store
