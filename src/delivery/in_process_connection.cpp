#include "delivery/in_process_connection.hpp"

#include <boost/json.hpp>

namespace agentwire::delivery {

InProcessConnection::InProcessConnection(std::string id, std::string user_id)
    : id_(std::move(id)), user_id_(std::move(user_id)) {}

bool InProcessConnection::send(std::shared_ptr<const std::string> frame) {
  boost::system::error_code ec;
  auto v = boost::json::parse(*frame, ec);
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  // Every frame agentwire sends is a JSON object; keep a marker if one ever is not.
  frames_.push_back(!ec && v.is_object() ? std::move(v.as_object())
                                         : boost::json::object{{"type", "invalid_frame"}, {"raw", *frame}});
  cv_.notify_all();
  return true;
}

void InProcessConnection::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

std::vector<boost::json::object> InProcessConnection::frames() const {
  std::lock_guard lock(mutex_);
  return frames_;
}

std::optional<boost::json::object> InProcessConnection::frameAt(std::size_t index, Clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_until(lock, deadline, [&] { return frames_.size() > index; })) return std::nullopt;
  return frames_[index];
}

std::optional<boost::json::object> InProcessConnection::waitFor(const Predicate& pred,
                                                                std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  std::optional<boost::json::object> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& f : frames_) {
      if (pred(f)) {
        found = f;
        return true;
      }
    }
    return false;
  });
  return found;
}

bool InProcessConnection::waitFor(const std::string& type, std::chrono::milliseconds timeout) const {
  return waitFor([&](const boost::json::object& f) { return f.at("type").as_string() == type; }, timeout).has_value();
}

std::vector<int64_t> InProcessConnection::seqs() const {
  std::vector<int64_t> out;
  for (const auto& f : frames()) {
    if (auto* s = f.if_contains("seq")) out.push_back(s->as_int64());
  }
  return out;
}

}  // namespace agentwire::delivery
