#pragma once

#include <atomic>
#include <memory>
#include <string>

namespace agentwire::delivery {

// A live connection of one user: a WebSocket session, or the self-check's in-process loopback.
// send() never blocks and is safe from any thread: it queues the frame (bounded) and returns
// false when the connection is closed or has been cut off for falling behind.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual const std::string& id() const = 0;
  virtual const std::string& userId() const = 0;
  virtual bool send(std::shared_ptr<const std::string> frame) = 0;

  // Set by Delivery while this connection replays stored events in budgeted batches. The
  // transport calls Delivery::pump() when its send queue drains and this is set.
  std::atomic<bool> replaying{false};
};

using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace agentwire::delivery
