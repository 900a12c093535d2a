#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::core {

// A few threads for work that may block on the store (reads, thread creation, lookups that miss
// the cache), so that I/O threads never wait on SQLite or PostgreSQL. Work is posted to a Lane: a
// lane's tasks run one at a time, in the order they were posted (one connection's frames keep
// their order), and different lanes run in parallel.
class SerialPool {
 public:
  class Lane {
    friend class SerialPool;
    std::list<std::function<void()>> tasks_;  // guarded by the pool's mutex
    bool scheduled_ = false;                  // waiting in the ready queue or running
  };

  SerialPool(std::size_t threads, std::string thread_name);
  ~SerialPool();
  SerialPool(const SerialPool&) = delete;
  SerialPool& operator=(const SerialPool&) = delete;

  void start();
  // Refuses new work, runs everything already posted, then joins the threads.
  void stop();

  static std::shared_ptr<Lane> lane() { return std::make_shared<Lane>(); }
  // False (and the task is not run) when the pool is not running.
  bool post(const std::shared_ptr<Lane>& lane, std::function<void()> task);

 private:
  void loop();

  std::size_t thread_count_;
  std::string thread_name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Lane>> ready_;
  std::vector<std::thread> threads_;
  bool running_ = false;
};

}  // namespace agentwire::core
