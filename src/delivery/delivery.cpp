#include "delivery/delivery.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>

namespace agentwire::delivery {
namespace {
constexpr int kCatchUpBatch = 500;
}

Delivery::Delivery(store::Store& store, std::vector<std::string> dependencies)
    : Component("delivery", std::move(dependencies)), store_(store), log_(core::logger("delivery")) {}

void Delivery::start() {
  std::lock_guard lock(wq_mutex_);
  writer_stop_ = false;
  writer_running_ = true;
  writer_ = std::thread([this] {
    core::setThreadName("aw-writer");
    writerLoop();
  });
}

void Delivery::stop() {
  {
    std::lock_guard lock(wq_mutex_);
    if (!writer_running_) return;
    writer_stop_ = true;  // the writer drains the queue before it exits: nothing queued is lost
  }
  wq_cv_.notify_all();
  writer_.join();
  {
    std::lock_guard lock(wq_mutex_);
    writer_running_ = false;
  }
  std::unique_lock lock(users_mutex_);
  users_.clear();
  connections_ = 0;
  users_connected_ = 0;
}

void Delivery::flush() {
  std::unique_lock lock(wq_mutex_);
  room_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

std::pair<std::shared_ptr<Delivery::UserState>, std::unique_lock<std::mutex>> Delivery::lockUser(
    const std::string& user_id) {
  for (;;) {
    auto us = userState(user_id, true);
    std::unique_lock lock(us->mutex);
    if (!us->detached) return {std::move(us), std::move(lock)};
  }
}

std::optional<ThreadInfo> Delivery::threadInfo(const std::string& thread_id) {
  {
    std::shared_lock lock(threads_mutex_);
    auto it = threads_.find(thread_id);
    if (it != threads_.end()) return it->second;
  }
  auto t = store_.findThread(thread_id);
  if (!t) return std::nullopt;
  rememberThread(*t);
  return ThreadInfo{t->user_id, t->agent};
}

void Delivery::rememberThread(const store::Thread& t) {
  std::unique_lock lock(threads_mutex_);
  if (threads_.size() > 200000) threads_.clear();  // a bounded cache; threads are re-read on a miss
  threads_.emplace(t.id, ThreadInfo{t.user_id, t.agent});
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

namespace {

void appendJsonString(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

std::shared_ptr<const std::string> Delivery::frameOf(const store::StoredEvent& ev) {
  // Concatenated rather than built as a JSON value: `data` is already serialized JSON, and
  // parsing it back only to serialize it again would double the cost of every event.
  std::string f;
  f.reserve(112 + ev.type.size() + ev.thread_id.size() + ev.run_id.size() + ev.data_json.size());
  f += R"({"type":)";
  appendJsonString(f, ev.type);
  f += R"(,"seq":)";
  f += std::to_string(ev.seq);
  f += R"(,"thread_id":)";
  appendJsonString(f, ev.thread_id);
  if (!ev.run_id.empty()) {
    f += R"(,"run_id":)";
    appendJsonString(f, ev.run_id);
  }
  f += R"(,"ts":)";
  f += std::to_string(ev.ts_ms);
  f += R"(,"data":)";
  f += ev.data_json.empty() ? std::string_view("{}") : std::string_view(ev.data_json);
  f += '}';
  return std::make_shared<const std::string>(std::move(f));
}

store::StreamInfo Delivery::attach(const ConnectionPtr& conn, bool live) {
  auto [us, lock] = lockUser(conn->userId());
  auto info = store_.streamInfo(conn->userId());
  Entry e;
  e.conn = conn;
  e.raw = conn.get();
  e.next_seq = info.last_seq + 1;
  e.mode = live ? Mode::Live : Mode::Held;
  us->entries.push_back(std::move(e));
  if (us->entries.size() == 1) ++users_connected_;
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
    if (before > 0 && us->entries.empty()) --users_connected_;
  }
  releaseIfEmpty(conn.userId(), us);
}

void Delivery::releaseIfEmpty(const std::string& user_id, const std::shared_ptr<UserState>& us) {
  std::unique_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  // Checked under both locks: another connection of the user may have attached meanwhile.
  if (it != users_.end() && it->second == us) {
    std::lock_guard ulock(us->mutex);
    if (us->entries.empty() && us->pending == 0) {
      us->detached = true;
      users_.erase(it);
    }
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
      // pump() continues when this step's frames are written. The notice is queued behind
      // them, whichever thread runs this step, so it cannot be missed.
      conn->replaying = true;
      conn->notifyWhenDrained();
      return true;
    }
    int64_t head = store_.streamInfo(user_id).last_seq;
    if (e.next_seq > head) break;
    int limit = static_cast<int>(std::min<std::size_t>(kCatchUpBatch, budget_.frames - frames));
    auto batch = store_.eventsAfter(user_id, e.next_seq - 1, limit);
    if (batch.empty() || batch.front().seq != e.next_seq) {
      // Retention removed events this connection still needed (a slow replay): it cannot be
      // continued without a gap, so the client is told to reload and continues live from the head.
      log_->warn("connection '{}' of user '{}' needs seq {} which is no longer retained; resync", conn->id(), user_id,
                 e.next_seq);
      auto info = store_.streamInfo(user_id);
      boost::json::object o{
          {"type", "resync_required"},
          {"data", boost::json::object{{"epoch", info.epoch},
                                       {"last_seq", info.last_seq},
                                       {"reason", "events were removed by retention during replay"}}}};
      conn->send(std::make_shared<const std::string>(boost::json::serialize(o)));
      e.next_seq = info.last_seq + 1;
      e.resume_pending = false;
      break;
    }
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
  auto thread = threadInfo(event.thread_id);
  if (!thread || thread->user_id != user_id) {
    ++stats_.failures;
    ++(thread ? stats_.failures_forbidden : stats_.failures_thread_not_found);
    const char* code = thread ? "forbidden" : "thread_not_found";
    std::string msg = fmt::format(
        "MessageDeliveryError: cannot deliver '{}' to thread '{}' for user '{}': {} (user has {} active "
        "connections; {} users connected)",
        event.type, event.thread_id, user_id, thread ? "the thread belongs to another user" : "no such thread",
        connectionsOf(user_id), userCount());
    log_->error("{}", msg);
    recordFailure(user_id, event.thread_id, event.type, code);
    return core::Error{code, msg};
  }
  store::StoredEvent stored;
  stored.user_id = user_id;
  stored.type = std::move(event.type);
  stored.thread_id = std::move(event.thread_id);
  stored.run_id = std::move(event.run_id);
  stored.data_json = boost::json::serialize(event.data);
  stored.ts_ms = core::nowMs();

  if (!waitForRoom()) return core::Error{"not_ready", "delivery is not running"};
  auto [us, ulock] = lockUser(user_id);
  if (us->last_seq < 0) us->last_seq = store_.streamInfo(user_id).last_seq;
  stored.seq = ++us->last_seq;
  ++us->pending;
  int64_t seq = stored.seq;
  // Queued under the user lock, so the writer sees each user's events in seq order.
  enqueue(Pending{us, std::move(stored), std::nullopt, nullptr});
  return seq;
}

void Delivery::enqueue(Pending&& p) {
  {
    std::lock_guard lock(wq_mutex_);
    wq_.push_back(std::move(p));
    ++in_flight_;
  }
  wq_cv_.notify_one();
}

bool Delivery::waitForRoom() {
  // Never called while holding a user lock: the writer needs user locks to drain the queue.
  std::unique_lock lock(wq_mutex_);
  if (!writer_running_ || writer_stop_) return false;
  room_cv_.wait(lock, [&] { return wq_.size() < kMaxPending || writer_stop_; });
  return !writer_stop_;
}

void Delivery::storeMessage(store::Message m, MessageDone done) {
  if (m.id.empty()) m.id = core::newId("msg");
  if (m.created_ms == 0) m.created_ms = core::nowMs();
  if (!waitForRoom()) {
    if (done) done(core::Error{"not_ready", "delivery is not running"});
    return;
  }
  enqueue(Pending{nullptr, {}, std::move(m), std::move(done)});
}

void Delivery::writerLoop() {
  std::vector<Pending> batch;
  std::vector<store::StoredEvent> events;
  std::vector<store::Message> messages;
  std::map<std::string, int64_t> acks;
  for (;;) {
    {
      std::unique_lock lock(wq_mutex_);
      wq_cv_.wait(lock, [&] { return !wq_.empty() || writer_stop_; });
      if (wq_.empty()) return;  // stopping, and everything queued was written
      while (!wq_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(wq_.front()));
        wq_.pop_front();
      }
    }
    room_cv_.notify_all();
    events.clear();
    messages.clear();
    acks.clear();
    for (const auto& p : batch) {
      if (p.message) {
        messages.push_back(*p.message);
      } else if (p.ack_seq > 0) {
        auto& a = acks[p.ev.user_id];
        a = std::max(a, p.ack_seq);
      } else {
        events.push_back(p.ev);
      }
    }
    auto committed = store_.commitBatch(messages, events);
    // Acks after the events they may refer to are committed (an ack never passes the last seq).
    for (const auto& [user, seq] : acks) {
      int64_t n = store_.ackEvents(user, seq);
      if (user != uncounted_user_) stats_.acked += static_cast<uint64_t>(n);
    }
    if (committed) {
      stats_.appended += std::count_if(events.begin(), events.end(),
                                       [&](const store::StoredEvent& e) { return e.user_id != uncounted_user_; });
      if (failing_) log_->info("event stream writes recovered");
      failing_ = false;
    } else {
      stats_.failures += batch.size();
      stats_.failures_store_error += batch.size();
      for (const auto& e : events) recordFailure(e.user_id, e.thread_id, e.type, "store_error");
      if (!failing_) {
        log_->error("cannot commit {} events and {} messages: {}; they are not delivered (counted as failures)",
                    events.size(), messages.size(), committed.error().message);
      }
      failing_ = true;
    }
    for (auto& p : batch) {
      if (p.ack_seq > 0) continue;
      if (p.message) {
        if (p.done) p.done(committed ? core::Result<store::Message>(*p.message) : committed.error());
        continue;
      }
      std::unique_lock lock(p.us->mutex);
      if (committed) {
        int reached = fanOut(*p.us, p.ev);
        auto latency = std::chrono::steady_clock::now() - p.queued_at;
        if (p.ev.user_id != uncounted_user_) stats_.latency.observe(std::chrono::duration<double>(latency).count());
        if (recorder_->enabled()) {
          analytics::Record r;
          r.kind = "event_delivered";
          r.user_id = p.ev.user_id;
          r.thread_id = p.ev.thread_id;
          r.run_id = p.ev.run_id;
          r.event_type = p.ev.type;
          r.seq = p.ev.seq;
          r.count = reached;
          r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
          recorder_->record(std::move(r));
        }
        // Retention runs per user as the stream grows, amortised over a tenth of the bound.
        // Keyed on the seq, not on a counter in the user's in-memory state: that state is released
        // whenever the user has no connection and nothing pending, which would reset a counter and
        // let the stream of a user who is offline grow past the bound (found by the browser tests).
        if (p.ev.seq % std::max<int64_t>(16, retention_.events / 10) == 0) {
          int64_t cutoff = retention_.age_ms > 0 ? core::nowMs() - retention_.age_ms : 0;
          store_.pruneEvents(p.ev.user_id, retention_.events, cutoff);
        }
      } else {
        p.us->last_seq = -1;  // re-read the committed head before assigning the next seq
      }
      --p.us->pending;
      bool idle = p.us->entries.empty() && p.us->pending == 0;
      lock.unlock();
      if (idle) releaseIfEmpty(p.ev.user_id, p.us);
    }
    {
      std::lock_guard lock(wq_mutex_);
      in_flight_ -= batch.size();
    }
    room_cv_.notify_all();
    batch.clear();
  }
}

void Delivery::recordFailure(const std::string& user_id, const std::string& thread_id, const std::string& type,
                             const std::string& reason) {
  if (!recorder_->enabled()) return;
  analytics::Record r;
  r.kind = "delivery_failed";
  r.user_id = user_id;
  r.thread_id = thread_id;
  r.event_type = type;
  r.reason = reason;
  recorder_->record(std::move(r));
}

int Delivery::fanOut(UserState& us, const store::StoredEvent& ev) {
  int reached = 0;
  std::shared_ptr<const std::string> frame;
  bool prune = false;
  for (auto& e : us.entries) {
    // Held and catching-up connections pull this event from the store when their turn comes;
    // a connection whose replay already covered it has moved past it.
    if (e.mode != Mode::Live || e.next_seq > ev.seq) continue;
    if (e.next_seq < ev.seq) {
      catchUp(e, ev.user_id);
      continue;
    }
    auto conn = e.conn.lock();
    if (!conn) {
      prune = true;
      continue;
    }
    if (!frame) frame = frameOf(ev);
    if (conn->send(frame)) {
      ++reached;
      if (ev.user_id != uncounted_user_) ++stats_.sent;
      e.next_seq = ev.seq + 1;
    } else {
      e.conn.reset();  // closed: it will not take frames again (its event stays in the stream)
      prune = true;
    }
  }
  if (prune) {
    // Connections that went away without detach (or refuse frames) leave the registry here.
    auto before = us.entries.size();
    std::erase_if(us.entries, [](const Entry& e) { return e.conn.expired(); });
    connections_ -= before - us.entries.size();
    if (before > 0 && us.entries.empty()) --users_connected_;
  }
  return reached;
}

void Delivery::ack(const std::string& user_id, int64_t seq) {
  if (seq <= 0 || !waitForRoom()) return;
  store::StoredEvent who;
  who.user_id = user_id;
  enqueue(Pending{nullptr, std::move(who), std::nullopt, nullptr, seq});
}

std::size_t Delivery::connectionCount() const {
  return connections_.load();
}

std::size_t Delivery::userCount() const {
  return users_connected_.load();
}

std::size_t Delivery::connectionsOf(const std::string& user_id) const {
  std::shared_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  if (it == users_.end()) return 0;
  std::lock_guard ulock(it->second->mutex);
  return it->second->entries.size();
}

}  // namespace agentwire::delivery
