#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <string>

namespace agentwire::store {

// What a backup file holds, read back from the file itself.
struct BackupSummary {
  int64_t bytes = 0;
  int64_t schema_version = 0;
  int64_t users = 0;   // streams
  int64_t events = 0;  // retained events
  int64_t threads = 0;
  int64_t messages = 0;
};

// A consistent copy of the SQLite store at `db_path`, written to `to`, while a server may be
// serving from it: SQLite's online backup API copies one read snapshot (in WAL mode a reader never
// blocks the writer, and the writer never changes what the snapshot sees), so every transaction
// committed before the copy began is in it, whole, and none that committed later. The copy goes to
// "<to>.partial", is synced, then renamed: a `to` that exists is a complete backup.
core::Result<BackupSummary> backupSqlite(const std::string& db_path, const std::string& to);

// Puts a backup in place of the store at `db_path`, for a server that is not running (refused while
// one holds the store). The file is checked first: an SQLite database that passes integrity_check,
// with agentwire's tables and a schema this binary knows. Every stream of the restored store gets a
// new epoch: clients of the server as it was after the backup have seen seqs that the restored
// streams will give to other events, so they must resync (resync_required on resume) instead of
// trusting their position.
core::Result<BackupSummary> restoreSqlite(const std::string& from, const std::string& db_path);

}  // namespace agentwire::store
