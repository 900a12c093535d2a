#include "store/sqlite/sqlite_backup.hpp"

#include "store/sqlite/sqlite_schema.hpp"
#include "store/sqlite/sqlite_store.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

namespace agentwire::store {
namespace {

namespace fs = std::filesystem;

// An open database, closed on scope exit.
struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
};

core::Error sqliteError(const std::string& what, sqlite3* db) {
  return core::Error{"store_error", fmt::format("{}: {}", what, db != nullptr ? sqlite3_errmsg(db) : "out of memory")};
}

core::Result<Db*> open(Db& d, const std::string& path, int flags) {
  if (sqlite3_open_v2(path.c_str(), &d.db, flags, nullptr) != SQLITE_OK) {
    return sqliteError(fmt::format("cannot open '{}'", path), d.db);
  }
  sqlite3_busy_timeout(d.db, 10000);
  return &d;
}

// The first column of the first row, as text ("" when there is none).
std::string scalar(sqlite3* db, const std::string& sql, bool* ok = nullptr) {
  sqlite3_stmt* s = nullptr;
  std::string out;
  bool good = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK;
  if (good) {
    int rc = sqlite3_step(s);
    good = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
  }
  sqlite3_finalize(s);
  if (ok != nullptr) *ok = good;
  return out;
}

core::Result<BackupSummary> summarize(const std::string& path) {
  Db d;
  if (auto o = open(d, path, SQLITE_OPEN_READONLY); !o) return o.error();
  bool ok = true;
  BackupSummary s;
  s.schema_version = std::stoll("0" + scalar(d.db, "PRAGMA user_version", &ok));
  for (auto [field, table] : std::vector<std::pair<int64_t*, const char*>>{
           {&s.users, "streams"}, {&s.events, "events"}, {&s.threads, "threads"}, {&s.messages, "messages"}}) {
    bool counted = true;
    *field = std::stoll("0" + scalar(d.db, fmt::format("SELECT count(*) FROM {}", table), &counted));
    if (!counted) {
      return core::Error{"invalid_backup", fmt::format("'{}' has no table '{}': not an agentwire store", path, table)};
    }
  }
  std::error_code ec;
  s.bytes = static_cast<int64_t>(fs::file_size(path, ec));
  return s;
}

void syncFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void syncDir(const std::string& file) {
  auto dir = fs::path(file).parent_path();
  syncFile(dir.empty() ? "." : dir.string());
}

// Copies the database at `from` into a new file `to` with the online backup API (one snapshot).
core::Result<bool> copyDatabase(const std::string& from, const std::string& to) {
  Db src, dst;
  // Read-write but only read: a read-only connection cannot take part in WAL's shared memory when the
  // server created it.
  if (auto o = open(src, from, SQLITE_OPEN_READWRITE); !o) return o.error();
  std::error_code ec;
  fs::remove(to, ec);
  if (auto o = open(dst, to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE); !o) return o.error();
  sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
  if (b == nullptr) return sqliteError("cannot start the backup", dst.db);
  // All pages in one step: one read transaction, so one snapshot (a step at a time would restart
  // whenever the server writes, or copy pages of different moments if it were another connection's).
  int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return sqliteError(fmt::format("backup of '{}' failed", from), dst.db);
  // A single file, whatever the journal mode of the source: WAL is set again by the server that opens it.
  if (sqlite3_exec(dst.db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqliteError("cannot finish the copy", dst.db);
  }
  return true;
}

}  // namespace

core::Result<BackupSummary> backupSqlite(const std::string& db_path, const std::string& to) {
  if (!fs::exists(db_path)) return core::Error{"not_found", fmt::format("no SQLite store at '{}'", db_path)};
  const std::string partial = to + ".partial";
  auto copied = copyDatabase(db_path, partial);
  if (!copied) return copied.error();
  syncFile(partial);
  std::error_code ec;
  fs::rename(partial, to, ec);
  if (ec) return core::Error{"store_error", fmt::format("cannot rename '{}' to '{}': {}", partial, to, ec.message())};
  syncDir(to);
  return summarize(to);
}

core::Result<BackupSummary> restoreSqlite(const std::string& from, const std::string& db_path) {
  if (!fs::exists(from)) return core::Error{"not_found", fmt::format("no backup file '{}'", from)};
  {
    Db d;
    if (auto o = open(d, from, SQLITE_OPEN_READONLY); !o) return o.error();
    bool ok = true;
    std::string check = scalar(d.db, "PRAGMA integrity_check", &ok);
    if (!ok || check != "ok") {
      return core::Error{"invalid_backup", fmt::format("'{}' is not a sound SQLite database: {}", from,
                                                       check.empty() ? "unreadable" : check)};
    }
    int64_t version = std::stoll("0" + scalar(d.db, "PRAGMA user_version"));
    if (version < 1 || version > sqlite_schema::latestVersion()) {
      return core::Error{"invalid_backup", fmt::format("'{}' has schema version {}; this agentwire reads 1 to {}", from,
                                                       version, sqlite_schema::latestVersion())};
    }
  }
  if (auto s = summarize(from); !s) return s.error();
  int lock = -1;
  try {
    auto parent = fs::path(db_path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    lock = lockSqliteOwner(db_path);  // no server may run on it meanwhile
  } catch (const std::exception& e) {
    return core::Error{"in_use", fmt::format("{}: stop the server before restoring", e.what())};
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  const std::string staged = db_path + ".restoring";
  auto copied = copyDatabase(from, staged);
  if (!copied) return copied.error();
  {
    Db d;
    if (auto o = open(d, staged, SQLITE_OPEN_READWRITE); !o) return o.error();
    // A new epoch per stream, so that no client trusts a position taken on the server after the backup.
    const char* sql = "UPDATE streams SET epoch = lower(hex(randomblob(12)))";
    sqlite3_exec(d.db, "BEGIN", nullptr, nullptr, nullptr);
    if (sqlite3_exec(d.db, sql, nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_exec(d.db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return sqliteError("cannot give the restored streams new epochs", d.db);
    }
  }
  syncFile(staged);
  std::error_code ec;
  // The old store's WAL and shared memory belong to the old file: left behind they would be applied
  // to the restored one.
  fs::remove(db_path + "-wal", ec);
  fs::remove(db_path + "-shm", ec);
  fs::rename(staged, db_path, ec);
  if (ec) return core::Error{"store_error", fmt::format("cannot put '{}' in place: {}", db_path, ec.message())};
  syncDir(db_path);
  return summarize(db_path);
}

}  // namespace agentwire::store
