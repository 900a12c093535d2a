#pragma once

#include "bus/bus.hpp"
#include "lifecycle/component.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

struct redisContext;
struct redisReply;

namespace agentwire::bus {

// The bus over Redis pub/sub (hiredis, Debian's 0.14), a component ("bus", optional).
//
// One channel per user, `agentwire:u:<user>`, carrying the stream's new head as text. A node
// subscribes to the channels of the users it has connections of, so it hears only about them.
//
// Two connections, each on its own thread:
// - the publisher: publish() records the newest head per user; the thread sends them pipelined
//   (500 ms command timeout). What cannot be sent (Redis down or hung) is kept, coalesced per user
//   and bounded, and sent once Redis answers again; so the delivery writer never waits on Redis.
// - the subscriber: a non-blocking socket in poll() (100 ms), which applies the (un)subscriptions
//   asked for meanwhile, and sends a PING through the subscription every second; its answer is
//   what live() and the health report. A confirmed subscription tells the listener to read that
//   user's head once (commits made before it was in place were published to nobody here).
// Redis down or hung (no PONG within 2 s): the component turns degraded with the reason and
// reconnects with backoff; on reconnect every subscription is made again and resync runs (a
// notice may have been missed meanwhile).
class RedisBus final : public Bus, public lifecycle::Component {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::chrono::milliseconds timeout{500};  // connect and command timeout
    std::string node_id = "local";           // control messages to this node: agentwire:n:<node_id>
    bool required = false;                   // critical: readiness needs a live subscription
  };

  RedisBus(Options options, std::vector<std::string> dependencies);
  ~RedisBus() override;

  // Parses redis://host:port (no auth, db 0). Throws std::invalid_argument naming the problem.
  static Options parseUrl(const std::string& url);

  void start() override;
  void stop() override;

  void publish(const std::vector<std::pair<std::string, int64_t>>& heads) override;
  void subscribe(const std::string& user) override;
  void unsubscribe(const std::string& user) override;
  void setListener(Listener listener) override { listener_ = std::move(listener); }
  void sendToNode(const std::string& node_id, const std::string& message) override;
  void setControlListener(ControlListener listener) override { control_ = std::move(listener); }
  bool live() const override { return live_.load(); }

  // Called after a reconnect (notices may have been lost): check every subscribed user.
  using Resync = std::function<void()>;
  void setResync(Resync r) { resync_ = std::move(r); }

  struct Stats {
    std::atomic<uint64_t> published{0};
    std::atomic<uint64_t> publish_failures{0};
    std::atomic<uint64_t> control_received{0};
    std::atomic<uint64_t> notices_dropped{0};  // past kMaxPendingNotices while Redis was down
    std::atomic<uint64_t> received{0};
    std::atomic<uint64_t> reconnects{0};
  };
  const Stats& stats() const { return stats_; }
  boost::json::object details() const override;

 private:
  void subscriberLoop();
  void publisherLoop();
  // On the publisher thread: (channel, payload) pairs; false when they could not all be sent.
  bool publishNow(const std::vector<std::pair<std::string, std::string>>& messages);
  bool sendAll(const std::vector<std::pair<std::string, std::string>>& messages);
  void dropSubscriber(const std::string& why);
  void onReply(const redisReply& reply);
  bool connectSubscriber();  // (re)subscribes to every wanted channel
  void markDown(const std::string& why);
  void markUp();
  static std::string channelOf(const std::string& user);

  static constexpr std::size_t kMaxPendingNotices = 100000;

  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  Listener listener_;
  ControlListener control_;
  Resync resync_;
  Stats stats_;
  std::atomic<bool> live_{false};

  // publish() only records the newest head per user; the publisher thread sends them, so the
  // delivery writer never waits on Redis (a hung one would hold every commit otherwise).
  std::mutex pub_mutex_;
  std::condition_variable pub_cv_;
  std::map<std::string, int64_t> to_publish_;
  std::deque<std::pair<std::string, std::string>> to_control_;  // (channel, message), in order
  bool pub_stopping_ = false;
  std::thread publisher_;
  redisContext* pub_ = nullptr;  // owned by the publisher thread
  std::chrono::steady_clock::time_point pub_retry_at_{};

  std::mutex sub_mutex_;               // wanted subscriptions and pending changes
  std::map<std::string, int> wanted_;  // user -> local connections' interest count
  std::set<std::string> to_subscribe_;
  std::set<std::string> to_unsubscribe_;
  std::string last_error_;
  bool stopping_ = false;
  std::thread subscriber_;
  redisContext* sub_ = nullptr;  // owned by the subscriber thread
  std::chrono::steady_clock::time_point pong_due_{};
};

}  // namespace agentwire::bus
