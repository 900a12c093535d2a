#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace agentwire::store {

struct Thread {
  std::string id;
  std::string user_id;
  std::string title;
  int64_t created_ms = 0;
  bool system = false;  // self-check threads: never listed, never counted
  std::string agent;    // the thread's agent; empty = the configured default
};

struct Message {
  std::string id;
  std::string thread_id;
  std::string user_id;
  std::string role;  // user, agent
  std::string content;
  std::string run_id;
  int64_t created_ms = 0;
};

// One event of a user's durable stream.
struct StoredEvent {
  int64_t seq = 0;
  std::string user_id;
  std::string type;
  std::string thread_id;
  std::string run_id;
  int64_t ts_ms = 0;
  std::string data_json;  // the event's `data` object, serialized
};

struct StreamInfo {
  std::string epoch;      // changes when history was lost
  int64_t last_seq = 0;   // highest seq appended
  int64_t first_seq = 1;  // lowest seq still retained
  int64_t acked_seq = 0;  // highest seq the user acknowledged
};

// Durable storage of threads, messages and per-user event streams.
// Implementations are thread-safe. Calls block on disk and belong off the I/O threads
// where they are on a hot path.
class Store {
 public:
  virtual ~Store() = default;

  virtual core::Result<Thread> createThread(const std::string& user_id, const std::string& title, bool system,
                                            const std::string& agent = {}) = 0;
  virtual std::optional<Thread> findThread(const std::string& thread_id) = 0;
  // The user's threads, newest first, without system threads.
  virtual std::vector<Thread> listThreads(const std::string& user_id) = 0;

  // Oldest first; at most `limit` messages created before `before_ms` (0 = no bound).
  virtual std::vector<Message> listMessages(const std::string& thread_id, int limit, int64_t before_ms) = 0;

  // Appends events whose seq the caller assigned (each the next of its user's stream, in order)
  // in one transaction: all or none.
  core::Result<std::size_t> appendEvents(const std::vector<StoredEvent>& events) { return commitBatch({}, events); }
  // The group commit of the delivery writer: messages (ids and times set) and events in one
  // transaction, all or none.
  virtual core::Result<std::size_t> commitBatch(const std::vector<Message>& messages,
                                                const std::vector<StoredEvent>& events) = 0;
  // Events with seq > after_seq, in order, at most `limit`.
  virtual std::vector<StoredEvent> eventsAfter(const std::string& user_id, int64_t after_seq, int limit) = 0;
  virtual StreamInfo streamInfo(const std::string& user_id) = 0;
  // Retention: deletes the user's events beyond the newest `keep_last` and those older than
  // `older_than_ms` (0 = no age bound); the newest event is always kept. Returns the new first_seq.
  virtual int64_t pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) = 0;
  // Records a cumulative acknowledgement; never moves backwards. Returns how many events it
  // newly acknowledged (0 for a repeated or stale ack).
  virtual int64_t ackEvents(const std::string& user_id, int64_t seq) = 0;
};

}  // namespace agentwire::store
