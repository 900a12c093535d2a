#include "delivery/thread_cache.hpp"

#include <mutex>

namespace agentwire::delivery {

core::Result<std::optional<ThreadInfo>> ThreadCache::find(const std::string& thread_id) {
  {
    std::shared_lock lock(mutex_);
    auto it = threads_.find(thread_id);
    if (it != threads_.end()) return std::optional<ThreadInfo>(it->second);
  }
  auto t = store_.findThread(thread_id);
  if (!t) return t.error();
  if (!t.value()) return std::optional<ThreadInfo>();
  remember(**t);
  return std::optional<ThreadInfo>(ThreadInfo{(*t)->user_id, (*t)->agent, (*t)->on_busy});
}

void ThreadCache::remember(const store::Thread& t) {
  std::unique_lock lock(mutex_);
  if (threads_.size() >= capacity_) threads_.clear();  // bounded; threads are re-read on a miss
  threads_.emplace(t.id, ThreadInfo{t.user_id, t.agent, t.on_busy});
}

void ThreadCache::forget(const std::string& thread_id) {
  std::unique_lock lock(mutex_);
  threads_.erase(thread_id);
}

bool ThreadCache::cached(const std::string& thread_id) {
  std::shared_lock lock(mutex_);
  return threads_.contains(thread_id);
}

}  // namespace agentwire::delivery
