#include "core/serial_pool.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <exception>

namespace agentwire::core {

SerialPool::SerialPool(std::size_t threads, std::string thread_name)
    : thread_count_(threads == 0 ? 1 : threads), thread_name_(std::move(thread_name)) {}

SerialPool::~SerialPool() {
  stop();
}

void SerialPool::start() {
  std::lock_guard lock(mutex_);
  if (running_) return;
  running_ = true;
  for (std::size_t i = 0; i < thread_count_; ++i) {
    threads_.emplace_back([this] {
      setThreadName(thread_name_);
      loop();
    });
  }
}

void SerialPool::stop() {
  {
    std::lock_guard lock(mutex_);
    running_ = false;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool SerialPool::post(const std::shared_ptr<Lane>& lane, std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return false;
    lane->tasks_.push_back(std::move(task));
    if (lane->scheduled_) return true;  // runs after the lane's earlier tasks
    lane->scheduled_ = true;
    ready_.push_back(lane);
  }
  cv_.notify_one();
  return true;
}

void SerialPool::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return !ready_.empty() || !running_; });
    if (ready_.empty()) return;  // stopping, and everything posted has run
    auto lane = std::move(ready_.front());
    ready_.pop_front();
    auto task = std::move(lane->tasks_.front());
    lane->tasks_.pop_front();
    lock.unlock();
    try {
      task();
    } catch (const std::exception& e) {
      logger("main")->error("a task of the {} pool threw: {}", thread_name_, e.what());
    }
    lock.lock();
    if (lane->tasks_.empty()) {
      lane->scheduled_ = false;
    } else {
      ready_.push_back(std::move(lane));  // behind the other lanes: one busy connection cannot starve them
      cv_.notify_one();
    }
  }
}

}  // namespace agentwire::core
