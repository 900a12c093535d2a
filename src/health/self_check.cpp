#include "health/self_check.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"
#include "delivery/delivery.hpp"
#include "delivery/in_process_connection.hpp"
#include "gateway/chat_handlers.hpp"
#include "gateway/message_router.hpp"
#include "store/store.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace agentwire::health {
namespace {

// Which hop produces each expected frame, to name it when the frame does not come.
const char* hopFor(const std::string& expected) {
  if (expected == "ack") return "router -> user_message handler";
  if (expected == "agent_started") return "handler -> agent bridge";
  if (expected == "agent_completed") return "agent -> bridge (run did not complete)";
  return "agent -> emitter -> delivery";
}

}  // namespace

SelfCheck::SelfCheck(gateway::MessageRouter& router, delivery::Delivery& delivery, store::Store& store,
                     lifecycle::StartupTrace& trace, std::chrono::milliseconds timeout, bool enabled,
                     std::vector<std::string> dependencies)
    : Component("self_check", std::move(dependencies)),
      router_(router),
      delivery_(delivery),
      store_(store),
      trace_(trace),
      timeout_(timeout),
      enabled_(enabled),
      log_(core::logger("selfcheck")) {}

void SelfCheck::start() {
  auto handlers = router_.handlerCount();
  trace_.recordEvent(name(), fmt::format("handlers_counted count={}", handlers));
  if (handlers == 0) {
    log_->warn("zero handlers registered when the self-check ran");
    throw std::runtime_error("hop router: zero message handlers registered");
  }
  if (!enabled_) {
    setHealth(lifecycle::HealthState::Healthy, "routing check disabled by configuration");
    return;
  }
  auto r = runOnce();
  if (!r) throw std::runtime_error(r.error().message);
  trace_.recordEvent(name(), fmt::format("routing_ok frames={} took_ms={:.2f}", r->frames.size(), r->took_ms));
  log_->info("routing self-check passed: {} frames in {:.2f} ms", r->frames.size(), r->took_ms);
  std::lock_guard lock(mutex_);
  stopping_ = false;
  last_ = r;
  last_at_ = std::chrono::steady_clock::now();
  worker_ = std::thread([this] {
    core::setThreadName("aw-selfcheck");
    workerLoop();
  });
}

SelfCheck::~SelfCheck() {
  stop();
}

void SelfCheck::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::vector<Done> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(waiting_);
  }
  for (auto& d : left) d(core::Error{"not_ready", "the server is stopping"});
}

void SelfCheck::request(Done done, std::chrono::milliseconds min_interval) {
  std::unique_lock lock(mutex_);
  if (!enabled_) {
    lock.unlock();
    return done(core::Error{"selfcheck_disabled", "the routing self-check is disabled by configuration"});
  }
  if (stopping_ || !worker_.joinable()) {
    lock.unlock();
    return done(core::Error{"not_ready", "the self-check is not running"});
  }
  if (last_ && waiting_.empty() && std::chrono::steady_clock::now() - last_at_ < min_interval) {
    auto r = *last_;
    lock.unlock();
    if (r) r->reused = true;
    return done(r);
  }
  waiting_.push_back(std::move(done));
  lock.unlock();
  cv_.notify_one();
}

void SelfCheck::workerLoop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (stopping_) return;
    std::vector<Done> batch;
    batch.swap(waiting_);
    lock.unlock();
    auto r = runOnce();
    if (!r) log_->error("routing self-check failed: {}", r.error().message);
    for (auto& d : batch) d(r);
    lock.lock();
    last_ = std::move(r);
    last_at_ = std::chrono::steady_clock::now();
  }
}

core::Result<SelfCheck::Report> SelfCheck::runOnce() {
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + timeout_;
  auto conn = std::make_shared<delivery::InProcessConnection>(core::newId("selfcheck"), user_);
  if (auto a = delivery_.attach(conn, true); !a) {
    return core::Error{"selfcheck_failed", "hop delivery: cannot attach: " + a.error().message};
  }
  struct Detach {
    delivery::Delivery& d;
    const delivery::Connection& c;
    ~Detach() { d.detach(c); }
  } detach{delivery_, *conn};

  std::string ref = core::newId("selfcheck");
  boost::json::object msg{
      {"type", "user_message"},
      {"id", ref},
      {"data", boost::json::object{{"content", "agentwire routing self-check"}, {"agent", "echo"}}}};
  router_.route(gateway::ClientContext{conn, user_}, boost::json::serialize(msg));

  const std::vector<std::string> expected = {"ack",
                                             "agent_started",
                                             "agent_thinking",
                                             "tool_executing",
                                             "tool_completed",
                                             "agent_response_chunk",
                                             "agent_completed"};
  Report report;
  std::size_t want = 0;
  int64_t last_seq = 0;
  std::string run_id;
  std::string thread_id;
  bool passed = false;
  // A check that passed leaves no thread, message or run behind (its run has ended: the check
  // saw agent_completed; flush() makes sure the answer is stored before the thread goes). A check
  // that failed leaves them for inspection: its run may still be going.
  struct Cleanup {
    SelfCheck& self;
    std::string& thread_id;
    bool& passed;
    ~Cleanup() {
      if (thread_id.empty() || !passed) return;
      self.delivery_.flush();
      self.delivery_.forgetThread(thread_id);
      if (auto r = self.store_.deleteThread(thread_id, true); !r) {
        self.log_->warn("self-check thread '{}' not removed: {}", thread_id, r.error().message);
      }
      (void)self.store_.pruneEvents(self.user_, 1, 0);
    }
  } cleanup{*this, thread_id, passed};
  for (std::size_t received = 0; want < expected.size(); ++received) {
    auto frame = conn->frameAt(received, deadline);
    if (!frame) {
      return core::Error{"selfcheck_failed",
                         fmt::format("hop {}: no '{}' within {} ms (received: {})", hopFor(expected[want]),
                                     expected[want], timeout_.count(), fmt::join(report.frames, ", "))};
    }
    auto& o = *frame;
    std::string type(o.at("type").as_string());
    if (type == "invalid_frame") return core::Error{"selfcheck_failed", "hop delivery: a frame is not a JSON object"};
    report.frames.push_back(type);
    if (type == "error" || type == "agent_error") {
      return core::Error{"selfcheck_failed",
                         fmt::format("hop {}: got {} {}", hopFor(expected[want]), type, boost::json::serialize(o))};
    }
    if (type == "ack") {
      run_id = std::string(o.at("data").as_object().at("run_id").as_string());
      thread_id = std::string(o.at("data").as_object().at("thread_id").as_string());
    } else {
      // Stream events: seq strictly increasing by one, all of this run.
      int64_t seq = o.at("seq").as_int64();
      if (last_seq != 0 && seq != last_seq + 1) {
        return core::Error{"selfcheck_failed", fmt::format("hop delivery: seq {} after {}", seq, last_seq)};
      }
      last_seq = seq;
      auto* rid = o.if_contains("run_id");
      if (rid == nullptr || !rid->is_string() || rid->as_string() != run_id) {
        return core::Error{"selfcheck_failed", "hop delivery: event of another run"};
      }
    }
    if (type == expected[want]) {
      ++want;
    } else if (!(type == "agent_response_chunk" && want == expected.size() - 1)) {
      return core::Error{"selfcheck_failed",
                         fmt::format("hop {}: expected '{}', got '{}'", hopFor(expected[want]), expected[want], type)};
    }
  }
  report.took_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  passed = true;
  return report;
}

}  // namespace agentwire::health
