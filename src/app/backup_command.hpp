#pragma once

#include "core/config.hpp"

#include <string>

namespace agentwire::app {

// `agentwire backup --to FILE` (when `to` is set) or `agentwire restore --from FILE`, on the store the
// configuration names. SQLite only: a PostgreSQL store is backed up with PostgreSQL's own tools
// (docs/operations.md). Prints what the file holds; returns the exit status.
int runBackupCommand(const core::Config& config, const std::string& to, const std::string& from);

}  // namespace agentwire::app
