#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

namespace agentwire::delivery {

// A live connection of one user: a WebSocket session, an AG-UI stream, or an in-process one
// (the self-check's loopback, the HTTP API's reply capture).
// send() never blocks and is safe from any thread: it queues the frame (bounded) and returns
// false when the connection is closed or has been cut off for falling behind.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual const std::string& id() const = 0;
  virtual const std::string& userId() const = 0;
  virtual bool send(std::shared_ptr<const std::string> frame) = 0;

  // Asks the transport to call Delivery::pump() once the frames sent so far have been written
  // (at once if they already are). Delivery calls it at the end of each budgeted replay step,
  // and when a live connection's backlog reached the high-water mark.
  // Connections without a send queue (in-process ones) need not implement it.
  virtual void notifyWhenDrained() {}

  // Frames and bytes sent but not yet written to the peer (0 for connections without a queue).
  // Delivery stops pushing live events to a connection whose backlog is at the high-water mark
  // and lets it catch up from the stream instead, so a fast producer never overflows a client
  // that is reading.
  virtual std::size_t queuedFrames() const { return 0; }
  virtual std::size_t queuedBytes() const { return 0; }

  // Ends the connection after what is queued (WebSocket close code and reason). Thread-safe.
  virtual void closeWith(int /*code*/, const std::string& /*reason*/) {}

  // Set by Delivery while this connection replays stored events in budgeted steps; makes
  // pump() a cheap no-op otherwise.
  std::atomic<bool> replaying{false};
};

using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace agentwire::delivery
