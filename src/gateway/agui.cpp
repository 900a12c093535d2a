#include "gateway/agui.hpp"

#include "agents/bridge.hpp"
#include "core/ids.hpp"
#include "core/text.hpp"
#include "delivery/delivery.hpp"
#include "gateway/frame.hpp"
#include "gateway/http_api.hpp"
#include "gateway/ws_gateway.hpp"
#include "store/store.hpp"

#include <boost/json.hpp>

#include <mutex>

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

  bool send(std::shared_ptr<const std::string> frame) override {
    boost::system::error_code ec;
    auto v = json::parse(*frame, ec);
    if (ec || !v.is_object()) return true;
    auto& f = v.as_object();
    auto* run = f.if_contains("run_id");
    std::lock_guard lock(mutex_);
    if (finished_) return false;  // delivery drops a connection that refuses frames
    if (run == nullptr || !run->is_string() || run->as_string() != run_id_) return true;
    map(std::string(f.at("type").as_string()), f.at("data").as_object());
    return true;
  }

  // Ends the stream with RUN_ERROR when the run could not start.
  void fail(const std::string& code, const std::string& message) {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    emit({{"type", "RUN_STARTED"}, {"threadId", client_thread_}, {"runId", client_run_}});
    emit({{"type", "RUN_ERROR"}, {"message", message}, {"code", code}});
    finish();
  }

 private:
  void emit(json::object event) {
    event["timestamp"] = core::nowMs();
    out_->write(std::make_shared<const std::string>("data: " + json::serialize(event) + "\n\n"));
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
      std::string id = str("tool_call_id");
      emit({{"type", "TOOL_CALL_START"}, {"toolCallId", id}, {"toolCallName", str("tool_name")}});
      auto* args = d.if_contains("args");
      std::string delta = args != nullptr ? json::serialize(*args) : "{}";
      emit({{"type", "TOOL_CALL_ARGS"}, {"toolCallId", id}, {"delta", delta}});
      emit({{"type", "TOOL_CALL_END"}, {"toolCallId", id}});
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
  std::shared_ptr<AguiConnection> self_;
};

// The run of one POST /agui: the client's thread if it is one of this user's, else a new one; then
// the event stream. Called on the store pool (it may read and write the store).
net::HttpReply startRun(store::Store& store, delivery::Delivery& delivery, agents::AgentWebSocketBridge& bridge,
                        WsGateway& gateway, const std::string& user_id, const std::string& content,
                        const std::string& client_thread, const std::string& client_run) {
  // The thread: the client's, if it is one of this user's; otherwise a new one.
  std::string thread_id;
  auto known = delivery.threadInfo(client_thread);
  if (!known) return net::jsonError(503, known.error().code, known.error().message);
  if (*known) {
    if ((*known)->user_id != user_id) return net::jsonError(403, "forbidden", "the thread belongs to another user");
    thread_id = client_thread;
  } else {
    auto t2 = store.createThread(user_id, core::titleFrom(content, 60), false);
    if (!t2) return net::jsonError(503, t2.error().code, t2.error().message);
    delivery.rememberThread(*t2);
    thread_id = t2->id;
  }

  net::HttpReply reply{200, "text/event-stream", {}, {}, {}, {}};
  reply.stream = [&delivery, &bridge, &gateway, user_id, thread_id, client_thread, client_run,
                  content](const std::shared_ptr<net::StreamWriter>& out) {
    auto conn = std::make_shared<AguiConnection>(user_id, out, client_thread, client_run);
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
    if (!posted) conn->fail("not_ready", "the server is shutting down; retry on another node");
  };
  return reply;
}

}  // namespace

void registerAgui(net::HttpServer& server, store::Store& store, delivery::Delivery& delivery,
                  agents::AgentWebSocketBridge& bridge, WsGateway& gateway, const std::function<bool()>& ready) {
  server.route("POST", "/agui", [&store, &delivery, &bridge, &gateway, ready](const net::HttpRequest& req) {
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
    std::string client_thread = stringField(in, "threadId").empty() ? core::newId("thr") : stringField(in, "threadId");
    std::string client_run = stringField(in, "runId").empty() ? core::newId("run") : stringField(in, "runId");

    // Finding or creating the thread may wait on the store: on the store pool, so that no I/O
    // thread waits on the database; the answer (an error, or the stream) comes from there.
    net::HttpReply later;
    later.deferred = [&store, &delivery, &bridge, &gateway, user_id, content, client_thread,
                      client_run](net::Respond respond) {
      bool posted = gateway.runOffIoThread(
          [&store, &delivery, &bridge, &gateway, user_id, content, client_thread, client_run, respond] {
            respond(startRun(store, delivery, bridge, gateway, user_id, content, client_thread, client_run));
          });
      if (!posted) {
        auto refusal = net::jsonError(503, "not_ready", "the server is shutting down; retry on another node");
        refusal.headers.emplace_back("Retry-After", "1");
        respond(std::move(refusal));
      }
    };
    return later;
  });
}

}  // namespace agentwire::gateway
