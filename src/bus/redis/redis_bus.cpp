#include "bus/redis/redis_bus.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <stdexcept>

namespace agentwire::bus {
namespace {

constexpr const char* kPrefix = "agentwire:u:";
constexpr const char* kNodePrefix = "agentwire:n:";

timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

struct ReplyFree {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

redisContext* connectTo(const RedisBus::Options& o, std::string& error) {
  redisContext* c = redisConnectWithTimeout(o.host.c_str(), o.port, toTimeval(o.timeout));
  if (c == nullptr || c->err != 0) {
    error = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, toTimeval(o.timeout));
  return c;
}

}  // namespace

RedisBus::RedisBus(Options options, std::vector<std::string> dependencies)
    : Component("bus", std::move(dependencies),
                options.required ? lifecycle::Criticality::Critical : lifecycle::Criticality::Optional),
      options_(std::move(options)),
      log_(core::logger("bus")) {}

RedisBus::~RedisBus() {
  stop();
}

RedisBus::Options RedisBus::parseUrl(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) throw std::invalid_argument("must start with redis://");
  std::string rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  Options o;
  auto colon = rest.rfind(':');
  o.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (o.host.empty()) throw std::invalid_argument("has no host");
  if (colon != std::string::npos) {
    std::string port = rest.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), o.port);
    if (ec != std::errc{} || p != port.data() + port.size() || o.port <= 0 || o.port > 65535) {
      throw std::invalid_argument("has an invalid port '" + port + "'");
    }
  }
  return o;
}

std::string RedisBus::channelOf(const std::string& user) {
  return kPrefix + user;
}

void RedisBus::start() {
  {
    std::lock_guard lock(sub_mutex_);
    stopping_ = false;
  }
  // A Redis that is down at start is an outage like any other: degraded, retried.
  if (!connectSubscriber()) markDown(last_error_);
  subscriber_ = std::thread([this] {
    core::setThreadName("aw-bus-sub");
    subscriberLoop();
  });
  {
    std::lock_guard lock(pub_mutex_);
    pub_stopping_ = false;
  }
  publisher_ = std::thread([this] {
    core::setThreadName("aw-bus-pub");
    publisherLoop();
  });
}

void RedisBus::stop() {
  {
    std::lock_guard lock(sub_mutex_);
    stopping_ = true;
  }
  if (subscriber_.joinable()) subscriber_.join();
  if (sub_ != nullptr) {
    redisFree(sub_);
    sub_ = nullptr;
  }
  {
    std::lock_guard lock(pub_mutex_);
    pub_stopping_ = true;
  }
  pub_cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (pub_ != nullptr) {
    redisFree(pub_);
    pub_ = nullptr;
  }
}

void RedisBus::markDown(const std::string& why) {
  {
    std::lock_guard lock(sub_mutex_);
    last_error_ = why;
  }
  if (live_.exchange(false) || health().state != lifecycle::HealthState::Degraded) {
    log_->warn(
        "Redis at {}:{} is not carrying notices: {}; events still reach every connection, through "
        "periodic checks of the store",
        options_.host, options_.port, why);
  }
  setHealth(lifecycle::HealthState::Degraded, "Redis: " + why);
}

void RedisBus::markUp() {
  if (!live_.exchange(true)) {
    log_->info("Redis at {}:{} carries notices", options_.host, options_.port);
    setHealth(lifecycle::HealthState::Healthy);
  }
}

void RedisBus::publish(const std::vector<std::pair<std::string, int64_t>>& heads) {
  if (heads.empty()) return;
  {
    std::lock_guard lock(pub_mutex_);
    for (const auto& [user, head] : heads) {
      auto& h = to_publish_[user];
      h = std::max(h, head);
    }
  }
  pub_cv_.notify_one();
}

void RedisBus::sendToNode(const std::string& node_id, const std::string& message) {
  {
    std::lock_guard lock(pub_mutex_);
    if (to_control_.size() >= kMaxPendingNotices) {
      ++stats_.notices_dropped;
      return;
    }
    to_control_.emplace_back(std::string(kNodePrefix) + node_id, message);
  }
  pub_cv_.notify_one();
}

void RedisBus::publisherLoop() {
  std::unique_lock lock(pub_mutex_);
  for (;;) {
    pub_cv_.wait(lock, [&] { return pub_stopping_ || !to_publish_.empty() || !to_control_.empty(); });
    if (pub_stopping_) return;
    if (std::chrono::steady_clock::now() < pub_retry_at_) {
      pub_cv_.wait_until(lock, pub_retry_at_, [&] { return pub_stopping_; });
      continue;
    }
    std::vector<std::pair<std::string, int64_t>> heads(to_publish_.begin(), to_publish_.end());
    std::vector<std::pair<std::string, std::string>> controls(to_control_.begin(), to_control_.end());
    to_publish_.clear();
    to_control_.clear();
    lock.unlock();
    std::vector<std::pair<std::string, std::string>> messages = controls;
    for (const auto& [user, head] : heads) messages.emplace_back(channelOf(user), std::to_string(head));
    bool sent = publishNow(messages);
    lock.lock();
    if (sent) continue;
    // Kept for the next attempt, within a bound (past it, the periodic head check covers the
    // heads; a lost stop is counted). A head is a level, not an edge: the newest is as good as each.
    for (auto it = controls.rbegin(); it != controls.rend(); ++it) to_control_.push_front(*it);
    for (const auto& [user, head] : heads) {
      auto it = to_publish_.find(user);
      if (it != to_publish_.end()) {
        it->second = std::max(it->second, head);
      } else if (to_publish_.size() < kMaxPendingNotices) {
        to_publish_.emplace(user, head);
      } else {
        ++stats_.notices_dropped;
      }
    }
  }
}

bool RedisBus::sendAll(const std::vector<std::pair<std::string, std::string>>& messages) {
  // Pipelined: all PUBLISHes go out, then all answers are read.
  for (const auto& [channel, value] : messages) {
    redisAppendCommand(pub_, "PUBLISH %b %b", channel.data(), channel.size(), value.data(), value.size());
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(pub_, &raw) != REDIS_OK) return false;
    freeReplyObject(raw);
  }
  stats_.published += messages.size();
  return true;
}

bool RedisBus::publishNow(const std::vector<std::pair<std::string, std::string>>& messages) {
  // A connection that worked before may have died since (Redis restarted): one more attempt on a
  // new one before calling Redis down.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = pub_ == nullptr;
    if (fresh) {
      std::string error;
      pub_ = connectTo(options_, error);
      if (pub_ == nullptr) break;
    }
    if (sendAll(messages)) return true;
    redisFree(pub_);  // its state is unknown after a failure
    pub_ = nullptr;
    if (fresh) break;
  }
  stats_.publish_failures += messages.size();
  pub_retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  return false;
}

void RedisBus::subscribe(const std::string& user) {
  std::lock_guard lock(sub_mutex_);
  if (wanted_[user]++ == 0) {
    to_unsubscribe_.erase(user);
    to_subscribe_.insert(user);
  }
}

void RedisBus::unsubscribe(const std::string& user) {
  std::lock_guard lock(sub_mutex_);
  auto it = wanted_.find(user);
  if (it == wanted_.end()) return;
  if (--it->second <= 0) {
    wanted_.erase(it);
    to_subscribe_.erase(user);
    to_unsubscribe_.insert(user);
  }
}

bool RedisBus::connectSubscriber() {
  std::string error;
  redisContext* c = connectTo(options_, error);
  if (c == nullptr) {
    std::lock_guard lock(sub_mutex_);
    last_error_ = "cannot connect: " + error;
    return false;
  }
  // From here the context only buffers and parses; the loop does the waiting, in poll(), so that
  // it wakes for new (un)subscriptions, pings and stop() without a read timeout (which hiredis
  // 0.14 treats as a broken connection).
  int flags = fcntl(c->fd, F_GETFL);
  if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    std::lock_guard lock(sub_mutex_);
    last_error_ = "cannot make the socket non-blocking";
    redisFree(c);
    return false;
  }
  c->flags &= ~REDIS_BLOCK;
  std::vector<std::string> users;
  {
    std::lock_guard lock(sub_mutex_);
    for (const auto& [u, n] : wanted_) users.push_back(u);
    to_subscribe_.clear();
    to_unsubscribe_.clear();
  }
  // A placeholder channel keeps the connection in subscribed mode even with no user yet.
  std::string heartbeat = std::string(kPrefix) + "-";
  redisAppendCommand(c, "SUBSCRIBE %b", heartbeat.data(), heartbeat.size());
  std::string own = std::string(kNodePrefix) + options_.node_id;
  redisAppendCommand(c, "SUBSCRIBE %b", own.data(), own.size());
  for (const auto& u : users) {
    std::string ch = channelOf(u);
    redisAppendCommand(c, "SUBSCRIBE %b", ch.data(), ch.size());
  }
  if (sub_ != nullptr) redisFree(sub_);
  sub_ = c;
  return true;
}

boost::json::object RedisBus::details() const {
  return {{"live", live_.load()},
          {"published", stats_.published.load()},
          {"publish_failures", stats_.publish_failures.load()},
          {"notices_dropped", stats_.notices_dropped.load()},
          {"control_received", stats_.control_received.load()},
          {"received", stats_.received.load()},
          {"reconnects", stats_.reconnects.load()}};
}

void RedisBus::dropSubscriber(const std::string& why) {
  markDown(why);
  redisFree(sub_);
  sub_ = nullptr;
}

void RedisBus::onReply(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 2) return;
  std::string kind(reply.element[0]->str, reply.element[0]->len);
  if (kind == "pong") {
    pong_due_ = std::chrono::steady_clock::time_point::max();
    markUp();
    return;
  }
  if (reply.elements < 3 || reply.element[1]->type != REDIS_REPLY_STRING) return;
  std::string channel(reply.element[1]->str, reply.element[1]->len);
  if (kind == "message" && channel == std::string(kNodePrefix) + options_.node_id &&
      reply.element[2]->type == REDIS_REPLY_STRING) {
    ++stats_.control_received;
    if (control_) control_(std::string(reply.element[2]->str, reply.element[2]->len));
    return;
  }
  if (channel.rfind(kPrefix, 0) != 0) return;
  std::string user = channel.substr(std::string(kPrefix).size());
  if (kind == "subscribe") {
    // Commits made between the user's first connection here and this moment were published to
    // nobody here: the listener reads the head from the store once.
    if (user != "-" && listener_) listener_(user, kUnknownHead);
    return;
  }
  if (kind != "message" || reply.element[2]->type != REDIS_REPLY_STRING) return;
  std::string value(reply.element[2]->str, reply.element[2]->len);
  int64_t head = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), head);
  if (ec != std::errc{} || head <= 0) return;
  ++stats_.received;
  if (listener_) listener_(user, head);
}

void RedisBus::subscriberLoop() {
  auto last_ping = std::chrono::steady_clock::now();
  pong_due_ = std::chrono::steady_clock::time_point::max();
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    std::set<std::string> add, remove;
    {
      std::lock_guard lock(sub_mutex_);
      if (stopping_) return;
      add.swap(to_subscribe_);
      remove.swap(to_unsubscribe_);
    }
    if (sub_ == nullptr) {
      std::this_thread::sleep_for(backoff);  // the retry interval of an outage, not a wait on a condition
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      if (!connectSubscriber()) {
        markDown(last_error_);
        continue;
      }
      ++stats_.reconnects;
      backoff = std::chrono::milliseconds(100);
      pong_due_ = std::chrono::steady_clock::time_point::max();
      last_ping = std::chrono::steady_clock::time_point{};  // ping at once: live only once answered
      if (resync_) resync_();                               // notices may have been missed while down
      continue;
    }
    for (const auto& u : add) {
      std::string ch = channelOf(u);
      redisAppendCommand(sub_, "SUBSCRIBE %b", ch.data(), ch.size());
    }
    for (const auto& u : remove) {
      std::string ch = channelOf(u);
      redisAppendCommand(sub_, "UNSUBSCRIBE %b", ch.data(), ch.size());
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_ping >= std::chrono::seconds(1)) {
      redisAppendCommand(sub_, "PING");
      last_ping = now;
      if (pong_due_ == std::chrono::steady_clock::time_point::max()) pong_due_ = now + std::chrono::seconds(2);
    }
    if (now > pong_due_) {
      // A hung Redis (SIGSTOP) answers nothing: the PING did not come back in time.
      dropSubscriber("no answer to PING within 2 s");
      continue;
    }
    int written = 0;
    if (redisBufferWrite(sub_, &written) != REDIS_OK) {
      dropSubscriber(std::string("subscription lost: ") + sub_->errstr);
      continue;
    }
    pollfd pfd{sub_->fd, static_cast<short>(POLLIN | (written != 0 ? 0 : POLLOUT)), 0};
    if (::poll(&pfd, 1, 100) < 0 && errno != EINTR) {
      dropSubscriber(std::string("poll failed: ") + std::strerror(errno));
      continue;
    }
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && redisBufferRead(sub_) != REDIS_OK) {
      dropSubscriber(std::string("subscription lost: ") + sub_->errstr);
      continue;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisGetReply(sub_, &raw) != REDIS_OK) {
        dropSubscriber(std::string("subscription lost: ") + sub_->errstr);
        break;
      }
      if (raw == nullptr) break;
      ReplyPtr reply(static_cast<redisReply*>(raw));
      onReply(*reply);
    }
  }
}

}  // namespace agentwire::bus
