#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>

#include <boost/json/array.hpp>

#include <optional>
#include <string>
#include <vector>

namespace agentwire::store {
class Store;
struct Approval;
}  // namespace agentwire::store

namespace agentwire::gateway {

// What a run of the user is now: {run_id, thread_id, agent, status, created_at, started_at?,
// ended_at?, error?}, status one of queued, running, awaiting_approval, completed, error, stopped,
// interrupted. Read from
// the run's in-flight record and its retained events (docs/protocol.md, `get_run`); nullopt when the
// user has no such run, or it ended longer ago than the stream's retention.
core::Result<std::optional<boost::json::object>> runState(store::Store& store, const std::string& user_id,
                                                          const std::string& run_id);

// The states of a thread's runs (as runState), oldest first: those whose messages are among the
// thread's last `limit`, and any older one whose events are still retained.
core::Result<boost::json::array> threadRunStates(store::Store& store, const std::string& user_id,
                                                 const std::string& thread_id, int limit);

// Pending approvals as listed to their user (list_approvals, GET /api/approvals): approval_id,
// thread_id, run_id, tool_call_id, tool_name, args, status, created_at, expires_at.
boost::json::array approvalsJson(const std::vector<store::Approval>& approvals);

// Whether a status is final.
bool runEnded(const std::string& status);

}  // namespace agentwire::gateway
