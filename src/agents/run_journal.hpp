#pragma once

#include "core/result.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>

namespace agentwire::agents {

// A person's answer to the tool call a run parked on.
struct ApprovalDecision {
  std::string approval_id;
  std::string tool_call_id;
  std::string tool_name;
  std::string status;  // approved | denied | expired
  std::string reason;
};

// What a run did before it parked on a tool approval, so that it can take up again without a
// thread waiting for the person: the agent runs again from its start, and each step it already
// took (a tool call, a model completion: RunContext::step) returns its recorded result instead of
// being done again. Events the agent emits while it replays were sent the first time and are left
// out, until it reaches the tool call it parked on, which takes the person's decision.
//
// Agents must therefore be deterministic given their input and their steps' results (the built-in
// ones are: the LLM agent records each completion). One run's journal is used by one worker at a time.
class RunJournal {
 public:
  RunJournal() = default;
  RunJournal(boost::json::array entries, std::optional<ApprovalDecision> decision)
      : entries_(std::move(entries)), decision_(std::move(decision)) {}

  // Events emitted now were sent before the run parked.
  bool replaying() const { return cursor_ < entries_.size() || decision_.has_value(); }
  // The next recorded step of this kind ("tool", "step"), or nullptr once the record is used up.
  // Error `interrupted` when the agent took another path than the first time.
  core::Result<const boost::json::object*> next(const char* kind);
  // A step taken live (past the record): kept for the next replay.
  void record(boost::json::object entry) {
    entries_.emplace_back(std::move(entry));
    cursor_ = entries_.size();
  }
  // The run takes up again with the person's decision: from its start, replaying the record.
  void rewind(ApprovalDecision decision) {
    cursor_ = 0;
    decision_ = std::move(decision);
  }
  // The decision the run resumes with, once the record is used up (ends the replay); nullopt before,
  // and when there is none.
  std::optional<ApprovalDecision> takeDecision();
  const boost::json::array& entries() const { return entries_; }

 private:
  boost::json::array entries_;
  std::size_t cursor_ = 0;
  std::optional<ApprovalDecision> decision_;
};

// Thrown by RunContext::callTool when a tool needs approval: the runner parks the run (it is not an
// std::exception, so agents' catch-alls of std::exception let it through; do not catch `...`).
struct RunParked {
  std::string tool_call_id;
  std::string tool_name;
  boost::json::object args;
};

}  // namespace agentwire::agents
