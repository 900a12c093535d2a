#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace agentwire::core {

// The user the routing self-check runs as: delivered like any user, left out of metrics and analytics.
inline constexpr const char* kSystemUser = "__agentwire_system";
// The self-check's user on one node: each node needs its own stream (with several nodes on one
// database, a shared one would mix their checks). Clients cannot name it (ids starting "__" are refused).
inline std::string systemUserFor(const std::string& node_id) {
  return std::string(kSystemUser) + ":" + node_id;
}
inline bool isSystemUser(std::string_view user_id) {
  return user_id.substr(0, std::string_view(kSystemUser).size()) == kSystemUser;
}

// A time-ordered identifier with a readable prefix: "run_0193f2c1a0b4_5f1c0a9e3b7d": 12 hex digits
// of the wall clock in ms, then 48 random bits. Ids made later sort after (ms resolution), so rows
// keyed by them are appended to the end of an index instead of dirtying a random page per insert.
// Opaque to clients. Thread-safe.
std::string newId(const char* prefix);

// Milliseconds since the Unix epoch (wall clock), for timestamps on the wire.
int64_t nowMs();

// The UTC date of a time in ms since the epoch: "2026-11-30".
std::string utcDate(int64_t ms);

}  // namespace agentwire::core
