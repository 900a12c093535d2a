#include "delivery/delivery.hpp"

#include "core/logging.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace agentwire::delivery {
namespace {
constexpr int kCatchUpBatch = 500;
}

Delivery::Delivery(store::Store& store, std::vector<std::string> dependencies)
    : Component("delivery", std::move(dependencies)), store_(store), log_(core::logger("delivery")) {}

void Delivery::start() {}

void Delivery::stop() {
  std::unique_lock lock(users_mutex_);
  users_.clear();
  connections_ = 0;
}

std::shared_ptr<Delivery::UserState> Delivery::userState(const std::string& user_id, bool create) {
  {
    std::shared_lock lock(users_mutex_);
    auto it = users_.find(user_id);
    if (it != users_.end()) return it->second;
  }
  if (!create) return nullptr;
  std::unique_lock lock(users_mutex_);
  auto& slot = users_[user_id];
  if (!slot) slot = std::make_shared<UserState>();
  return slot;
}

std::shared_ptr<const std::string> Delivery::frameOf(const store::StoredEvent& ev) {
  boost::json::object o;
  o["type"] = ev.type;
  o["seq"] = ev.seq;
  o["thread_id"] = ev.thread_id;
  if (!ev.run_id.empty()) o["run_id"] = ev.run_id;
  o["ts"] = ev.ts_ms;
  boost::system::error_code ec;
  auto data = boost::json::parse(ev.data_json, ec);
  o["data"] = ec ? boost::json::value(boost::json::object{}) : std::move(data);
  return std::make_shared<const std::string>(boost::json::serialize(o));
}

store::StreamInfo Delivery::attach(const ConnectionPtr& conn, bool live) {
  auto us = userState(conn->userId(), true);
  std::lock_guard lock(us->mutex);
  auto info = store_.streamInfo(conn->userId());
  Entry e;
  e.conn = conn;
  e.raw = conn.get();
  e.next_seq = info.last_seq + 1;
  e.mode = live ? Mode::Live : Mode::Held;
  us->entries.push_back(std::move(e));
  ++connections_;
  return info;
}

void Delivery::detach(const Connection& conn) {
  auto us = userState(conn.userId(), false);
  if (!us) return;
  {
    std::lock_guard lock(us->mutex);
    auto before = us->entries.size();
    std::erase_if(us->entries, [&](const Entry& e) { return e.raw == &conn; });
    connections_ -= before - us->entries.size();
  }
  releaseIfEmpty(conn.userId(), us);
}

void Delivery::releaseIfEmpty(const std::string& user_id, const std::shared_ptr<UserState>& us) {
  std::unique_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  // Checked under both locks: another connection of the user may have attached meanwhile.
  if (it != users_.end() && it->second == us) {
    std::lock_guard ulock(us->mutex);
    if (us->entries.empty()) users_.erase(it);
  }
}

Delivery::Entry* Delivery::findEntry(UserState& us, const Connection& conn) {
  for (auto& e : us.entries) {
    if (e.raw == &conn) return &e;
  }
  return nullptr;
}

bool Delivery::catchUp(Entry& e, const std::string& user_id) {
  auto conn = e.conn.lock();
  if (!conn) return false;
  e.mode = Mode::CatchingUp;
  std::size_t frames = 0;
  std::size_t bytes = 0;
  for (;;) {
    // Budget first: a step that used its budget ends here, even at the head, so the switch to
    // live (and resume_complete) never lands on a backlog already at the budget.
    if (frames >= budget_.frames || bytes >= budget_.bytes) {
      conn->replaying = true;  // pump() continues when the connection's queue drains
      return true;
    }
    int64_t head = store_.streamInfo(user_id).last_seq;
    if (e.next_seq > head) break;
    int limit = static_cast<int>(std::min<std::size_t>(kCatchUpBatch, budget_.frames - frames));
    auto batch = store_.eventsAfter(user_id, e.next_seq - 1, limit);
    if (batch.empty()) break;
    for (const auto& ev : batch) {
      auto frame = frameOf(ev);
      bytes += frame->size();
      ++frames;
      if (!conn->send(std::move(frame))) return false;
      ++stats_.replayed;
      e.next_seq = ev.seq + 1;
      if (bytes >= budget_.bytes) break;
    }
  }
  // At the head: everything older went out on this connection; from here on it is live.
  e.mode = Mode::Live;
  conn->replaying = false;
  if (e.resume_pending) {
    e.resume_pending = false;
    boost::json::object o{{"type", "resume_complete"},
                          {"data", boost::json::object{{"from_seq", e.resume_from}, {"to_seq", e.next_seq - 1}}}};
    if (!e.resume_ref.empty()) o["id"] = e.resume_ref;
    conn->send(std::make_shared<const std::string>(boost::json::serialize(o)));
  }
  return true;
}

core::Result<bool> Delivery::resume(Connection& conn, int64_t last_seq, const std::string& epoch,
                                    const std::string& ref) {
  auto us = userState(conn.userId(), false);
  if (!us) return core::Error{"internal", "connection is not attached"};
  std::lock_guard lock(us->mutex);
  Entry* e = findEntry(*us, conn);
  if (e == nullptr) return core::Error{"internal", "connection is not attached"};
  auto info = store_.streamInfo(conn.userId());
  if ((!epoch.empty() && epoch != info.epoch) || last_seq < 0 || last_seq + 1 < info.first_seq ||
      last_seq > info.last_seq) {
    // The client's view cannot be continued; it reloads history and continues live from here.
    e->next_seq = info.last_seq + 1;
    e->mode = Mode::Live;
    conn.replaying = false;
    return core::Error{"resync_required",
                       fmt::format("cannot resume from seq {} of epoch '{}' (stream epoch '{}', retained {}..{})",
                                   last_seq, epoch, info.epoch, info.first_seq, info.last_seq)};
  }
  e->next_seq = last_seq + 1;
  e->resume_pending = true;
  e->resume_from = last_seq + 1;
  e->resume_ref = ref;
  catchUp(*e, conn.userId());
  return e->mode == Mode::CatchingUp;
}

void Delivery::goLive(Connection& conn) {
  auto us = userState(conn.userId(), false);
  if (!us) return;
  std::lock_guard lock(us->mutex);
  Entry* e = findEntry(*us, conn);
  if (e != nullptr && e->mode == Mode::Held) catchUp(*e, conn.userId());
}

void Delivery::pump(Connection& conn) {
  if (!conn.replaying.load()) return;
  auto us = userState(conn.userId(), false);
  if (!us) return;
  std::lock_guard lock(us->mutex);
  Entry* e = findEntry(*us, conn);
  if (e != nullptr && e->mode == Mode::CatchingUp) catchUp(*e, conn.userId());
}

core::Result<int64_t> Delivery::deliver(const std::string& user_id, Event event) {
  auto thread = store_.findThread(event.thread_id);
  if (!thread || thread->user_id != user_id) {
    ++stats_.failures;
    const char* code = thread ? "forbidden" : "thread_not_found";
    std::string msg = fmt::format(
        "MessageDeliveryError: cannot deliver '{}' to thread '{}' for user '{}': {} (user has {} active "
        "connections; {} users connected)",
        event.type, event.thread_id, user_id, thread ? "the thread belongs to another user" : "no such thread",
        connectionsOf(user_id), userCount());
    log_->error("{}", msg);
    return core::Error{code, msg};
  }
  const std::string thread_id = event.thread_id;
  store::StoredEvent stored;
  stored.user_id = user_id;
  stored.type = std::move(event.type);
  stored.thread_id = std::move(event.thread_id);
  stored.run_id = std::move(event.run_id);
  stored.data_json = boost::json::serialize(event.data);

  // The user lock is taken even for users without connections: a connection attaching
  // concurrently must see either the event in its starting seq or receive it live.
  auto us = userState(user_id, true);
  std::unique_lock lock(us->mutex);
  auto appended = store_.appendEvent(std::move(stored));
  if (!appended) {
    ++stats_.failures;
    log_->error("cannot append event for user '{}' thread '{}': {}", user_id, thread_id, appended.error().message);
    return appended.error();
  }
  ++stats_.appended;
  const auto& ev = appended.value();
  std::shared_ptr<const std::string> frame;
  for (auto& e : us->entries) {
    // Held and catching-up connections pull this event from the store when their turn comes.
    if (e.mode != Mode::Live) continue;
    if (e.next_seq < ev.seq) {
      catchUp(e, user_id);
      continue;
    }
    auto conn = e.conn.lock();
    if (!conn) continue;
    if (!frame) frame = frameOf(ev);
    if (conn->send(frame)) {
      ++stats_.sent;
      e.next_seq = ev.seq + 1;
    }
  }
  int64_t seq = ev.seq;
  bool empty = us->entries.empty();
  lock.unlock();
  if (empty) releaseIfEmpty(user_id, us);
  return seq;
}

void Delivery::ack(const std::string& user_id, int64_t seq) { store_.ackEvents(user_id, seq); }

std::size_t Delivery::connectionCount() const { return connections_.load(); }

std::size_t Delivery::userCount() const {
  std::shared_lock lock(users_mutex_);
  return users_.size();
}

std::size_t Delivery::connectionsOf(const std::string& user_id) const {
  std::shared_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  if (it == users_.end()) return 0;
  std::lock_guard ulock(it->second->mutex);
  return it->second->entries.size();
}

}  // namespace agentwire::delivery
