#pragma once

#include "delivery/connection.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

namespace agentwire::delivery {

// A connection inside the process that keeps every frame it is sent, parsed: the routing
// self-check's loopback, the HTTP API's reply capture, and unit tests. Thread-safe.
class InProcessConnection final : public Connection {
 public:
  using Clock = std::chrono::steady_clock;
  using Predicate = std::function<bool(const boost::json::object&)>;

  InProcessConnection(std::string id, std::string user_id);

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_id_; }
  bool send(std::shared_ptr<const std::string> frame) override;  // false once closed

  void close();
  std::vector<boost::json::object> frames() const;
  // Frame number `index` (0-based) once it has arrived, or nullopt at the deadline.
  std::optional<boost::json::object> frameAt(std::size_t index, Clock::time_point deadline) const;
  // The first frame matching `pred`, waiting up to `timeout`.
  std::optional<boost::json::object> waitFor(const Predicate& pred, std::chrono::milliseconds timeout) const;
  bool waitFor(const std::string& type, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  // The seq of every stream event received, in order.
  std::vector<int64_t> seqs() const;

 private:
  std::string id_;
  std::string user_id_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::vector<boost::json::object> frames_;
  bool closed_ = false;
};

}  // namespace agentwire::delivery
