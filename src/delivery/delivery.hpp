#pragma once

#include "analytics/record.hpp"
#include "bus/bus.hpp"
#include "core/result.hpp"
#include "delivery/connection.hpp"
#include "delivery/stream_writer.hpp"
#include "delivery/thread_cache.hpp"
#include "lifecycle/component.hpp"
#include "monitoring/histogram.hpp"
#include "store/shard_map.hpp"
#include "store/store.hpp"

#include <boost/json/object.hpp>

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>

namespace agentwire::delivery {

struct Event {
  std::string type;
  std::string thread_id;
  std::string run_id;
  boost::json::object data;
  std::string run_status;  // lifecycle events: the run's stored status (see store::RunRecord)
  // Events a run emits: stored only while the run is in flight (see store::StoredEvent).
  bool requires_run_in_flight = false;
  // The caller checked that the thread is the user's: thread_deleted announces a thread that is
  // gone from the store, so its owner cannot be looked up any more.
  bool owner_checked = false;
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
  // The delivery success ratio's parts: on acking streams only (see store::CommitStats).
  std::atomic<uint64_t> appended_acking{0};
  std::atomic<uint64_t> acked_acking{0};
  std::atomic<uint64_t> fell_back{0};  // live connections switched to catch-up at the high-water mark
  std::atomic<uint64_t> fenced{0};     // events of runs that had ended (another node ended them), not stored
  // deliver() called -> committed and queued on every live connection of the user.
  monitoring::Histogram latency{monitoring::Histogram::latencyBounds()};
  // One store transaction of the group commit: how long, and how many items (messages, runs,
  // events, acks) it carried. Long commits are what every user's events wait behind.
  monitoring::Histogram commit_seconds{monitoring::Histogram::latencyBounds()};
  monitoring::Histogram commit_items{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}};
};

// The per-user delivery model. Every event for a thread goes to the thread's owner: it is
// appended to the owner's durable stream (next seq, no gaps) and then sent, in seq order, to every
// live connection of that user. A user without connections is not an error: the event waits in
// the stream until the user resumes.
//
// Thread-safe. deliver() hands the event to the StreamWriter (group commit); the store gives it the
// next seq of the user's stream in the transaction that stores it (one sequencer per stream, which
// holds with several writers of one stream), and only after the commit is it sent, in seq order, to
// the user's live connections: nothing is sent that is not durable, and no caller waits on the disk.
//
// A live connection whose backlog reaches the replay budget (half the send bound) stops receiving
// pushed events and catches up from the stream when it drains, like a resume: a client that reads
// is never cut off by a fast producer, and a connection's memory stays bounded.
class Delivery final : public lifecycle::Component {
 public:
  // How much one catch-up step may queue on a connection; also the high-water mark of live pushes.
  struct ReplayBudget {
    std::size_t frames = SIZE_MAX;
    std::size_t bytes = SIZE_MAX;
  };

  // How much of each user's stream is kept; a resume from before it gets resync_required.
  struct Retention {
    int64_t events = 10000;
    int64_t age_ms = 0;  // 0 = no age bound
  };

  // Whether a producer may wait for room in the writer queue (agent workers), must fail fast
  // with `unavailable` (I/O threads), or queues past the bound without waiting (the writer's own
  // commit callbacks, which must never wait for the writer; they add at most one item per item
  // of the batch that called them).
  enum class Backpressure { Wait, FailFast, Overflow };

  enum class ResumeOutcome { Complete, Replaying, Resync };

  Delivery(store::Store& store, std::vector<std::string> dependencies);
  // Users' streams spread over several stores by store::ShardMap, each with its own group commit.
  // Threads are looked up in the first store. The server runs one shard (docs/scaling.md).
  Delivery(std::vector<store::Store*> shards, std::vector<std::string> dependencies);
  void setReplayBudget(ReplayBudget b) { budget_ = b; }  // before start()
  void setRetention(Retention r) { retention_ = r; }     // before start()
  // Traffic of this user (the self-check's) is delivered as usual but left out of stats().
  void setUncountedUser(std::string user) { uncounted_user_ = std::move(user); }  // before start()
  // Where event_delivered and delivery_failed rows go (before start()).
  void setRecorder(analytics::Recorder& r) { recorder_ = &r; }
  void setWriterOptions(StreamWriter::Options o) {  // before start()
    for (auto& s : shards_) s.writer->setOptions(o);
  }
  // Several nodes: commits are published on the bus, and connections catch up on what other nodes
  // committed (notices from the bus, and a periodic check of their users' heads in the store, every
  // `check` while the bus is live and every `check_when_down` while it is not). Before start().
  void setBus(bus::Bus& b, std::chrono::milliseconds check, std::chrono::milliseconds check_when_down);

  // Another node moved `user`'s stream to `head` (bus::kUnknownHead: maybe, read the store):
  // connections of the user here that have not read that far catch up from the store, soon after
  // on the head-check thread (coalesced per user). Cheap when there are none. Thread-safe.
  void onRemoteHead(const std::string& user_id, int64_t head);
  // Reads the heads of every user with a connection here and catches up whoever is behind.
  void checkHeads();

  void start() override;
  void stop() override;

  // Registers a connection. `live` connections receive events appended from now on; a held
  // connection (live=false) receives nothing until resume() or goLive().
  // Returns the user's stream info at the moment of attaching (unavailable when it cannot be read).
  core::Result<store::StreamInfo> attach(const ConnectionPtr& conn, bool live);
  void detach(const Connection& conn);

  // Sends, in order, every event with seq > last_seq, then `resume_complete {from_seq, to_seq}`
  // (with id `ref`), then makes the connection live. Large replays go out in budgeted batches
  // (Replaying). When the epoch differs or those events are no longer retained, sends
  // `resync_required` (id `ref`) before anything else and continues live from the head (Resync).
  core::Result<ResumeOutcome> resume(Connection& conn, int64_t last_seq, const std::string& epoch,
                                     const std::string& ref);
  // Makes a held connection live, first sending what was appended while it was held.
  void goLive(Connection& conn);
  // Continues a catch-up on a connection whose queue drained. Cheap no-op when not catching up.
  void pump(Connection& conn);

  // Delivers an event of a thread on behalf of `user_id`. The thread must exist and belong to
  // the user; otherwise the event is refused (thread_not_found / forbidden), counted and logged.
  // The event is queued: it gets its seq when it is committed, shortly after, and is then sent.
  // Events delivered one after the other (by one run) keep that order in the stream.
  // Waits for room in the writer queue (agent workers are paced by the store) unless told otherwise.
  core::Result<bool> deliver(const std::string& user_id, Event event, Backpressure bp = Backpressure::Wait);
  // Waits until every event queued so far is committed and sent. For tests and shutdown.
  void flush();

  // Stores a message (and, for a user message, the run it starts) through the same group commit as
  // events. `done` runs on the writer thread once the transaction holding it committed (or failed
  // for good). Anything delivered after this call is committed no earlier than the message. Ids and
  // times are filled in. With FailFast, a full queue or a store that is failing answers
  // `unavailable` at once (through `done`, on the caller's thread).
  using MessageDone = std::function<void(const core::Result<store::Message>&)>;
  void storeMessage(store::Message m, std::optional<store::RunRecord> run, MessageDone done, Backpressure bp);

  // Records a cumulative acknowledgement, on the writer thread (never on the caller's): acks of one
  // user in a batch are coalesced into one write. Never moves backwards. Dropped when the queue is
  // full (a later ack covers it).
  void ack(const std::string& user_id, int64_t seq);

  // False while the store refuses writes (disk full, I/O errors): new messages are refused with
  // `unavailable`; what is queued waits and is committed once the store takes it.
  bool writable() const;
  std::size_t writerDepth() const;

  // A thread's owner and agent, from a cache in front of the store (see ThreadCache).
  core::Result<std::optional<ThreadInfo>> threadInfo(const std::string& thread_id) { return threads_.find(thread_id); }
  bool threadCached(const std::string& thread_id) { return threads_.cached(thread_id); }
  void rememberThread(const store::Thread& t) { threads_.remember(t); }
  void forgetThread(const std::string& thread_id) { threads_.forget(thread_id); }

  std::size_t connectionCount() const;
  std::size_t userCount() const;  // users with at least one live connection
  std::size_t connectionsOf(const std::string& user_id) const;
  // Whether a live connection of the user fell behind (at the high-water mark, it catches up from
  // the stream): agents pace their output by it. A resume's replay does not count.
  bool readerBehind(const std::string& user_id) const;
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
    std::mutex mutex;  // serializes fan-out and connection changes for this user
    std::vector<Entry> entries;
    std::size_t pending = 0;  // events queued for the writer; the state is kept while > 0
    bool detached = false;    // removed from users_; whoever holds it must look up a fresh one
  };

  std::shared_ptr<UserState> userState(const std::string& user_id, bool create);
  // The user's current (not detached) state, locked.
  std::pair<std::shared_ptr<UserState>, std::unique_lock<std::mutex>> lockUser(const std::string& user_id);
  // After a commit (on the writer thread): fan-out, callbacks, stats, retention.
  void onCommitted(std::vector<WriteItem>& batch, const core::Result<store::CommitStats>& r);
  void afterEvent(WriteItem& item, int64_t seq);  // seq 0: not committed; CommitStats::kFenced: refused
  // Returns how many live connections the event was queued to.
  int fanOut(UserState& us, const store::StoredEvent& ev);
  void recordFailure(const std::string& user_id, const std::string& thread_id, const std::string& type,
                     const std::string& reason);
  void releaseIfEmpty(const std::string& user_id, const std::shared_ptr<UserState>& us);
  // Sends stored events from entry.next_seq on, within the budget; at the stream's head the
  // entry turns live. Caller holds the user lock. False when the connection is gone.
  bool catchUp(Entry& e, const std::string& user_id);
  Entry* findEntry(UserState& us, const Connection& conn);
  void dropGone(UserState& us, const std::string& user_id);

  void headCheckLoop();
  // Catches up the user's live connections that have not read up to `head` (on the head-check thread).
  void applyRemoteHead(const std::string& user_id, int64_t head);
  // Sends a live connection the events of `batch` it has not had, when that is a simple push;
  // false when the general catch-up must do it. Caller holds the user lock.
  bool pushLive(Entry& e, const std::vector<store::StoredEvent>& batch);
  // Sends one event to a live connection and moves the entry past it (fan-out and pushLive);
  // false when the connection is closed (the entry then forgets it).
  bool sendLive(Entry& e, Connection& conn, std::shared_ptr<const std::string> frame, const store::StoredEvent& ev);
  // The user has a connection here now (true) or no longer (false).
  void interest(const std::string& user_id, bool on);

  // A store shard and the group commit in front of it.
  struct Shard {
    store::Store* store = nullptr;
    std::unique_ptr<StreamWriter> writer;
  };
  Shard& shardOf(const std::string& user_id) { return shards_[shard_map_.shardOf(user_id)]; }
  store::Store& storeOf(const std::string& user_id) { return *shardOf(user_id).store; }
  StreamWriter& writerOf(const std::string& user_id) { return *shardOf(user_id).writer; }

  store::ShardMap shard_map_;
  std::vector<Shard> shards_;
  std::shared_ptr<spdlog::logger> log_;
  bus::LocalBus local_bus_;
  bus::Bus* bus_ = &local_bus_;
  std::chrono::milliseconds check_{1000};
  std::chrono::milliseconds check_when_down_{200};
  std::mutex check_mutex_;
  std::condition_variable check_cv_;
  bool checking_ = false;
  std::map<std::string, int64_t> remote_heads_;  // announced by other nodes, not yet applied
  std::thread checker_;
  ThreadCache threads_;
  mutable std::shared_mutex users_mutex_;
  std::map<std::string, std::shared_ptr<UserState>> users_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> users_connected_{0};
  DeliveryStats stats_;
  ReplayBudget budget_;
  Retention retention_;
  std::string uncounted_user_;
  analytics::Recorder* recorder_ = &analytics::NullRecorder::instance();
};

}  // namespace agentwire::delivery
