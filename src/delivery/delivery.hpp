#pragma once

#include "analytics/record.hpp"
#include "core/result.hpp"
#include "delivery/connection.hpp"
#include "lifecycle/component.hpp"
#include "monitoring/histogram.hpp"
#include "store/store.hpp"

#include <boost/json/object.hpp>

#include <spdlog/logger.h>
#include <optional>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace agentwire::delivery {

// What delivery and the handlers need of a thread; it never changes once the thread exists.
struct ThreadInfo {
  std::string user_id;
  std::string agent;
};

struct Event {
  std::string type;
  std::string thread_id;
  std::string run_id;
  boost::json::object data;
};

// Counters read by health, metrics and the status page.
struct DeliveryStats {
  std::atomic<uint64_t> appended{0};
  std::atomic<uint64_t> sent{0};      // frames queued to a live connection
  std::atomic<uint64_t> replayed{0};  // frames sent by resume / catch-up
  std::atomic<uint64_t> failures{0};  // refused deliveries (unknown thread, foreign thread, store error)
  std::atomic<uint64_t> failures_thread_not_found{0};
  std::atomic<uint64_t> failures_forbidden{0};
  std::atomic<uint64_t> failures_store_error{0};
  std::atomic<uint64_t> acked{0};  // events acknowledged by clients (cumulative acks, counted once)
  // deliver() called -> committed and queued on every live connection of the user.
  monitoring::Histogram latency{monitoring::Histogram::latencyBounds()};
};

// The per-user delivery model. Every event for a thread goes to the thread's owner: it is
// appended to the owner's durable stream (next seq, no gaps) and then sent, in seq order, to every
// live connection of that user. A user without connections is not an error: the event waits in
// the stream until the user resumes.
//
// Thread-safe. deliver() assigns the seq in memory under the user's lock and queues the event
// for the writer thread, which commits queued events in one transaction (group commit) and only
// then sends them, in seq order, to the user's live connections: nothing is sent that is not
// durable, and no caller waits on the disk. The queue is bounded (kMaxPending): when full,
// deliver() waits for room, which slows the agents producing events, never the I/O threads.
class Delivery final : public lifecycle::Component {
 public:
  // How much one catch-up step may queue on a connection. Replays larger than this continue
  // when the connection's queue drains (pump()), so a resume never overflows the send bound.
  struct ReplayBudget {
    std::size_t frames = SIZE_MAX;
    std::size_t bytes = SIZE_MAX;
  };

  // How much of each user's stream is kept; a resume from before it gets resync_required.
  struct Retention {
    int64_t events = 10000;
    int64_t age_ms = 0;  // 0 = no age bound
  };

  Delivery(store::Store& store, std::vector<std::string> dependencies);
  void setReplayBudget(ReplayBudget b) { budget_ = b; }  // before start()
  void setRetention(Retention r) { retention_ = r; }     // before start()
  // Traffic of this user (the self-check's) is delivered as usual but left out of stats().
  void setUncountedUser(std::string user) { uncounted_user_ = std::move(user); }  // before start()
  // Where event_delivered and delivery_failed rows go (before start()).
  void setRecorder(analytics::Recorder& r) { recorder_ = &r; }

  void start() override;
  void stop() override;

  // Registers a connection. `live` connections receive events appended from now on; a held
  // connection (live=false) receives nothing until resume() or goLive().
  // Returns the user's stream info at the moment of attaching.
  store::StreamInfo attach(const ConnectionPtr& conn, bool live);
  void detach(const Connection& conn);

  // Sends, in order, every event with seq > last_seq, then `resume_complete {from_seq, to_seq}`
  // (with id `ref`), then makes the connection live. Large replays go out in budgeted batches.
  // Fails with `resync_required` when the epoch differs or those events are no longer retained;
  // the connection is then live from the stream's head.
  core::Result<bool> resume(Connection& conn, int64_t last_seq, const std::string& epoch, const std::string& ref);
  // Makes a held connection live, first sending what was appended while it was held.
  void goLive(Connection& conn);
  // Continues a replay on a connection whose queue drained. Cheap no-op when not replaying.
  void pump(Connection& conn);

  // Delivers an event of a thread on behalf of `user_id`. The thread must exist and belong to
  // the user; otherwise the event is refused (thread_not_found / forbidden), counted and logged.
  // Returns the event's seq; the event is committed and sent shortly after, by the writer.
  core::Result<int64_t> deliver(const std::string& user_id, Event event);
  // Waits until every event queued so far is committed and sent. For tests and shutdown.
  void flush();

  // Stores a message of a thread through the same group commit as events. `done` runs on the
  // writer thread once the transaction holding it committed (or failed). Anything delivered
  // after this call is committed no earlier than the message. Ids and times are filled in.
  using MessageDone = std::function<void(const core::Result<store::Message>&)>;
  void storeMessage(store::Message m, MessageDone done);

  // Records a cumulative acknowledgement, on the writer thread (never on the caller's): acks of one
  // user in a batch are coalesced into one write. Never moves backwards.
  void ack(const std::string& user_id, int64_t seq);

  // A thread's owner and agent, from a cache in front of the store (one read per thread, then
  // none): the handlers of I/O threads ask here instead of the store, whose lock the writer holds
  // during group commits. nullopt when there is no such thread.
  std::optional<ThreadInfo> threadInfo(const std::string& thread_id);
  // Puts a thread just created into the cache, so its first message does not read the store.
  void rememberThread(const store::Thread& t);

  std::size_t connectionCount() const;
  std::size_t userCount() const;  // users with at least one live connection
  std::size_t connectionsOf(const std::string& user_id) const;
  const DeliveryStats& stats() const { return stats_; }

 private:
  enum class Mode { Held, CatchingUp, Live };
  struct Entry {
    std::weak_ptr<Connection> conn;
    const Connection* raw = nullptr;
    int64_t next_seq = 1;
    Mode mode = Mode::Held;
    bool resume_pending = false;  // send resume_complete when the catch-up reaches the head
    int64_t resume_from = 0;
    std::string resume_ref;
  };
  struct UserState {
    std::mutex mutex;  // serializes seq assignment, fan-out and connection changes for this user
    std::vector<Entry> entries;
    int64_t last_seq = -1;    // last seq assigned (committed or queued); -1 = load from the store
    std::size_t pending = 0;  // events queued for the writer; the state is kept while > 0
    bool detached = false;    // removed from users_; whoever holds it must look up a fresh one
  };
  struct Pending {
    std::shared_ptr<UserState> us;  // null for a message or an ack
    store::StoredEvent ev;
    std::optional<store::Message> message;
    MessageDone done;
    int64_t ack_seq = 0;  // > 0: an ack of ev.user_id up to this seq
    std::chrono::steady_clock::time_point queued_at = std::chrono::steady_clock::now();
  };
  // Waits for room in the writer queue (never call it while holding a user lock); false when
  // delivery is not running.
  bool waitForRoom();
  // Hands one item to the writer (after waitForRoom()).
  void enqueue(Pending&& p);
  static constexpr std::size_t kMaxPending = 65536;
  static constexpr std::size_t kMaxBatch = 1024;

  std::shared_ptr<UserState> userState(const std::string& user_id, bool create);
  // The user's current (not detached) state, locked.
  std::pair<std::shared_ptr<UserState>, std::unique_lock<std::mutex>> lockUser(const std::string& user_id);
  // Returns how many live connections the event was queued to.
  int fanOut(UserState& us, const store::StoredEvent& ev);
  void recordFailure(const std::string& user_id, const std::string& thread_id, const std::string& type,
                     const std::string& reason);
  void writerLoop();

  void releaseIfEmpty(const std::string& user_id, const std::shared_ptr<UserState>& us);
  // Sends stored events from entry.next_seq on, within the budget; at the stream's head the
  // entry turns live. Caller holds the user lock. False when the connection is gone.
  bool catchUp(Entry& e, const std::string& user_id);
  Entry* findEntry(UserState& us, const Connection& conn);
  static std::shared_ptr<const std::string> frameOf(const store::StoredEvent& ev);

  store::Store& store_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::shared_mutex users_mutex_;
  std::map<std::string, std::shared_ptr<UserState>> users_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> users_connected_{0};
  DeliveryStats stats_;
  ReplayBudget budget_;
  Retention retention_;
  std::string uncounted_user_;
  analytics::Recorder* recorder_ = &analytics::NullRecorder::instance();

  std::shared_mutex threads_mutex_;
  std::unordered_map<std::string, ThreadInfo> threads_;  // a thread's owner and agent never change

  std::mutex wq_mutex_;
  std::condition_variable wq_cv_;    // writer: work arrived / stop
  std::condition_variable room_cv_;  // producers: room in the queue; flush(): queue drained
  std::deque<Pending> wq_;
  std::size_t in_flight_ = 0;  // queued + being committed/sent
  bool writer_running_ = false;
  bool writer_stop_ = false;
  bool failing_ = false;  // logging once per episode of commit failures
  std::thread writer_;
};

}  // namespace agentwire::delivery
