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

  // Asks the transport to call Delivery::pump() once the frames sent so far have been written
  // (at once if they already are). Delivery calls it at the end of each budgeted replay step.
  // Connections without a send queue (in-process ones) need not implement it.
  virtual void notifyWhenDrained() {}

  // Set by Delivery while this connection replays stored events in budgeted steps; makes
  // pump() a cheap no-op otherwise.
  std::atomic<bool> replaying{false};
};

using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace agentwire::delivery
