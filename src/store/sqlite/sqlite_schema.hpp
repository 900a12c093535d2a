#pragma once

#include "core/result.hpp"

#include <sqlite3.h>

#include <vector>

// The SQLite store's schema and its versions (PRAGMA user_version). Versions 1 to 6 grew the
// schema by CREATE TABLE IF NOT EXISTS and added columns; a database at any of them is brought to 6
// by the baseline (the whole schema, the columns added where missing). Every change after 6 is a
// numbered migration in migrations(): applied at start, in order, all in one transaction with the
// baseline and the new user_version, so a failure leaves the database as it was.
namespace agentwire::store::sqlite_schema {

struct Migration {
  int version;      // user_version once applied: 7, 8, ... with no gap
  const char* sql;  // one or more statements
};

inline constexpr int kBaselineVersion = 6;

// This binary's migrations after the baseline, in order (none yet: the next change is version 7).
const std::vector<Migration>& migrations();

// The version this binary writes: the last migration's, or the baseline's.
int latestVersion(const std::vector<Migration>& list = migrations());

// Brings `db` to latestVersion(list); returns the version it found. Errors: `schema_too_new` when
// the database's version is higher (written by a newer agentwire), `migration_failed` when a step
// fails (rolled back, the version unchanged).
core::Result<int> migrate(sqlite3* db, const std::vector<Migration>& list = migrations());

}  // namespace agentwire::store::sqlite_schema
