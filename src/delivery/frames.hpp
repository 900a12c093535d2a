#pragma once

#include "store/store.hpp"

#include <memory>
#include <string>

namespace agentwire::delivery {

// The frames delivery sends, built once and shared by every connection of the user.

// A stream event: {"type","seq","thread_id","run_id"?,"ts","data"}. `data` is copied as stored
// (already serialized JSON), never parsed again.
std::shared_ptr<const std::string> eventFrame(const store::StoredEvent& ev);
// resume_complete {from_seq, to_seq}, with id `ref` when not empty.
std::shared_ptr<const std::string> resumeCompleteFrame(int64_t from_seq, int64_t to_seq, const std::string& ref);
// resync_required {epoch, last_seq, reason}, with id `ref` when not empty.
std::shared_ptr<const std::string> resyncFrame(const store::StreamInfo& info, const std::string& reason,
                                               const std::string& ref);

}  // namespace agentwire::delivery
