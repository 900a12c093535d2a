#include "gateway/chat_handlers.hpp"

#include "agents/bridge.hpp"
#include "core/ids.hpp"
#include "delivery/delivery.hpp"
#include "store/store.hpp"

#include <boost/json.hpp>

namespace agentwire::gateway {
namespace {

namespace json = boost::json;

json::object threadJson(const store::Thread& t) {
  json::object o{{"thread_id", t.id}, {"title", t.title}, {"created_at", t.created_ms}};
  if (!t.agent.empty()) o["agent"] = t.agent;
  return o;
}

json::object messageJson(const store::Message& m) {
  json::object o{{"message_id", m.id}, {"role", m.role}, {"content", m.content}, {"created_at", m.created_ms}};
  if (!m.run_id.empty()) o["run_id"] = m.run_id;
  return o;
}

// Resolves a thread the user may touch; sends the error frame and returns nullopt otherwise.
std::optional<delivery::ThreadInfo> ownedThread(delivery::Delivery& delivery, const ClientContext& ctx, const Frame& f,
                                                const std::string& thread_id) {
  auto t = delivery.threadInfo(thread_id);
  if (!t) {
    sendError(*ctx.conn, "thread_not_found", "no thread '" + thread_id + "'", f.id);
    return std::nullopt;
  }
  if (t->user_id != ctx.user_id) {
    // Same wording as not-found would leak less, but the protocol names `forbidden` explicitly.
    sendError(*ctx.conn, "forbidden", "thread '" + thread_id + "' belongs to another user", f.id);
    return std::nullopt;
  }
  return t;
}

}  // namespace

void registerChatHandlers(MessageRouter& router, ChatServices s) {
  router.addHandler("ping", [](const ClientContext& ctx, const Frame& f) {
    sendReply(*ctx.conn, "pong", f.id, {{"ts", core::nowMs()}});
  });

  router.addHandler("create_thread", [s](const ClientContext& ctx, const Frame& f) {
    auto agent = stringField(f.data, "agent");
    if (!agent.empty() && !s.bridge.hasAgent(agent)) {
      return sendError(*ctx.conn, "unknown_agent", "no agent named '" + agent + "'", f.id);
    }
    auto t = s.store.createThread(ctx.user_id, stringField(f.data, "title"), ctx.user_id == kSystemUser, agent);
    if (!t) return sendError(*ctx.conn, "internal", t.error().message, f.id);
    s.delivery.rememberThread(*t);
    sendReply(*ctx.conn, "thread_created", f.id, threadJson(t.value()));
  });

  router.addHandler("list_threads", [s](const ClientContext& ctx, const Frame& f) {
    json::array threads;
    for (const auto& t : s.store.listThreads(ctx.user_id)) threads.emplace_back(threadJson(t));
    sendReply(*ctx.conn, "threads", f.id, {{"threads", std::move(threads)}});
  });

  router.addHandler("get_thread_history", [s](const ClientContext& ctx, const Frame& f) {
    auto thread_id = stringField(f.data, "thread_id");
    if (thread_id.empty()) return sendError(*ctx.conn, "missing_field", "data.thread_id is required", f.id);
    if (!ownedThread(s.delivery, ctx, f, thread_id)) return;
    int limit = static_cast<int>(std::clamp<int64_t>(intField(f.data, "limit").value_or(100), 1, 1000));
    json::array messages;
    for (const auto& m : s.store.listMessages(thread_id, limit, intField(f.data, "before").value_or(0))) {
      messages.emplace_back(messageJson(m));
    }
    sendReply(*ctx.conn, "thread_history", f.id, {{"thread_id", thread_id}, {"messages", std::move(messages)}});
  });

  router.addHandler("user_message", [s](const ClientContext& ctx, const Frame& f) {
    auto* content_v = f.data.if_contains("content");
    if (content_v == nullptr || !content_v->is_string()) {
      return sendError(*ctx.conn, "missing_field", "data.content (a string) is required", f.id);
    }
    std::string content(content_v->as_string());
    std::string thread_id = stringField(f.data, "thread_id");
    // The message's agent, else the thread's, else the configured default.
    std::string agent = stringField(f.data, "agent");
    if (thread_id.empty()) {
      auto t = s.store.createThread(ctx.user_id, content.substr(0, 60), ctx.user_id == kSystemUser);
      if (!t) return sendError(*ctx.conn, "internal", t.error().message, f.id);
      s.delivery.rememberThread(*t);
      thread_id = t->id;
    } else {
      auto t = ownedThread(s.delivery, ctx, f, thread_id);
      if (!t) return;
      if (agent.empty()) agent = t->agent;
    }
    store::Message m;
    m.thread_id = thread_id;
    m.user_id = ctx.user_id;
    m.role = "user";
    m.content = content;
    // Stored through delivery's group commit; the ack and the run follow once it is durable,
    // from the writer thread, so the I/O thread never waits on the disk.
    agents::UserContext run_ctx{ctx.user_id, thread_id, core::newId("run"), f.id};
    s.delivery.storeMessage(std::move(m), [s, conn = ctx.conn, run_ctx, content, agent,
                                           id = f.id](const core::Result<store::Message>& stored) {
      if (!stored) return sendError(*conn, "internal", stored.error().message, id);
      if (s.recorder.enabled()) {
        analytics::Record r;
        r.kind = "message_received";
        r.user_id = run_ctx.user_id;
        r.thread_id = run_ctx.thread_id;
        r.run_id = run_ctx.run_id;
        r.connection_id = conn->id();
        r.agent = agent;
        r.count = static_cast<int64_t>(content.size());
        s.recorder.record(std::move(r));
      }
      sendReply(*conn, "ack", id,
                {{"thread_id", run_ctx.thread_id}, {"message_id", stored->id}, {"run_id", run_ctx.run_id}});
      auto run = s.bridge.startRun(run_ctx, content, agent);
      if (!run) sendError(*conn, run.error().code, run.error().message, id);
    });
  });

  router.addHandler("resume", [s](const ClientContext& ctx, const Frame& f) {
    auto last_seq = intField(f.data, "last_seq");
    if (!last_seq) return sendError(*ctx.conn, "missing_field", "data.last_seq is required", f.id);
    // On success delivery sends the replay and then resume_complete itself, in order.
    auto r = s.delivery.resume(*ctx.conn, *last_seq, stringField(f.data, "epoch"), f.id);
    if (!r) {
      if (r.error().code == "resync_required") {
        auto info = s.store.streamInfo(ctx.user_id);
        return sendReply(*ctx.conn, "resync_required", f.id,
                         {{"epoch", info.epoch}, {"last_seq", info.last_seq}, {"reason", r.error().message}});
      }
      return sendError(*ctx.conn, r.error().code, r.error().message, f.id);
    }
  });

  router.addHandler("ack_events", [s](const ClientContext& ctx, const Frame& f) {
    auto seq = intField(f.data, "seq");
    if (!seq) return sendError(*ctx.conn, "missing_field", "data.seq is required", f.id);
    s.delivery.ack(ctx.user_id, *seq);
  });

  router.addHandler("stop_agent", [s](const ClientContext& ctx, const Frame& f) {
    auto run_id = stringField(f.data, "run_id");
    if (run_id.empty()) return sendError(*ctx.conn, "missing_field", "data.run_id is required", f.id);
    if (!s.bridge.stopRun(ctx.user_id, run_id)) {
      return sendError(*ctx.conn, "run_not_found", "no active run '" + run_id + "' of this user", f.id);
    }
    sendReply(*ctx.conn, "stop_requested", f.id, {{"run_id", run_id}});
  });
}

}  // namespace agentwire::gateway
