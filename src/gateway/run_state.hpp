#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>

#include <optional>
#include <string>

namespace agentwire::store {
class Store;
}

namespace agentwire::gateway {

// What a run of the user is now: {run_id, thread_id, agent, status, created_at, started_at?,
// ended_at?, error?}, status one of queued, running, completed, error, stopped, interrupted. Read from
// the run's in-flight record and its retained events (docs/protocol.md, `get_run`); nullopt when the
// user has no such run, or it ended longer ago than the stream's retention.
core::Result<std::optional<boost::json::object>> runState(store::Store& store, const std::string& user_id,
                                                          const std::string& run_id);

// Whether a status is final.
bool runEnded(const std::string& status);

}  // namespace agentwire::gateway
