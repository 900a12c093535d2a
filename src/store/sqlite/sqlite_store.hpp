#pragma once

#include "lifecycle/component.hpp"
#include "store/store.hpp"

#include <spdlog/logger.h>

#include <mutex>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace agentwire::store {

// The embedded default store: one SQLite file in WAL mode, one connection guarded by a mutex.
// A component: start() opens the file and creates the schema (idempotent); stop() closes it.
class SqliteStore final : public Store, public lifecycle::Component {
 public:
  SqliteStore(std::string path, std::vector<std::string> dependencies);
  ~SqliteStore() override;

  void start() override;
  void stop() override;

  core::Result<Thread> createThread(const std::string& user_id, const std::string& title, bool system,
                                    const std::string& agent = {}) override;
  std::optional<Thread> findThread(const std::string& thread_id) override;
  std::vector<Thread> listThreads(const std::string& user_id) override;
  std::vector<Message> listMessages(const std::string& thread_id, int limit, int64_t before_ms) override;
  core::Result<std::size_t> commitBatch(const std::vector<Message>& messages,
                                        const std::vector<StoredEvent>& events) override;
  std::vector<StoredEvent> eventsAfter(const std::string& user_id, int64_t after_seq, int limit) override;
  StreamInfo streamInfo(const std::string& user_id) override;
  int64_t ackEvents(const std::string& user_id, int64_t seq) override;
  int64_t pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) override;

 private:
  void exec(const char* sql);
  sqlite3_stmt* prepared(const char* sql);  // cached for the connection's life; caller holds mutex_
  StreamInfo streamInfoLocked(const std::string& user_id);

  std::string path_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace agentwire::store
