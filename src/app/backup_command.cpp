#include "app/backup_command.hpp"

#include "store/sqlite/sqlite_backup.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace agentwire::app {

int runBackupCommand(const core::Config& config, const std::string& to, const std::string& from) {
  if (config.store.backend != "sqlite") {
    std::fprintf(stderr,
                 "agentwire: store.backend is %s: back it up with PostgreSQL's tools (pg_dump, or base backups "
                 "with WAL archiving for point-in-time recovery; docs/operations.md)\n",
                 config.store.backend.c_str());
    return 2;
  }
  auto t0 = std::chrono::steady_clock::now();
  bool backing_up = !to.empty();
  auto done = backing_up ? store::backupSqlite(config.store.path, to) : store::restoreSqlite(from, config.store.path);
  if (!done) {
    std::fprintf(stderr, "agentwire: %s failed: %s\n", backing_up ? "backup" : "restore", done.error().message.c_str());
    return 1;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto& s = *done;
  std::fputs(
      fmt::format("{} {} -> {} in {:.0f} ms: {} bytes, schema {}, {} users, {} events, {} threads, {} messages{}\n",
                  backing_up ? "backed up" : "restored", backing_up ? config.store.path : from,
                  backing_up ? to : config.store.path, ms, s.bytes, s.schema_version, s.users, s.events, s.threads,
                  s.messages, backing_up ? "" : "; every stream has a new epoch: clients resync once")
          .c_str(),
      stdout);
  return 0;
}

}  // namespace agentwire::app
