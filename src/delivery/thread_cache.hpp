#pragma once

#include "core/result.hpp"
#include "store/store.hpp"

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace agentwire::delivery {

// What delivery and the handlers need of a thread; it never changes once the thread exists.
struct ThreadInfo {
  std::string user_id;
  std::string agent;
  std::string on_busy;  // the thread's default for its messages; empty = enqueue
};

// A bounded cache of thread owners in front of the store: one store read per thread, then none,
// so ownership checks on the I/O threads do not queue behind the writer's commits. Thread-safe.
class ThreadCache {
 public:
  explicit ThreadCache(store::Store& store, std::size_t capacity = 200000) : store_(store), capacity_(capacity) {}

  // nullopt when there is no such thread; an error when the store cannot be read.
  core::Result<std::optional<ThreadInfo>> find(const std::string& thread_id);
  // From memory only, never the store: whether find() would answer without blocking.
  bool cached(const std::string& thread_id);
  // A thread just created, so its first message does not read the store.
  void remember(const store::Thread& t);
  void forget(const std::string& thread_id);

 private:
  store::Store& store_;
  std::size_t capacity_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, ThreadInfo> threads_;
};

}  // namespace agentwire::delivery
