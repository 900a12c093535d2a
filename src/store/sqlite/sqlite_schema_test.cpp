#include "store/sqlite/sqlite_schema.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

namespace agentwire::store::sqlite_schema {
namespace {

class Db {
 public:
  Db() { sqlite3_open(":memory:", &db_); }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }
  void exec(const std::string& sql) const {
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
  }
  std::string text(const std::string& sql) const {
    sqlite3_stmt* st = nullptr;
    std::string out = "<none>";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(st, 0);
      out = t != nullptr ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(st);
    return out;
  }
  int version() const { return std::stoi(text("PRAGMA user_version")); }
  bool has(const std::string& table, const std::string& column) const {
    return sqlite3_exec(db_, ("SELECT " + column + " FROM " + table + " LIMIT 0").c_str(), nullptr, nullptr, nullptr) ==
           SQLITE_OK;
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteSchemaTest, ANewDatabaseGetsTheWholeSchemaAtTheLatestVersion) {
  Db db;
  auto r = migrate(db.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(db.version(), latestVersion());
  for (const char* t : {"threads", "messages", "streams", "events", "runs", "meta", "approvals", "token_usage"}) {
    EXPECT_TRUE(db.has(t, "*")) << t;
  }
  EXPECT_TRUE(db.has("threads", "agent"));
  EXPECT_TRUE(db.has("threads", "on_busy"));
  // Again: nothing to do, the version found is the latest.
  r = migrate(db.get());
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, latestVersion());
}

TEST(SqliteSchemaTest, AnOlderVersionIsCompletedAndItsRowsKept) {
  Db db;  // version 2: threads without agent and on_busy, no runs, no approvals, no token_usage
  db.exec(
      "CREATE TABLE threads (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL, "
      "created_ms INTEGER NOT NULL, system INTEGER NOT NULL DEFAULT 0)");
  db.exec("INSERT INTO threads VALUES ('t1', 'u1', 'kept', 5, 0)");
  db.exec("PRAGMA user_version=2");
  auto r = migrate(db.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, 2);
  EXPECT_EQ(db.version(), kBaselineVersion);
  EXPECT_EQ(db.text("SELECT title || '/' || agent || '/' || on_busy FROM threads WHERE id = 't1'"), "kept//");
  EXPECT_TRUE(db.has("token_usage", "tokens"));
}

TEST(SqliteSchemaTest, NumberedMigrationsApplyInOrderOnlyPastTheVersionFound) {
  const std::vector<Migration> list{
      {7, "ALTER TABLE threads ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0"},
      {8,
       "CREATE TABLE labels (thread_id TEXT NOT NULL, label TEXT NOT NULL); "
       "INSERT INTO labels SELECT id, 'pinned=' || pinned FROM threads"},
  };
  Db db;
  ASSERT_TRUE(migrate(db.get(), {}));  // at the baseline, as the previous release left it
  db.exec("INSERT INTO threads (id, user_id, title, created_ms) VALUES ('t1', 'u1', 'a', 1)");
  auto r = migrate(db.get(), list);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kBaselineVersion);
  EXPECT_EQ(db.version(), 8);
  EXPECT_EQ(db.text("SELECT label FROM labels WHERE thread_id = 't1'"), "pinned=0");  // 8 ran after 7
  // Opened again by the same binary: nothing runs twice (8 would insert a second label).
  ASSERT_TRUE(migrate(db.get(), list));
  EXPECT_EQ(db.text("SELECT count(*) FROM labels"), "1");
}

TEST(SqliteSchemaTest, AFailedMigrationRollsBackEveryStepAndKeepsTheVersion) {
  const std::vector<Migration> list{
      {7, "ALTER TABLE threads ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0"},
      {8, "CREATE TABLE threads (id TEXT)"},  // exists: fails
  };
  Db db;
  ASSERT_TRUE(migrate(db.get(), {}));
  auto r = migrate(db.get(), list);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "migration_failed");
  EXPECT_NE(r.error().message.find("migration 8 failed"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("already exists"), std::string::npos) << r.error().message;
  EXPECT_EQ(db.version(), kBaselineVersion);
  EXPECT_FALSE(db.has("threads", "pinned")) << "7 is rolled back with 8";
}

TEST(SqliteSchemaTest, ADatabaseFromANewerBinaryIsRefused) {
  Db db;
  db.exec("PRAGMA user_version=99");
  auto r = migrate(db.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "schema_too_new");
  EXPECT_NE(r.error().message.find("schema version 99, written by a newer agentwire"), std::string::npos);
  EXPECT_EQ(db.version(), 99);
  EXPECT_FALSE(db.has("threads", "*")) << "nothing was created";
}

}  // namespace
}  // namespace agentwire::store::sqlite_schema
