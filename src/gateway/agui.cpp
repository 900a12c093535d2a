#include "gateway/agui.hpp"

#include "agents/bridge.hpp"
#include "core/ids.hpp"
#include "core/text.hpp"
#include "delivery/delivery.hpp"
#include "gateway/chat_handlers.hpp"
#include "gateway/frame.hpp"
#include "gateway/http_api.hpp"
#include "gateway/ws_gateway.hpp"
#include "store/store.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <mutex>
#include <set>

namespace agentwire::gateway {
namespace {

namespace json = boost::json;

// Receives the user's stream while one run is in flight, keeps that run's events, and writes
// them to the SSE stream as AG-UI events. Detaches itself and closes the stream at the run's end.
class AguiConnection final : public delivery::Connection, public std::enable_shared_from_this<AguiConnection> {
 public:
  AguiConnection(std::string user, std::shared_ptr<net::StreamWriter> out, std::string thread_id, std::string run_id)
      : id_(core::newId("agui")),
        user_(std::move(user)),
        out_(std::move(out)),
        client_thread_(std::move(thread_id)),
        client_run_(std::move(run_id)) {}

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_; }

  // Keeps itself (and so the stream) alive until its run ends; delivery only holds it weakly.
  void setRun(std::string run_id) {
    std::lock_guard lock(mutex_);
    run_id_ = std::move(run_id);
    self_ = shared_from_this();
  }

  // A rejoin: the AG-UI events up to and including the one with id `<run>/<seq>/<k>` were received
  // already. The run's events are replayed from its start (to rebuild the mapping's state, such as
  // an open text message) with those events left out.
  void rejoinAfter(int64_t seq, int k) {
    std::lock_guard lock(mutex_);
    skip_seq_ = seq;
    skip_k_ = k;
  }

  bool send(std::shared_ptr<const std::string> frame) override {
    boost::system::error_code ec;
    auto v = json::parse(*frame, ec);
    if (ec || !v.is_object()) return true;
    auto& f = v.as_object();
    auto* run = f.if_contains("run_id");
    std::lock_guard lock(mutex_);
    if (finished_) return false;  // delivery drops a connection that refuses frames
    if (f.contains("type") && f.at("type") == "resync_required") {
      // A rejoin from before the stream's retention: the run cannot be replayed whole.
      cur_seq_ = 0;
      emit(
          {{"type", "RUN_ERROR"}, {"message", "the run's events are no longer retained"}, {"code", "resync_required"}});
      finish();
      return true;
    }
    if (run == nullptr || !run->is_string() || run->as_string() != run_id_) return true;
    auto* seq = f.if_contains("seq");
    cur_seq_ = seq != nullptr && seq->is_int64() ? seq->as_int64() : 0;
    cur_k_ = 0;
    map(std::string(f.at("type").as_string()), f.at("data").as_object());
    return true;
  }

  // Ends the stream with RUN_ERROR when the run could not start.
  void fail(const std::string& code, const std::string& message) {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    cur_seq_ = 0;  // not events of the stream: no ids
    emit({{"type", "RUN_STARTED"}, {"threadId", client_thread_}, {"runId", client_run_}});
    emit({{"type", "RUN_ERROR"}, {"message", message}, {"code", code}});
    finish();
  }

 private:
  // Each AG-UI event of a stored event gets the id `<run>/<seq>/<k>` (k: its place among the AG-UI
  // events of that stored event), which GET /agui/runs/{run} takes back as Last-Event-ID.
  void emit(json::object event) {
    std::string id;
    if (cur_seq_ > 0) {
      int k = cur_k_++;
      if (cur_seq_ < skip_seq_ || (cur_seq_ == skip_seq_ && k <= skip_k_)) return;  // received before a rejoin
      id = "id: " + run_id_ + "/" + std::to_string(cur_seq_) + "/" + std::to_string(k) + "\n";
    }
    event["timestamp"] = core::nowMs();
    out_->write(std::make_shared<const std::string>(id + "data: " + json::serialize(event) + "\n\n"));
  }

  // TOOL_CALL_START/ARGS/END once per call (a call that waited for approval was announced then).
  void announceToolCall(const json::object& d) {
    std::string id = stringField(d, "tool_call_id");
    if (!announced_calls_.insert(id).second) return;
    emit({{"type", "TOOL_CALL_START"}, {"toolCallId", id}, {"toolCallName", stringField(d, "tool_name")}});
    auto* args = d.if_contains("args");
    std::string delta = args != nullptr ? json::serialize(*args) : "{}";
    emit({{"type", "TOOL_CALL_ARGS"}, {"toolCallId", id}, {"delta", delta}});
    emit({{"type", "TOOL_CALL_END"}, {"toolCallId", id}});
  }

  void endText() {
    if (!text_open_) return;
    emit({{"type", "TEXT_MESSAGE_END"}, {"messageId", message_id_}});
    text_open_ = false;
  }

  // Caller holds mutex_. Our event -> AG-UI events.
  void map(const std::string& type, const json::object& d) {
    auto str = [&](const char* k) { return stringField(d, k); };
    if (type == "agent_started") {
      emit({{"type", "RUN_STARTED"}, {"threadId", client_thread_}, {"runId", client_run_}});
    } else if (type == "agent_thinking") {
      endText();
      auto* step = d.if_contains("step");
      std::string name = "thinking" + (step != nullptr ? "-" + json::serialize(*step) : std::string{});
      emit({{"type", "STEP_STARTED"}, {"stepName", name}});
      emit({{"type", "STEP_FINISHED"}, {"stepName", name}});
    } else if (type == "tool_executing") {
      endText();
      announceToolCall(d);
    } else if (type == "tool_approval_requested" || type == "tool_approval_resolved") {
      // AG-UI has no approval events (its interrupts are a draft): the call is announced as a tool
      // call, and the approval travels as CUSTOM events named like ours, with our data as value.
      endText();
      if (type == "tool_approval_requested") announceToolCall(d);
      emit({{"type", "CUSTOM"}, {"name", type}, {"value", d}});
    } else if (type == "tool_completed") {
      std::string id = str("tool_call_id");
      auto* result = d.if_contains("result");
      emit({{"type", "TOOL_CALL_RESULT"},
            {"messageId", id + "-result"},
            {"toolCallId", id},
            {"role", "tool"},
            {"content", result != nullptr ? json::serialize(*result) : "null"}});
    } else if (type == "agent_response_chunk") {
      std::string delta = str("delta");
      if (delta.empty()) return;  // AG-UI requires non-empty deltas
      if (!text_open_) {
        message_id_ = str("message_id");
        emit({{"type", "TEXT_MESSAGE_START"}, {"messageId", message_id_}, {"role", "assistant"}});
        text_open_ = true;
      }
      emit({{"type", "TEXT_MESSAGE_CONTENT"}, {"messageId", message_id_}, {"delta", delta}});
    } else if (type == "agent_completed") {
      endText();
      emit({{"type", "RUN_FINISHED"}, {"threadId", client_thread_}, {"runId", client_run_}});
      finish();
    } else if (type == "agent_error" || type == "agent_stopped") {
      endText();
      emit({{"type", "RUN_ERROR"},
            {"message", type == "agent_stopped" ? std::string("run stopped") : str("message")},
            {"code", type == "agent_stopped" ? std::string("stopped") : str("code")}});
      finish();
    }
  }

  // The stream's onClosed callback detaches this connection from delivery once the close is done.
  // Callers hold a strong reference (delivery's fan-out, the commit callback), so dropping
  // self_ here never destroys the object under our feet.
  void finish() {
    finished_ = true;
    out_->close();
    self_.reset();
  }

  std::string id_;
  std::string user_;
  std::shared_ptr<net::StreamWriter> out_;
  std::string client_thread_;
  std::string client_run_;
  std::mutex mutex_;
  std::string run_id_;
  std::string message_id_;
  bool text_open_ = false;
  bool finished_ = false;
  std::set<std::string> announced_calls_;
  int64_t cur_seq_ = 0;  // the stored event being mapped (0: none)
  int cur_k_ = 0;
  int64_t skip_seq_ = 0;
  int skip_k_ = -1;
  std::shared_ptr<AguiConnection> self_;
};

// The store could not answer (`unavailable`: it may later): 503, with when to try again.
net::HttpReply unavailable(const core::Error& e) {
  auto r = net::jsonError(503, e.code, e.message);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// The run of one POST /agui: the client's thread if it is one of this user's, else a new one; then
// the event stream. Called on the store pool (it may read and write the store).
net::HttpReply startRun(store::Store& store, delivery::Delivery& delivery, agents::AgentWebSocketBridge& bridge,
                        WsGateway& gateway, const EventStreamLimits& limits, int max_threads_per_user,
                        const std::string& user_id, const std::string& content, const std::string& client_thread,
                        const std::string& client_run) {
  // The thread: the client's, if it is one of this user's; otherwise a new one.
  std::string thread_id;
  auto known = client_thread.empty() ? core::Result<std::optional<delivery::ThreadInfo>>(std::nullopt)
                                     : delivery.threadInfo(client_thread);
  if (!known) return unavailable(known.error());
  if (*known) {
    if ((*known)->user_id != user_id) return net::jsonError(403, "forbidden", "the thread belongs to another user");
    thread_id = client_thread;
  } else {
    // A new thread counts against the user's cap, as one made over the WebSocket or the HTTP API.
    auto t2 = createUserThread(store, delivery, max_threads_per_user, user_id, core::titleFrom(content, 60));
    if (!t2 && t2.error().code == "thread_limit") return net::jsonError(409, t2.error().code, t2.error().message);
    if (!t2) return unavailable(t2.error());
    thread_id = t2->id;
  }

  net::HttpReply reply{200, "text/event-stream", {}, {}, {}, {}};
  reply.stream = [&delivery, &bridge, &gateway, limits, user_id, thread_id, client_thread, client_run,
                  content](const std::shared_ptr<net::StreamWriter>& out) {
    // A run may wait minutes for a tool approval: comment lines keep proxies from closing the stream.
    out->keepAlive(limits.keepalive, ": keepalive\n\n", limits.send_timeout);
    auto conn =
        std::make_shared<AguiConnection>(user_id, out, client_thread.empty() ? thread_id : client_thread, client_run);
    agents::UserContext run{user_id, thread_id, core::newId("run"), client_run};
    conn->setRun(run.run_id);
    // Leaves delivery once the stream is over (run ended, or the client went away), off the
    // fan-out path that ends it: detaching there would take the user lock it is called under.
    // Holds the connection until then (a cycle through the stream that its close breaks).
    out->onClosed([&delivery, conn] { delivery.detach(*conn); });
    // Attaching reads the user's stream head: on the store pool as well (this is an I/O thread).
    // Before the run starts: nothing of it can be missed.
    bool posted = gateway.runOffIoThread([&delivery, &bridge, conn, run, content] {
      if (auto a = delivery.attach(conn, true); !a) return conn->fail(a.error().code, a.error().message);
      bridge.submit(agents::AgentWebSocketBridge::Submission{run, content, "", agents::OnBusy::Enqueue},
                    [conn](const core::Result<store::Message>& r) {
                      if (!r) conn->fail(r.error().code, r.error().message);
                    });
    });
    if (!posted) conn->fail("not_ready", kShuttingDown);
  };
  return reply;
}

// GET /agui/runs/{run}: the run's AG-UI events after the one the client received last (all of them
// without Last-Event-ID), then live until the run ends. Called on the store pool.
net::HttpReply rejoinRun(store::Store& store, delivery::Delivery& delivery, WsGateway& gateway,
                         const EventStreamLimits& limits, const std::string& user_id, const std::string& run_id,
                         int64_t seq, int k) {
  auto events = store.runEvents(user_id, run_id);
  if (!events) return unavailable(events.error());
  if (events->empty()) return net::jsonError(404, "run_not_found", "no run '" + run_id + "' of this user");
  std::string thread_id = events->front().thread_id;
  std::string client_run = run_id;  // the client's runId, when the run said it
  for (const auto& ev : *events) {
    if (ev.type != "agent_started") continue;
    boost::system::error_code ec;
    auto d = json::parse(ev.data_json, ec);
    if (!ec && d.is_object() && d.as_object().contains("request_id") && d.at("request_id").is_string()) {
      client_run = std::string(d.at("request_id").as_string());
    }
  }
  int64_t from = events->front().seq - 1;
  net::HttpReply reply{200, "text/event-stream", {}, {}, {}, {}};
  reply.stream = [&delivery, &gateway, limits, user_id, run_id, thread_id, client_run, seq, k,
                  from](const std::shared_ptr<net::StreamWriter>& out) {
    out->keepAlive(limits.keepalive, ": keepalive\n\n", limits.send_timeout);
    auto conn = std::make_shared<AguiConnection>(user_id, out, thread_id, client_run);
    conn->setRun(run_id);
    conn->rejoinAfter(seq, k);
    out->onClosed([&delivery, conn] { delivery.detach(*conn); });
    bool posted = gateway.runOffIoThread([&delivery, conn, from] {
      if (auto a = delivery.attach(conn, false); !a) return conn->fail(a.error().code, a.error().message);
      if (auto r = delivery.resume(*conn, from, "", "agui"); !r) conn->fail(r.error().code, r.error().message);
    });
    if (!posted) conn->fail("not_ready", kShuttingDown);
  };
  return reply;
}

// A reply computed on the store pool (it reads or writes the store), so that no I/O thread waits on
// the database: the answer, an error or an event stream, is given from there.
net::HttpReply answerOnStorePool(WsGateway& gateway, std::function<net::HttpReply()> answer) {
  net::HttpReply later;
  later.deferred = [&gateway, answer = std::move(answer)](net::Respond respond) {
    if (!gateway.runOffIoThread([answer, respond] { respond(answer()); })) respond(shuttingDownReply());
  };
  return later;
}

// "<run>/<seq>/<k>", the id of an AG-UI event of `run_id`.
bool parseAguiId(const std::string& id, const std::string& run_id, int64_t& seq, int& k) {
  auto a = id.rfind('/');
  if (a == std::string::npos || a == 0) return false;
  auto b = id.rfind('/', a - 1);
  if (b == std::string::npos || id.substr(0, b) != run_id) return false;
  auto num = [](const std::string& s, auto& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size() && out >= 0;
  };
  return num(id.substr(b + 1, a - b - 1), seq) && num(id.substr(a + 1), k);
}

}  // namespace

void registerAgui(net::HttpServer& server, store::Store& store, delivery::Delivery& delivery,
                  agents::AgentWebSocketBridge& bridge, WsGateway& gateway, EventStreamLimits limits,
                  int max_threads_per_user, const std::function<bool()>& ready) {
  server.route(
      "POST", "/agui",
      [&store, &delivery, &bridge, &gateway, limits, max_threads_per_user, ready](const net::HttpRequest& req) {
        auto caller = authenticateApiRequest(req, gateway, ready);
        if (caller.refusal) return std::move(*caller.refusal);
        const std::string& user_id = caller.user_id;
        boost::system::error_code ec;
        auto body = json::parse(req.body, ec);
        if (ec || !body.is_object()) return net::jsonError(400, "invalid_json", "body must be a RunAgentInput object");
        auto& in = body.as_object();
        std::string content;
        if (auto* msgs = in.if_contains("messages"); msgs != nullptr && msgs->is_array()) {
          for (const auto& m : msgs->as_array()) {
            if (m.is_object() && m.as_object().contains("role") && m.at("role") == "user" &&
                m.as_object().contains("content") && m.at("content").is_string()) {
              content = std::string(m.at("content").as_string());
            }
          }
        }
        if (content.empty()) return net::jsonError(400, "missing_field", "messages must contain a user message");
        if (content.find('\0') != std::string::npos) {
          return net::jsonError(400, "invalid_field", "the user message must not contain NUL characters");
        }
        std::string client_thread = stringField(in, "threadId");  // none: the new thread's id is the one shown
        std::string client_run = stringField(in, "runId").empty() ? core::newId("run") : stringField(in, "runId");

        // Finding or creating the thread may wait on the store: on the store pool.
        return answerOnStorePool(gateway, [&store, &delivery, &bridge, &gateway, limits, max_threads_per_user, user_id,
                                           content, client_thread, client_run] {
          return startRun(store, delivery, bridge, gateway, limits, max_threads_per_user, user_id, content,
                          client_thread, client_run);
        });
      });

  server.route(
      "GET", "/agui/runs/",
      [&store, &delivery, &gateway, limits, ready](const net::HttpRequest& req) {
        auto caller = authenticateApiRequest(req, gateway, ready);
        if (caller.refusal) return std::move(*caller.refusal);
        std::string run_id = req.path.substr(std::string("/agui/runs/").size());
        if (run_id.empty() || run_id.find('/') != std::string::npos) {
          return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
        }
        std::string last = req.header("last-event-id");
        if (auto q = req.query.find("last_event_id"); last.empty() && q != req.query.end()) last = q->second;
        int64_t seq = 0;
        int k = -1;
        if (!last.empty() && !parseAguiId(last, run_id, seq, k)) {
          return net::jsonError(400, "invalid_field", "Last-Event-ID must be the id of an event of this run");
        }
        return answerOnStorePool(gateway, [&store, &delivery, &gateway, limits, user = caller.user_id, run_id, seq, k] {
          return rejoinRun(store, delivery, gateway, limits, user, run_id, seq, k);
        });
      },
      true);
}

}  // namespace agentwire::gateway
