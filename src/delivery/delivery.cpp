#include "delivery/delivery.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"
#include "delivery/frames.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>
#include <limits>

namespace agentwire::delivery {
namespace {
constexpr int kCatchUpBatch = 500;
// WebSocket close code "try again later": the server could not read the stream right now.
constexpr int kTryAgainLater = 1013;
}  // namespace

Delivery::Delivery(store::Store& store, std::vector<std::string> dependencies)
    : Delivery(std::vector<store::Store*>{&store}, std::move(dependencies)) {}

Delivery::Delivery(std::vector<store::Store*> shards, std::vector<std::string> dependencies)
    : Component("delivery", std::move(dependencies)),
      shard_map_(shards.size()),
      log_(core::logger("delivery")),
      threads_(*shards.at(0)) {
  for (auto* store : shards) {
    shards_.push_back(Shard{store, std::make_unique<StreamWriter>(
                                       *store, StreamWriter::Options{},
                                       [this](std::vector<WriteItem>& batch,
                                              const core::Result<store::CommitStats>& r) { onCommitted(batch, r); })});
    shards_.back().writer->observeCommits(&stats_.commit_seconds, &stats_.commit_items);
  }
}

bool Delivery::writable() const {
  return std::none_of(shards_.begin(), shards_.end(), [](const Shard& s) { return s.writer->failing(); });
}

std::size_t Delivery::writerDepth() const {
  std::size_t depth = 0;
  for (const auto& s : shards_) depth += s.writer->depth();
  return depth;
}

void Delivery::setBus(bus::Bus& b, std::chrono::milliseconds check, std::chrono::milliseconds check_when_down) {
  bus_ = &b;
  check_ = check;
  check_when_down_ = check_when_down;
  bus_->setListener([this](const std::string& user, int64_t head) { onRemoteHead(user, head); });
}

void Delivery::start() {
  for (auto& s : shards_) s.writer->start();
  if (bus_ != &local_bus_) {
    std::lock_guard lock(check_mutex_);
    checking_ = true;
    checker_ = std::thread([this] {
      core::setThreadName("aw-headcheck");
      headCheckLoop();
    });
  }
}

void Delivery::stop() {
  {
    std::lock_guard lock(check_mutex_);
    checking_ = false;
  }
  check_cv_.notify_all();
  if (checker_.joinable()) checker_.join();
  for (auto& s : shards_) s.writer->stop();  // commits everything still queued: nothing accepted is lost
  std::unique_lock lock(users_mutex_);
  users_.clear();
  connections_ = 0;
  users_connected_ = 0;
}

void Delivery::flush() {
  for (auto& s : shards_) s.writer->flush();
}

std::pair<std::shared_ptr<Delivery::UserState>, std::unique_lock<std::mutex>> Delivery::lockUser(
    const std::string& user_id) {
  for (;;) {
    auto us = userState(user_id, true);
    std::unique_lock lock(us->mutex);
    if (!us->detached) return {std::move(us), std::move(lock)};
  }
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

core::Result<store::StreamInfo> Delivery::attach(const ConnectionPtr& conn, bool live) {
  auto [us, lock] = lockUser(conn->userId());
  auto info = storeOf(conn->userId()).streamInfo(conn->userId());
  if (!info) {
    bool idle = us->entries.empty() && us->pending == 0;
    lock.unlock();
    if (idle) releaseIfEmpty(conn->userId(), us);
    return info.error();
  }
  Entry e;
  e.conn = conn;
  e.raw = conn.get();
  e.next_seq = info->last_seq + 1;
  e.mode = live ? Mode::Live : Mode::Held;
  us->entries.push_back(std::move(e));
  if (us->entries.size() == 1) {
    ++users_connected_;
    interest(conn->userId(), true);
  }
  ++connections_;
  return info;
}

void Delivery::interest(const std::string& user_id, bool on) {
  if (user_id == uncounted_user_) return;  // the self-check is local to each node
  if (on) {
    bus_->subscribe(user_id);
  } else {
    bus_->unsubscribe(user_id);
  }
}

void Delivery::onRemoteHead(const std::string& user_id, int64_t head) {
  // Queued for the head-check thread, coalesced per user: a burst of notices for one user costs
  // one read of its stream, and the bus's thread never waits on the store.
  if (head == bus::kUnknownHead) head = std::numeric_limits<int64_t>::max();  // read whatever is there
  {
    std::lock_guard lock(check_mutex_);
    auto& h = remote_heads_[user_id];
    h = std::max(h, head);
  }
  check_cv_.notify_one();
}

void Delivery::applyRemoteHead(const std::string& user_id, int64_t head) {
  auto us = userState(user_id, false);
  if (!us) return;
  std::lock_guard lock(us->mutex);
  // Held and catching-up connections read the stream when their turn comes; live ones that have
  // not read this far get the new events. One read serves them all, from the oldest position.
  int64_t from = std::numeric_limits<int64_t>::max();
  for (const auto& e : us->entries) {
    if (e.mode == Mode::Live && e.next_seq <= head) from = std::min(from, e.next_seq);
  }
  if (from == std::numeric_limits<int64_t>::max()) return;
  auto batch = storeOf(user_id).eventsAfter(user_id, from - 1, static_cast<int>(kCatchUpBatch));
  if (batch) {
    // A thread deleted through another node: this node's cache must not accept messages for it.
    for (const auto& ev : *batch) {
      if (ev.type == "thread_deleted") threads_.forget(ev.thread_id);
    }
  }
  bool gone = false;
  for (auto& e : us->entries) {
    if (e.mode != Mode::Live || e.next_seq > head) continue;
    if (batch && pushLive(e, *batch)) continue;
    if (!catchUp(e, user_id)) gone = true;  // the general path: budget, retention, a long backlog
  }
  if (gone) dropGone(*us, user_id);
}

bool Delivery::pushLive(Entry& e, const std::vector<store::StoredEvent>& batch) {
  // Only the simple case, as a live push would send it: the batch is all there is (shorter than a
  // catch-up step), continues exactly where the connection is, and fits under the budget.
  if (batch.size() >= static_cast<std::size_t>(kCatchUpBatch)) return false;
  if (batch.empty() || e.next_seq > batch.back().seq) return true;  // nothing new for this one
  auto it = std::find_if(batch.begin(), batch.end(), [&](const auto& ev) { return ev.seq == e.next_seq; });
  if (it == batch.end()) return false;  // a gap (retention): catch-up sends the resync
  auto conn = e.conn.lock();
  if (!conn) return false;
  auto count = static_cast<std::size_t>(batch.end() - it);
  if (conn->queuedFrames() + count > budget_.frames || conn->queuedBytes() >= budget_.bytes) return false;
  for (; it != batch.end(); ++it) {
    if (!sendLive(e, *conn, eventFrame(*it), *it)) return false;  // closed: catch-up finds it gone
  }
  return true;
}

bool Delivery::sendLive(Entry& e, Connection& conn, std::shared_ptr<const std::string> frame,
                        const store::StoredEvent& ev) {
  if (!conn.send(std::move(frame))) {
    e.conn.reset();  // closed: it will not take frames again (its events stay in the stream)
    return false;
  }
  if (ev.user_id != uncounted_user_) ++stats_.sent;
  e.next_seq = ev.seq + 1;
  return true;
}

void Delivery::checkHeads() {
  std::vector<std::string> users;
  {
    std::shared_lock lock(users_mutex_);
    for (const auto& [user, us] : users_) {
      if (user != uncounted_user_) users.push_back(user);
    }
  }
  if (users.empty()) return;
  std::vector<std::vector<std::string>> per_shard(shards_.size());
  for (auto& u : users) per_shard[shard_map_.shardOf(u)].push_back(std::move(u));
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (per_shard[i].empty()) continue;
    auto heads = shards_[i].store->streamHeads(per_shard[i]);
    if (!heads) {
      log_->warn("cannot check stream heads: {}", heads.error().message);
      continue;
    }
    for (const auto& [user, head] : *heads) onRemoteHead(user, head);
  }
}

void Delivery::headCheckLoop() {
  // Applies the heads other nodes announced, and finds notices lost on the bus (a node died
  // between commit and publish, Redis down) by reading the heads of every connected user. Wakes at
  // the shorter interval, so that the bus going down shortens the wait at once.
  auto last = std::chrono::steady_clock::now();
  std::unique_lock lock(check_mutex_);
  while (checking_) {
    check_cv_.wait_for(lock, std::min(check_, check_when_down_), [&] { return !checking_ || !remote_heads_.empty(); });
    if (!checking_) return;
    std::map<std::string, int64_t> heads;
    heads.swap(remote_heads_);
    lock.unlock();
    for (const auto& [user, head] : heads) applyRemoteHead(user, head);
    auto now = std::chrono::steady_clock::now();
    if (now - last >= (bus_->live() ? check_ : check_when_down_)) {
      last = now;
      checkHeads();
    }
    lock.lock();
  }
}

void Delivery::detach(const Connection& conn) {
  auto us = userState(conn.userId(), false);
  if (!us) return;
  {
    std::lock_guard lock(us->mutex);
    auto before = us->entries.size();
    std::erase_if(us->entries, [&](const Entry& e) { return e.raw == &conn; });
    connections_ -= before - us->entries.size();
    if (before > 0 && us->entries.empty()) {
      --users_connected_;
      interest(conn.userId(), false);
    }
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
  auto unreadable = [&](const core::Error& err) {
    // The stream cannot be read right now: the client reconnects and resumes where it is.
    log_->warn("cannot read the stream of user '{}' for connection '{}': {}; closing it (1013)", user_id, conn->id(),
               err.message);
    conn->closeWith(kTryAgainLater, "unavailable: the stream cannot be read right now; resume later");
    e.conn.reset();
    return false;
  };
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
    auto info = storeOf(user_id).streamInfo(user_id);
    if (!info) return unreadable(info.error());
    if (e.next_seq > info->last_seq) break;
    int limit = static_cast<int>(std::min<std::size_t>(kCatchUpBatch, budget_.frames - frames));
    auto batch = storeOf(user_id).eventsAfter(user_id, e.next_seq - 1, limit);
    if (!batch) return unreadable(batch.error());
    if (batch->empty() || batch->front().seq != e.next_seq) {
      // Retention removed events this connection still needed (a slow replay): it cannot be
      // continued without a gap, so the client is told to reload and continues live from the head.
      log_->warn("connection '{}' of user '{}' needs seq {} which is no longer retained; resync", conn->id(), user_id,
                 e.next_seq);
      conn->send(resyncFrame(*info, "events were removed by retention during replay", {}));
      e.next_seq = info->last_seq + 1;
      e.resume_pending = false;
      break;
    }
    for (const auto& ev : *batch) {
      auto frame = eventFrame(ev);
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
    conn->send(resumeCompleteFrame(e.resume_from, e.next_seq - 1, e.resume_ref));
  }
  return true;
}

core::Result<Delivery::ResumeOutcome> Delivery::resume(Connection& conn, int64_t last_seq, const std::string& epoch,
                                                       const std::string& ref) {
  auto us = userState(conn.userId(), false);
  if (!us) return core::Error{"internal", "connection is not attached"};
  std::lock_guard lock(us->mutex);
  Entry* e = findEntry(*us, conn);
  if (e == nullptr) return core::Error{"internal", "connection is not attached"};
  auto info = storeOf(conn.userId()).streamInfo(conn.userId());
  if (!info) return info.error();
  if ((!epoch.empty() && epoch != info->epoch) || last_seq < 0 || last_seq + 1 < info->first_seq ||
      last_seq > info->last_seq) {
    // The client's view cannot be continued; it reloads history and continues live from here.
    // The notice goes out under the user's lock, before the connection turns live: no live
    // event can precede it.
    conn.send(resyncFrame(*info,
                          fmt::format("cannot resume from seq {} of epoch '{}' (stream epoch '{}', retained {}..{})",
                                      last_seq, epoch, info->epoch, info->first_seq, info->last_seq),
                          ref));
    e->next_seq = info->last_seq + 1;
    e->mode = Mode::Live;
    conn.replaying = false;
    return ResumeOutcome::Resync;
  }
  e->next_seq = last_seq + 1;
  e->resume_pending = true;
  e->resume_from = last_seq + 1;
  e->resume_ref = ref;
  catchUp(*e, conn.userId());
  return e->mode == Mode::CatchingUp ? ResumeOutcome::Replaying : ResumeOutcome::Complete;
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

core::Result<bool> Delivery::deliver(const std::string& user_id, Event event, Backpressure bp) {
  auto thread = event.owner_checked ? core::Result<std::optional<ThreadInfo>>(ThreadInfo{user_id, {}, {}})
                                    : threadInfo(event.thread_id);
  if (!thread) {
    ++stats_.failures;
    ++stats_.failures_store_error;
    recordFailure(user_id, event.thread_id, event.type, "store_error");
    return thread.error();
  }
  if (!*thread || (*thread)->user_id != user_id) {
    bool exists = thread->has_value();
    ++stats_.failures;
    ++(exists ? stats_.failures_forbidden : stats_.failures_thread_not_found);
    const char* code = exists ? "forbidden" : "thread_not_found";
    std::string msg = fmt::format(
        "MessageDeliveryError: cannot deliver '{}' to thread '{}' for user '{}': {} (user has {} active "
        "connections; {} users connected)",
        event.type, event.thread_id, user_id, exists ? "the thread belongs to another user" : "no such thread",
        connectionsOf(user_id), userCount());
    log_->error("{}", msg);
    recordFailure(user_id, event.thread_id, event.type, code);
    return core::Error{code, msg};
  }
  WriteItem item;
  item.kind = WriteItem::Kind::Event;
  auto& stored = item.event;
  stored.user_id = user_id;
  stored.type = std::move(event.type);
  stored.thread_id = std::move(event.thread_id);
  stored.run_id = std::move(event.run_id);
  stored.data_json = boost::json::serialize(event.data);
  stored.ts_ms = core::nowMs();
  stored.run_status = std::move(event.run_status);
  stored.requires_run_in_flight = event.requires_run_in_flight;

  // Never while holding a user lock: the writer needs user locks to drain the queue.
  auto& writer = writerOf(user_id);
  if (bp == Backpressure::Wait && !writer.waitForRoom()) return core::Error{"not_ready", "delivery is not running"};
  if (bp == Backpressure::FailFast && !writer.hasRoom()) {
    return core::Error{store::kUnavailable, "the write queue is full; retry later"};
  }
  auto [us, ulock] = lockUser(user_id);
  ++us->pending;  // keeps this user's state (and so its connections' positions) until fanned out
  item.owner = us;
  writer.push(std::move(item));
  return true;
}

void Delivery::storeMessage(store::Message m, std::optional<store::RunRecord> run, MessageDone done, Backpressure bp) {
  if (m.id.empty()) m.id = core::newId("msg");
  if (m.created_ms == 0) m.created_ms = core::nowMs();
  // The message goes with its user's stream: what is delivered after it commits no earlier.
  auto& writer = writerOf(m.user_id);
  if (bp == Backpressure::FailFast && (!writer.hasRoom() || writer.failing())) {
    std::string why =
        writer.failing() ? "the store cannot write right now (" + writer.lastError() + ")" : "the write queue is full";
    if (done) done(core::Error{store::kUnavailable, why + "; the message was not stored, retry later"});
    return;
  }
  if (bp == Backpressure::Wait && !writer.waitForRoom()) {
    if (done) done(core::Error{"not_ready", "delivery is not running"});
    return;
  }
  WriteItem item;
  item.kind = WriteItem::Kind::Message;
  if (run && run->created_ms == 0) run->created_ms = m.created_ms;
  item.message = std::move(m);
  item.run = std::move(run);
  item.done = std::move(done);
  item.refusable = bp == Backpressure::FailFast;
  writer.push(std::move(item));
}

void Delivery::ack(const std::string& user_id, int64_t seq) {
  auto& writer = writerOf(user_id);
  if (seq <= 0 || !writer.hasRoom()) return;
  WriteItem item;
  item.kind = WriteItem::Kind::Ack;
  item.event.user_id = user_id;
  item.event.seq = seq;
  writer.push(std::move(item));
}

void Delivery::onCommitted(std::vector<WriteItem>& batch, const core::Result<store::CommitStats>& r) {
  if (r) {
    uint64_t appended = 0;
    for (const auto& item : batch) {
      if (item.kind == WriteItem::Kind::Event && item.event.user_id != uncounted_user_) ++appended;
    }
    stats_.appended += appended - std::min<uint64_t>(appended, r->fenced);
    if (r->fenced > 0) {
      stats_.fenced += r->fenced;
      log_->warn(
          "{} events of runs that had already ended were not stored (another node ended them as interrupted while "
          "this one was paused or cut off)",
          r->fenced);
    }
    stats_.acked += static_cast<uint64_t>(r->newly_acked);
    stats_.appended_acking += static_cast<uint64_t>(r->appended_acking);
    stats_.acked_acking += static_cast<uint64_t>(r->acked_acking);
  } else {
    std::size_t events = 0;
    std::size_t messages = 0;
    for (const auto& item : batch) {
      if (item.kind == WriteItem::Kind::Event) ++events;
      if (item.kind == WriteItem::Kind::Message) ++messages;
    }
    stats_.failures += events;
    stats_.failures_store_error += events;
    log_->error("{} events and {} messages could not be stored: {}; they are lost (counted as failures)", events,
                messages, r.error().message);
  }
  std::size_t k = 0;  // the store's seqs are in the order of the batch's events
  for (auto& item : batch) {
    switch (item.kind) {
      case WriteItem::Kind::Ack: break;
      case WriteItem::Kind::Message:
        if (item.done) item.done(r ? core::Result<store::Message>(*item.message) : r.error());
        break;
      case WriteItem::Kind::Event:
        afterEvent(item, r && k < r->seqs.size() ? r->seqs[k] : 0);
        ++k;
        break;
    }
  }
  if (!r || bus_ == &local_bus_) return;
  // Other nodes with connections of these users catch up to the new heads.
  std::map<std::string, int64_t> heads;
  for (const auto& item : batch) {
    if (item.kind != WriteItem::Kind::Event || item.event.seq <= 0 || item.event.user_id == uncounted_user_) continue;
    auto& h = heads[item.event.user_id];
    h = std::max(h, item.event.seq);
  }
  bus_->publish({heads.begin(), heads.end()});
}

void Delivery::afterEvent(WriteItem& item, int64_t seq) {
  auto& us = *std::static_pointer_cast<UserState>(item.owner);
  item.event.seq = seq;
  const auto& ev = item.event;
  std::unique_lock lock(us.mutex);
  if (seq > 0) {
    int reached = fanOut(us, ev);
    auto latency = std::chrono::steady_clock::now() - item.queued_at;
    if (ev.user_id != uncounted_user_) stats_.latency.observe(std::chrono::duration<double>(latency).count());
    if (recorder_->enabled()) {
      analytics::Record rec;
      rec.kind = "event_delivered";
      rec.user_id = ev.user_id;
      rec.thread_id = ev.thread_id;
      rec.run_id = ev.run_id;
      rec.event_type = ev.type;
      rec.seq = ev.seq;
      rec.count = reached;
      rec.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
      recorder_->record(std::move(rec));
    }
    // Retention runs per user as the stream grows, amortised over a tenth of the bound.
    // Keyed on the seq, not on a counter in the user's in-memory state: that state is released
    // whenever the user has no connection and nothing pending, which would reset a counter and
    // let the stream of a user who is offline grow past the bound (found by the browser tests).
    if (ev.seq % std::max<int64_t>(16, retention_.events / 10) == 0) {
      int64_t cutoff = retention_.age_ms > 0 ? core::nowMs() - retention_.age_ms : 0;
      auto pruned = storeOf(ev.user_id).pruneEvents(ev.user_id, retention_.events, cutoff);
      // Not fatal: the next multiple tries again.
      if (!pruned) log_->warn("retention of user '{}' skipped: {}", ev.user_id, pruned.error().message);
    }
  } else if (seq == store::CommitStats::kFenced) {
    recordFailure(ev.user_id, ev.thread_id, ev.type, "run_ended");
  } else {
    recordFailure(ev.user_id, ev.thread_id, ev.type, "store_error");
  }
  --us.pending;
  bool idle = us.entries.empty() && us.pending == 0;
  lock.unlock();
  if (idle) releaseIfEmpty(ev.user_id, std::static_pointer_cast<UserState>(item.owner));
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
      if (!catchUp(e, ev.user_id)) prune = true;
      continue;
    }
    auto conn = e.conn.lock();
    if (!conn) {
      prune = true;
      continue;
    }
    if (conn->queuedFrames() >= budget_.frames || conn->queuedBytes() >= budget_.bytes) {
      // At the high-water mark: the connection catches up from the stream once it drains,
      // instead of being handed more than it can hold.
      e.mode = Mode::CatchingUp;
      conn->replaying = true;
      conn->notifyWhenDrained();
      ++stats_.fell_back;
      continue;
    }
    if (!frame) frame = eventFrame(ev);
    if (sendLive(e, *conn, frame, ev)) {
      ++reached;
    } else {
      prune = true;
    }
  }
  if (prune) dropGone(us, ev.user_id);
  return reached;
}

void Delivery::dropGone(UserState& us, const std::string& user_id) {
  // Connections that went away without detach (or refuse frames) leave the registry here.
  auto before = us.entries.size();
  std::erase_if(us.entries, [](const Entry& e) { return e.conn.expired(); });
  connections_ -= before - us.entries.size();
  if (before > 0 && us.entries.empty()) {
    --users_connected_;
    interest(user_id, false);
  }
}

std::size_t Delivery::connectionCount() const {
  return connections_.load();
}

std::size_t Delivery::userCount() const {
  return users_connected_.load();
}

bool Delivery::readerBehind(const std::string& user_id) const {
  std::shared_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  if (it == users_.end()) return false;
  std::lock_guard ulock(it->second->mutex);
  for (const auto& e : it->second->entries) {
    if (e.mode == Mode::CatchingUp && !e.resume_pending) return true;
  }
  return false;
}

std::size_t Delivery::connectionsOf(const std::string& user_id) const {
  std::shared_lock lock(users_mutex_);
  auto it = users_.find(user_id);
  if (it == users_.end()) return 0;
  std::lock_guard ulock(it->second->mutex);
  return it->second->entries.size();
}

}  // namespace agentwire::delivery
