#include "agents/run_journal.hpp"

namespace agentwire::agents {

core::Result<const boost::json::object*> RunJournal::next(const char* kind) {
  if (cursor_ >= entries_.size()) return static_cast<const boost::json::object*>(nullptr);
  const auto* entry = entries_[cursor_].if_object();
  const auto* k = entry != nullptr ? entry->if_contains("kind") : nullptr;
  if (k == nullptr || !k->is_string() || k->as_string() != kind) {
    return core::Error{"interrupted", "the run could not be taken up again: its agent took another path"};
  }
  ++cursor_;
  return entry;
}

std::optional<ApprovalDecision> RunJournal::takeDecision() {
  if (cursor_ < entries_.size()) return std::nullopt;
  auto d = std::move(decision_);
  decision_.reset();
  return d;
}

}  // namespace agentwire::agents
