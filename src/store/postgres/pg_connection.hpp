#pragma once

#include "core/result.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace agentwire::store::pg {

// One query result (owned); rows of text values.
class Rows {
 public:
  explicit Rows(pg_result* r = nullptr) : r_(r) {}
  ~Rows();
  Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Rows& operator=(Rows&& o) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  int size() const;
  std::string text(int row, int col) const;
  int64_t integer(int row, int col) const;
  bool null(int row, int col) const;

 private:
  pg_result* r_;
};

// Error codes of a failed statement: store::kUnavailable when the database could not be reached
// or is out of resources (the call may succeed later), kRetry for a serialization failure or a
// deadlock (run the transaction again), "internal" otherwise. The message has the SQLSTATE.
inline constexpr const char* kRetry = "retry";

// One libpq connection, used by one thread at a time (the pool hands it out).
class Connection {
 public:
  // `setup`: statements run on every (re)connection (session settings).
  explicit Connection(std::string conninfo, std::string setup = {})
      : conninfo_(std::move(conninfo)), setup_(std::move(setup)) {}
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (again) if the connection is not usable. False with `error` set when it cannot.
  bool ensure(std::string& error);
  // A statement with text parameters ($1, $2, ...); nullopt parameters are SQL NULL.
  core::Result<Rows> exec(std::string_view sql, const std::vector<std::optional<std::string>>& params = {});
  // Several statements without parameters (schema migrations).
  core::Result<Rows> script(const std::string& sql);

 private:
  core::Result<Rows> outcome(pg_result* r);

  std::string conninfo_;
  std::string setup_;
  pg_conn* conn_ = nullptr;
};

// A fixed set of connections; borrow() waits for a free one (bounded by `timeout`).
class Pool {
 public:
  Pool(std::string conninfo, int size, const std::string& setup = {});

  class Lease {
   public:
    Lease(Pool* p, std::unique_ptr<Connection> c) : pool_(p), conn_(std::move(c)) {}
    ~Lease();
    Lease(Lease&&) = default;
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };
  // nullopt when no connection came free within `timeout`.
  std::optional<Lease> borrow(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> free_;
};

// A PostgreSQL array literal of text values ('{"a","b\"c"}'), for `$n::text[]` parameters.
std::string textArray(const std::vector<std::string>& values);
// The same for integers.
std::string intArray(const std::vector<int64_t>& values);

}  // namespace agentwire::store::pg
