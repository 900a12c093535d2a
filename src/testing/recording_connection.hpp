#pragma once

#include "delivery/connection.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace agentwire::testing {

// A connection that keeps every frame it is sent, parsed. For unit tests.
class RecordingConnection final : public delivery::Connection {
 public:
  RecordingConnection(std::string id, std::string user) : id_(std::move(id)), user_(std::move(user)) {}
  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_; }
  bool send(std::shared_ptr<const std::string> frame) override {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    frames_.push_back(boost::json::parse(*frame).as_object());
    cv_.notify_all();
    return true;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  std::vector<boost::json::object> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  // Waits until a frame of `type` has arrived; returns false on timeout.
  bool waitFor(const std::string& type, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& f : frames_) {
        if (f.at("type").as_string() == type) return true;
      }
      return false;
    });
  }
  std::vector<int64_t> seqs() const {
    std::vector<int64_t> out;
    for (const auto& f : frames()) {
      if (auto* s = f.if_contains("seq")) out.push_back(s->as_int64());
    }
    return out;
  }

 private:
  std::string id_;
  std::string user_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<boost::json::object> frames_;
  bool closed_ = false;
};

}  // namespace agentwire::testing
