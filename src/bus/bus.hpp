#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace agentwire::bus {

// What nodes tell each other: "user U's stream now ends at seq H". The stream itself is in the
// store; a node that hears of a head past what its connections of U have read catches them up
// from the store, so a lost or repeated notice costs a read, never an event.
//
// Thread-safe. publish() never blocks on the network for long (it is called by the delivery
// writer after each commit); the listener is called on the bus's own thread.
inline constexpr int64_t kUnknownHead = -1;

class Bus {
 public:
  virtual ~Bus() = default;

  // After a commit of this node: the heads of the streams it moved.
  virtual void publish(const std::vector<std::pair<std::string, int64_t>>& heads) = 0;
  // This node has (or no longer has) connections of `user`.
  virtual void subscribe(const std::string& user) = 0;
  virtual void unsubscribe(const std::string& user) = 0;

  // `head` is kUnknownHead when a notice may have been missed (a subscription just began): the
  // listener then reads the head from the store.
  using Listener = std::function<void(const std::string& user, int64_t head)>;
  // Set once, before the bus starts.
  virtual void setListener(Listener listener) = 0;

  // Control: a short message to one node ("stop <run_id>"), through that node's own channel. Queued;
  // kept while Redis is down (bounded). Nothing is sent on one node.
  virtual void sendToNode(const std::string& node_id, const std::string& message) = 0;
  using ControlListener = std::function<void(const std::string& message)>;
  // Called on the bus's thread with each control message to this node. Set once, before start.
  virtual void setControlListener(ControlListener listener) = 0;

  // False while notices may be lost (Redis down): delivery then checks the heads of its users in
  // the store more often, so every event still arrives, later.
  virtual bool live() const = 0;
};

// One node: every commit is fanned out by the node that made it, so there is nothing to tell.
class LocalBus final : public Bus {
 public:
  void publish(const std::vector<std::pair<std::string, int64_t>>&) override {}
  void subscribe(const std::string&) override {}
  void unsubscribe(const std::string&) override {}
  void setListener(Listener) override {}
  void sendToNode(const std::string&, const std::string&) override {}
  void setControlListener(ControlListener) override {}
  bool live() const override { return true; }
};

}  // namespace agentwire::bus
