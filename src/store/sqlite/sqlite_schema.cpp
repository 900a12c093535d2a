#include "store/sqlite/sqlite_schema.hpp"

#include <fmt/format.h>

#include <string>

namespace agentwire::store::sqlite_schema {
namespace {

// The schema at version 6, idempotent: it also completes a database at any earlier version (1 had
// no threads.agent, 2 no runs, 3 no threads.on_busy, 4 no approvals, 5 no token_usage).
const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS threads (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL,
  created_ms INTEGER NOT NULL, system INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS threads_by_user ON threads(user_id, created_ms);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
  content TEXT NOT NULL, run_id TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages(thread_id, created_ms);
CREATE TABLE IF NOT EXISTS streams (
  user_id TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL,
  first_seq INTEGER NOT NULL, acked_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  user_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, thread_id TEXT NOT NULL,
  run_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, thread_id TEXT NOT NULL, agent TEXT NOT NULL,
  node_id TEXT NOT NULL, status TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL,
  tool_call_id TEXT NOT NULL, tool_name TEXT NOT NULL, args TEXT NOT NULL, run_state TEXT NOT NULL,
  node_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, resolved_ms INTEGER NOT NULL,
  resumed INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS approvals_by_user ON approvals(user_id, status);
CREATE INDEX IF NOT EXISTS approvals_waiting ON approvals(node_id, resumed);
CREATE TABLE IF NOT EXISTS token_usage (
  user_id TEXT NOT NULL, day TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (user_id, day)) WITHOUT ROWID;
)sql";

struct Step {
  std::string what;
  std::string error;
};

// One statement list; false (with the error in `step`) when one fails.
bool run(sqlite3* db, const char* sql, Step& step) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) == SQLITE_OK) return true;
  step.error = err != nullptr ? err : sqlite3_errmsg(db);
  sqlite3_free(err);
  return false;
}

bool hasColumn(sqlite3* db, const char* table, const char* column) {
  const std::string sql = fmt::format("SELECT {} FROM {} LIMIT 0", column, table);
  return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
}

bool baseline(sqlite3* db, Step& step) {
  step.what = "the baseline (version 6)";
  if (!run(db, kSchema, step)) return false;
  if (!hasColumn(db, "threads", "agent") &&
      !run(db, "ALTER TABLE threads ADD COLUMN agent TEXT NOT NULL DEFAULT ''", step)) {
    return false;
  }
  if (!hasColumn(db, "threads", "on_busy") &&
      !run(db, "ALTER TABLE threads ADD COLUMN on_busy TEXT NOT NULL DEFAULT ''", step)) {
    return false;
  }
  return true;
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list{};
  return list;
}

int latestVersion(const std::vector<Migration>& list) {
  return list.empty() ? kBaselineVersion : list.back().version;
}

core::Result<int> migrate(sqlite3* db, const std::vector<Migration>& list) {
  int found = 0;
  {
    sqlite3_stmt* v = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &v, nullptr);
    if (v != nullptr && sqlite3_step(v) == SQLITE_ROW) found = sqlite3_column_int(v, 0);
    sqlite3_finalize(v);
  }
  const int latest = latestVersion(list);
  if (found > latest) {
    return core::Error{"schema_too_new",
                       fmt::format("schema version {}, written by a newer agentwire; this one knows up to {}: run the "
                                   "newer version, or restore a backup made by this one",
                                   found, latest)};
  }
  if (found == latest) return found;
  // One transaction: all or nothing, and one sync for the whole schema instead of one per statement.
  Step step;
  bool ok = run(db, "BEGIN IMMEDIATE", step);
  if (ok && found < kBaselineVersion) ok = baseline(db, step);
  for (const auto& m : list) {
    if (!ok) break;
    if (m.version <= found) continue;
    step.what = fmt::format("migration {}", m.version);
    ok = run(db, m.sql, step);
  }
  if (ok) {
    step.what = "setting the version";
    ok = run(db, fmt::format("PRAGMA user_version={}", latest).c_str(), step) && run(db, "COMMIT", step);
  }
  if (!ok) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return core::Error{"migration_failed", fmt::format("cannot migrate from schema version {} to {}: {} failed: {}",
                                                       found, latest, step.what, step.error)};
  }
  return found;
}

}  // namespace agentwire::store::sqlite_schema
