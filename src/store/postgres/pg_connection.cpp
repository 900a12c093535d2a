#include "store/postgres/pg_connection.hpp"

#include "store/store.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdlib>

namespace agentwire::store::pg {

Rows::~Rows() {
  if (r_ != nullptr) PQclear(r_);
}

Rows& Rows::operator=(Rows&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

int Rows::size() const {
  return r_ == nullptr ? 0 : PQntuples(r_);
}

std::string Rows::text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
}

int64_t Rows::integer(int row, int col) const {
  return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
}

bool Rows::null(int row, int col) const {
  return PQgetisnull(r_, row, col) != 0;
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool Connection::ensure(std::string& error) {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return true;
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = PQconnectdb(conninfo_.c_str());
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
    if (setup_.empty()) return true;
    pg_result* r = PQexec(conn_, setup_.c_str());
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) error = PQresultErrorMessage(r);
    PQclear(r);
    if (ok) return true;
    PQfinish(conn_);
    conn_ = nullptr;
    return false;
  }
  error = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
  while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  return false;
}

namespace {

// SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk full, out of memory,
// too many connections), 57P0x operator intervention (shutdown, cannot connect now), 25006 read
// only (a standby). 40001 serialization failure and 40P01 deadlock: run the transaction again.
const char* classify(const std::string& sqlstate) {
  if (sqlstate == "40001" || sqlstate == "40P01") return kRetry;
  if (sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("53", 0) == 0 || sqlstate.rfind("57P0", 0) == 0 ||
      sqlstate == "25006") {
    return store::kUnavailable;
  }
  return "internal";
}

}  // namespace

core::Result<Rows> Connection::script(const std::string& sql) {
  std::string error;
  if (!ensure(error)) return core::Error{store::kUnavailable, "cannot connect to PostgreSQL: " + error};
  return outcome(PQexec(conn_, sql.c_str()));
}

core::Result<Rows> Connection::exec(std::string_view sql, const std::vector<std::optional<std::string>>& params) {
  std::string error;
  if (!ensure(error)) return core::Error{store::kUnavailable, "cannot connect to PostgreSQL: " + error};
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  std::string text(sql);
  return outcome(
      PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
}

core::Result<Rows> Connection::outcome(pg_result* r) {
  Rows rows(r);
  auto status = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
  if (PQstatus(conn_) != CONNECTION_OK || r == nullptr) {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return core::Error{store::kUnavailable, "PostgreSQL connection lost: " + msg};
  }
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string sqlstate = state != nullptr ? state : "";
  std::string msg = PQresultErrorMessage(r);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  return core::Error{classify(sqlstate), fmt::format("{} (SQLSTATE {})", msg, sqlstate)};
}

Pool::Pool(std::string conninfo, int size, const std::string& setup) {
  for (int i = 0; i < size; ++i) free_.push_back(std::make_unique<Connection>(conninfo, setup));
}

Pool::Lease::~Lease() {
  if (pool_ == nullptr || !conn_) return;
  {
    std::lock_guard lock(pool_->mutex_);
    pool_->free_.push_back(std::move(conn_));
  }
  pool_->cv_.notify_one();
}

std::optional<Pool::Lease> Pool::borrow(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [&] { return !free_.empty(); })) return std::nullopt;
  auto c = std::move(free_.back());
  free_.pop_back();
  return Lease(this, std::move(c));
}

namespace {

void appendQuoted(std::string& out, const std::string& v) {
  out += '"';
  for (char c : v) {
    if (c == '\0') {
      // PostgreSQL text cannot hold NUL (clients cannot send one; an agent's answer might): U+FFFD.
      out += "\xEF\xBF\xBD";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace

std::string textArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    appendQuoted(out, values[i]);
  }
  out += '}';
  return out;
}

std::string intArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

}  // namespace agentwire::store::pg
