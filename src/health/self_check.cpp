#include "health/self_check.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "delivery/delivery.hpp"
#include "delivery/in_process_connection.hpp"
#include "gateway/chat_handlers.hpp"
#include "gateway/message_router.hpp"

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

SelfCheck::SelfCheck(gateway::MessageRouter& router, delivery::Delivery& delivery, lifecycle::StartupTrace& trace,
                     std::chrono::milliseconds timeout, bool enabled, std::vector<std::string> dependencies)
    : Component("self_check", std::move(dependencies)),
      router_(router),
      delivery_(delivery),
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
}

core::Result<SelfCheck::Report> SelfCheck::runOnce() const {
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + timeout_;
  auto conn = std::make_shared<delivery::InProcessConnection>(core::newId("selfcheck"), gateway::kSystemUser);
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
  router_.route(gateway::ClientContext{conn, gateway::kSystemUser}, boost::json::serialize(msg));

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
  return report;
}

}  // namespace agentwire::health
