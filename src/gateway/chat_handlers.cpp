#include "gateway/chat_handlers.hpp"

#include "gateway/run_state.hpp"

#include "agents/bridge.hpp"
#include "core/ids.hpp"
#include "core/text.hpp"
#include "delivery/delivery.hpp"
#include "store/store.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <charconv>

namespace agentwire::gateway {

core::Result<store::Thread> createUserThread(store::Store& store, delivery::Delivery& delivery, int max_threads,
                                             const std::string& user_id, const std::string& title,
                                             const std::string& agent, const std::string& on_busy) {
  bool system = core::isSystemUser(user_id);
  if (!system) {
    auto n = store.countThreads(user_id);
    if (!n) return n.error();
    if (*n >= max_threads) {
      return core::Error{"thread_limit", fmt::format("this user has {} threads, the most allowed", max_threads)};
    }
  }
  // "enqueue" is the default: stored as such (empty), so that changing the default changes it.
  auto t = store.createThread(user_id, title, system, agent, on_busy == "enqueue" ? std::string{} : on_busy);
  if (t) delivery.rememberThread(*t);
  return t;
}

namespace {

namespace json = boost::json;

// Titles made from a first message are short: a sidebar line.
constexpr std::size_t kDerivedTitleChars = 60;

json::object threadJson(const store::Thread& t) {
  json::object o{{"thread_id", t.id}, {"title", t.title}, {"created_at", t.created_ms}};
  if (!t.agent.empty()) o["agent"] = t.agent;
  if (!t.on_busy.empty()) o["on_busy"] = t.on_busy;
  return o;
}

json::object messageJson(const store::Message& m) {
  json::object o{{"message_id", m.id}, {"role", m.role}, {"content", m.content}, {"created_at", m.created_ms}};
  if (!m.run_id.empty()) o["run_id"] = m.run_id;
  return o;
}

void sendError(const ClientContext& ctx, const core::Error& e, const Frame& f) {
  gateway::sendError(*ctx.conn, e.code, e.message, f.id);
}

// Resolves a thread the user may touch; sends the error frame and returns nullopt otherwise.
std::optional<delivery::ThreadInfo> ownedThread(delivery::Delivery& delivery, const ClientContext& ctx, const Frame& f,
                                                const std::string& thread_id) {
  auto t = delivery.threadInfo(thread_id);
  if (!t) {
    sendError(ctx, t.error(), f);
    return std::nullopt;
  }
  if (!*t) {
    gateway::sendError(*ctx.conn, "thread_not_found", "no thread '" + thread_id + "'", f.id);
    return std::nullopt;
  }
  if ((*t)->user_id != ctx.user_id) {
    // Same wording as not-found would leak less, but the protocol names `forbidden` explicitly.
    gateway::sendError(*ctx.conn, "forbidden", "thread '" + thread_id + "' belongs to another user", f.id);
    return std::nullopt;
  }
  return *t;
}

// "created_ms:thread_id", the cursor of the next page of threads.
std::string cursorOf(const store::Thread& t) {
  return fmt::format("{}:{}", t.created_ms, t.id);
}

std::optional<store::ThreadCursor> parseCursor(const std::string& s) {
  auto colon = s.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  int64_t ms = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + colon, ms);
  if (ec != std::errc{} || p != s.data() + colon || ms <= 0) return std::nullopt;
  return store::ThreadCursor{ms, s.substr(colon + 1)};
}

// data[key], a non-empty string; sends invalid_field or missing_field and returns nullopt otherwise.
std::optional<std::string> requiredString(const ClientContext& ctx, const Frame& f, const char* key) {
  auto v = optionalString(f.data, key);
  if (!v) {
    sendError(ctx, v.error(), f);
    return std::nullopt;
  }
  if (!*v || (*v)->empty()) {
    gateway::sendError(*ctx.conn, "missing_field", fmt::format("data.{} is required", key), f.id);
    return std::nullopt;
  }
  return std::move(**v);
}

// data.on_busy: absent, or one of the policies; sends invalid_field and returns false otherwise.
bool readOnBusy(const ClientContext& ctx, const Frame& f, std::optional<std::string>& out) {
  auto v = optionalString(f.data, "on_busy");
  if (!v) {
    sendError(ctx, v.error(), f);
    return false;
  }
  if (*v && !agents::parseOnBusy(**v)) {
    gateway::sendError(*ctx.conn, "invalid_field", "data.on_busy must be \"enqueue\", \"reject\" or \"interrupt\"",
                       f.id);
    return false;
  }
  out = *v;
  return true;
}

core::Result<store::Thread> createThread(const ChatServices& s, const ClientContext& ctx, const std::string& title,
                                         const std::string& agent, const std::string& on_busy = {}) {
  return createUserThread(s.store, s.delivery, s.limits.max_threads_per_user, ctx.user_id, title, agent, on_busy);
}

// A title a thread may have; sends invalid_field and returns false otherwise.
bool validTitle(const ChatServices& s, const ClientContext& ctx, const Frame& f, const std::string& title) {
  if (title.find('\0') != std::string::npos) {
    gateway::sendError(*ctx.conn, "invalid_field", "data.title must not contain NUL characters", f.id);
    return false;
  }
  if (core::truncateUtf8(title, static_cast<std::size_t>(s.limits.max_title_chars)).size() < title.size()) {
    gateway::sendError(*ctx.conn, "invalid_field",
                       fmt::format("data.title must be at most {} characters", s.limits.max_title_chars), f.id);
    return false;
  }
  return true;
}

// The change goes to every connection of the user through their stream (other tabs and devices
// update their thread lists; one offline gets it on resume). The reply does not wait for it.
void announce(const ChatServices& s, const ClientContext& ctx, const std::string& type, const std::string& thread_id,
              json::object data) {
  delivery::Event event;
  event.type = type;
  event.thread_id = thread_id;
  event.data = std::move(data);
  event.owner_checked = true;
  auto r = s.delivery.deliver(ctx.user_id, std::move(event), delivery::Delivery::Backpressure::Wait);
  (void)r;  // a refusal is counted and logged by delivery; the change itself is stored
  // (handlers that touch the store run off the I/O threads: waiting for room is allowed here)
}

void registerThreadEditing(MessageRouter& router, const ChatServices& s) {
  router.addHandler("rename_thread", [s](const ClientContext& ctx, const Frame& f) {
    auto thread_id = requiredString(ctx, f, "thread_id");
    if (!thread_id) return;
    auto title = requiredString(ctx, f, "title");
    if (!title || !validTitle(s, ctx, f, *title)) return;
    if (!ownedThread(s.delivery, ctx, f, *thread_id)) return;
    auto renamed = s.store.renameThread(*thread_id, *title);
    if (!renamed) return sendError(ctx, renamed.error(), f);
    if (!*renamed) return gateway::sendError(*ctx.conn, "thread_not_found", "no thread '" + *thread_id + "'", f.id);
    json::object data{{"thread_id", *thread_id}, {"title", *title}};
    announce(s, ctx, "thread_renamed", *thread_id, data);
    sendReply(*ctx.conn, "thread_renamed", f.id, std::move(data));
  });

  router.addHandler("delete_thread", [s](const ClientContext& ctx, const Frame& f) {
    auto thread_id = requiredString(ctx, f, "thread_id");
    if (!thread_id || !ownedThread(s.delivery, ctx, f, *thread_id)) return;
    auto busy = [&] {
      gateway::sendError(*ctx.conn, "thread_busy",
                         fmt::format("thread '{}' has a run in progress; stop it (stop_agent) or wait for its end, "
                                     "then delete the thread",
                                     *thread_id),
                         f.id);
    };
    // This node's own count first: it includes a message acked a moment ago whose run the store
    // may not have yet. The store's check covers runs on other nodes, in the deleting transaction.
    if (s.bridge.threadBusy(*thread_id)) return busy();
    auto deleted = s.store.deleteThread(*thread_id, false);
    if (!deleted) return sendError(ctx, deleted.error(), f);
    if (*deleted == store::ThreadDeletion::Busy) return busy();
    s.delivery.forgetThread(*thread_id);
    if (*deleted == store::ThreadDeletion::NotFound) {
      return gateway::sendError(*ctx.conn, "thread_not_found", "no thread '" + *thread_id + "'", f.id);
    }
    announce(s, ctx, "thread_deleted", *thread_id, {{"thread_id", *thread_id}});
    sendReply(*ctx.conn, "thread_deleted", f.id, {{"thread_id", *thread_id}});
  });
}

}  // namespace

void registerChatHandlers(MessageRouter& router, ChatServices s) {
  registerThreadEditing(router, s);
  router.addHandler("ping", [](const ClientContext& ctx, const Frame& f) {
    sendReply(*ctx.conn, "pong", f.id, {{"ts", core::nowMs()}});
  });

  router.addHandler("create_thread", [s](const ClientContext& ctx, const Frame& f) {
    auto agent = optionalString(f.data, "agent");
    if (!agent) return sendError(ctx, agent.error(), f);
    auto title = optionalString(f.data, "title");
    if (!title) return sendError(ctx, title.error(), f);
    std::optional<std::string> on_busy;
    if (!readOnBusy(ctx, f, on_busy)) return;
    std::string name = agent->value_or("");
    if (!name.empty() && !s.bridge.hasAgent(name)) {
      return gateway::sendError(*ctx.conn, "unknown_agent", "no agent named '" + name + "'", f.id);
    }
    std::string t_title = title->value_or("");
    if (!validTitle(s, ctx, f, t_title)) return;
    auto t = createThread(s, ctx, t_title, name, on_busy.value_or(""));
    if (!t) return sendError(ctx, t.error(), f);
    sendReply(*ctx.conn, "thread_created", f.id, threadJson(t.value()));
  });

  router.addHandler("list_threads", [s](const ClientContext& ctx, const Frame& f) {
    auto limit = optionalInt(f.data, "limit");
    if (!limit) return sendError(ctx, limit.error(), f);
    auto before = optionalString(f.data, "before");
    if (!before) return sendError(ctx, before.error(), f);
    store::ThreadCursor cursor;
    if (*before) {
      auto c = parseCursor(**before);
      if (!c)
        return gateway::sendError(*ctx.conn, "invalid_field", "data.before is not a cursor from next_before", f.id);
      cursor = *c;
    }
    int n = static_cast<int>(std::clamp<int64_t>(limit->value_or(50), 1, s.limits.list_page_max));
    // One more than asked tells whether there is a next page.
    auto threads = s.store.listThreads(ctx.user_id, n + 1, cursor);
    if (!threads) return sendError(ctx, threads.error(), f);
    json::object data;
    if (threads->size() > static_cast<std::size_t>(n)) {
      threads->resize(n);
      data["next_before"] = cursorOf(threads->back());
    }
    json::array out;
    for (const auto& t : *threads) out.emplace_back(threadJson(t));
    data["threads"] = std::move(out);
    sendReply(*ctx.conn, "threads", f.id, std::move(data));
  });

  router.addHandler("get_thread_history", [s](const ClientContext& ctx, const Frame& f) {
    auto thread_id = requiredString(ctx, f, "thread_id");
    if (!thread_id) return;
    auto limit = optionalInt(f.data, "limit");
    if (!limit) return sendError(ctx, limit.error(), f);
    auto before = optionalInt(f.data, "before");
    if (!before) return sendError(ctx, before.error(), f);
    if (!ownedThread(s.delivery, ctx, f, *thread_id)) return;
    int n = static_cast<int>(std::clamp<int64_t>(limit->value_or(100), 1, s.limits.list_page_max * 5));
    auto messages = s.store.listMessages(*thread_id, n, before->value_or(0));
    if (!messages) return sendError(ctx, messages.error(), f);
    json::array out;
    for (const auto& m : *messages) out.emplace_back(messageJson(m));
    // Runs in progress with their answer so far: a device joining mid-run shows what the others show,
    // then applies the run's live events from `from_seq` on (earlier ones are in partial_answer).
    json::array in_progress;
    for (const auto& [run_id, status] : s.bridge.threadRuns(ctx.user_id, *thread_id)) {
      auto events = s.store.runEvents(ctx.user_id, run_id);
      if (!events) return sendError(ctx, events.error(), f);
      std::string partial;
      int64_t last_seq = 0;
      for (const auto& ev : *events) {
        last_seq = ev.seq;
        if (ev.type != "agent_response_chunk") continue;
        boost::system::error_code ec;
        auto d = json::parse(ev.data_json, ec);
        if (!ec && d.is_object() && d.as_object().contains("delta") && d.at("delta").is_string()) {
          partial += std::string(d.at("delta").as_string());
        }
      }
      in_progress.emplace_back(json::object{
          {"run_id", run_id}, {"status", status}, {"partial_answer", std::move(partial)}, {"from_seq", last_seq + 1}});
    }
    sendReply(*ctx.conn, "thread_history", f.id,
              {{"thread_id", *thread_id}, {"messages", std::move(out)}, {"runs_in_progress", std::move(in_progress)}});
  });

  router.addHandler("user_message", [s](const ClientContext& ctx, const Frame& f) {
    auto* content_v = f.data.if_contains("content");
    if (content_v == nullptr || content_v->is_null()) {
      return gateway::sendError(*ctx.conn, "missing_field", "data.content (a string) is required", f.id);
    }
    if (!content_v->is_string()) {
      return gateway::sendError(*ctx.conn, "invalid_field", "data.content must be a string", f.id);
    }
    std::string content(content_v->as_string());
    if (content.find('\0') != std::string::npos) {
      // Not storable as text everywhere (PostgreSQL text has no NUL), so refused everywhere.
      return gateway::sendError(*ctx.conn, "invalid_field", "data.content must not contain NUL characters", f.id);
    }
    auto thread_field = optionalString(f.data, "thread_id");
    if (!thread_field) return sendError(ctx, thread_field.error(), f);
    auto agent_field = optionalString(f.data, "agent");
    if (!agent_field) return sendError(ctx, agent_field.error(), f);
    std::optional<std::string> on_busy_field;
    if (!readOnBusy(ctx, f, on_busy_field)) return;
    // The message's agent, else the thread's, else the configured default.
    std::string agent = agent_field->value_or("");
    std::string thread_id = thread_field->value_or("");
    if (!s.delivery.writable()) {
      return gateway::sendError(*ctx.conn, store::kUnavailable,
                                "the store cannot write right now; the message was not stored, retry later", f.id);
    }
    if (thread_id.empty()) {
      // Checked before the thread is made: an unknown agent leaves nothing behind.
      if (!agent.empty() && !s.bridge.hasAgent(agent)) {
        return gateway::sendError(*ctx.conn, "unknown_agent", "no agent named '" + agent + "'", f.id);
      }
      // The thread keeps the agent its first message named: the next ones go to it too.
      auto t = createThread(s, ctx, core::titleFrom(content, kDerivedTitleChars), agent);
      if (!t) return sendError(ctx, t.error(), f);
      thread_id = t->id;
    } else {
      auto t = ownedThread(s.delivery, ctx, f, thread_id);
      if (!t) return;
      if (agent.empty()) agent = t->agent;
      if (!on_busy_field && !t->on_busy.empty()) on_busy_field = t->on_busy;  // the thread's default
    }
    auto on_busy = agents::parseOnBusy(on_busy_field.value_or("enqueue")).value_or(agents::OnBusy::Enqueue);
    agents::UserContext run_ctx{ctx.user_id, thread_id, core::newId("run"), f.id};
    auto size = static_cast<int64_t>(content.size());
    // Ack from the writer thread once the message and its run are durable; errors at once.
    s.bridge.submit(agents::AgentWebSocketBridge::Submission{run_ctx, std::move(content), agent, on_busy},
                    [s, conn = ctx.conn, run_ctx, agent, size, id = f.id](const core::Result<store::Message>& stored) {
                      if (!stored) return gateway::sendError(*conn, stored.error().code, stored.error().message, id);
                      if (s.recorder.enabled()) {
                        analytics::Record r;
                        r.kind = "message_received";
                        r.user_id = run_ctx.user_id;
                        r.thread_id = run_ctx.thread_id;
                        r.run_id = run_ctx.run_id;
                        r.connection_id = conn->id();
                        r.agent = agent;
                        r.count = size;
                        s.recorder.record(std::move(r));
                      }
                      sendReply(
                          *conn, "ack", id,
                          {{"thread_id", run_ctx.thread_id}, {"message_id", stored->id}, {"run_id", run_ctx.run_id}});
                    });
  });

  router.addHandler("resume", [s](const ClientContext& ctx, const Frame& f) {
    auto last_seq = optionalInt(f.data, "last_seq");
    if (!last_seq) return sendError(ctx, last_seq.error(), f);
    if (!*last_seq) return gateway::sendError(*ctx.conn, "missing_field", "data.last_seq is required", f.id);
    auto epoch = optionalString(f.data, "epoch");
    if (!epoch) return sendError(ctx, epoch.error(), f);
    // Delivery sends the replay and resume_complete (or resync_required) itself, in order.
    auto r = s.delivery.resume(*ctx.conn, **last_seq, epoch->value_or(""), f.id);
    if (!r) sendError(ctx, r.error(), f);
  });

  router.addHandler("ack_events", [s](const ClientContext& ctx, const Frame& f) {
    auto seq = optionalInt(f.data, "seq");
    if (!seq) return sendError(ctx, seq.error(), f);
    if (!*seq) return gateway::sendError(*ctx.conn, "missing_field", "data.seq is required", f.id);
    s.delivery.ack(ctx.user_id, **seq);
  });

  router.addHandler("stop_agent", [s](const ClientContext& ctx, const Frame& f) {
    auto run_id = requiredString(ctx, f, "run_id");
    if (!run_id) return;
    auto stopped = s.bridge.stopRun(ctx.user_id, *run_id);
    if (stopped) return sendReply(*ctx.conn, "stop_requested", f.id, {{"run_id", *run_id}, {"status", "stopping"}});
    if (stopped.error().code == "run_not_found") {
      // Idempotent: a run that already ended answers with how it ended, not an error (one whose
      // last event is queued but not yet stored is ending: "stopping").
      auto state = runState(s.store, ctx.user_id, *run_id);
      if (state && *state) {
        std::string status((*state)->at("status").as_string());
        return sendReply(*ctx.conn, "stop_requested", f.id,
                         {{"run_id", *run_id}, {"status", runEnded(status) ? status : std::string("stopping")}});
      }
    }
    gateway::sendError(*ctx.conn, stopped.error().code, stopped.error().message, f.id);
  });

  router.addHandler("approve_tool", [s](const ClientContext& ctx, const Frame& f) {
    auto approval_id = requiredString(ctx, f, "approval_id");
    if (!approval_id) return;
    auto decision = optionalString(f.data, "decision");
    if (!decision) return sendError(ctx, decision.error(), f);
    if (!*decision) return gateway::sendError(*ctx.conn, "missing_field", "data.decision is required", f.id);
    if (**decision != "approve" && **decision != "deny") {
      return gateway::sendError(*ctx.conn, "invalid_field", "data.decision must be \"approve\" or \"deny\"", f.id);
    }
    auto reason = optionalString(f.data, "reason");
    if (!reason) return sendError(ctx, reason.error(), f);
    // `by` in tool_approval_resolved: the answering WebSocket's id, or "http" for the HTTP API.
    const std::string& conn_id = ctx.conn->id();
    auto done = s.bridge.answerApproval(ctx.user_id, *approval_id, **decision == "approve", reason->value_or(""),
                                        conn_id.rfind("http", 0) == 0 ? std::string("http") : conn_id);
    if (!done) return sendError(ctx, done.error(), f);
    sendReply(*ctx.conn, "approval_recorded", f.id, {{"approval_id", *approval_id}, {"decision", **decision}});
  });

  router.addHandler("list_approvals", [s](const ClientContext& ctx, const Frame& f) {
    auto pending = s.store.pendingApprovals(ctx.user_id);
    if (!pending) return sendError(ctx, pending.error(), f);
    sendReply(*ctx.conn, "approvals", f.id, {{"approvals", approvalsJson(*pending)}});
  });

  router.addHandler("list_runs", [s](const ClientContext& ctx, const Frame& f) {
    auto thread_id = requiredString(ctx, f, "thread_id");
    if (!thread_id) return;
    if (!ownedThread(s.delivery, ctx, f, *thread_id)) return;
    auto runs = threadRunStates(s.store, ctx.user_id, *thread_id, s.limits.list_page_max);
    if (!runs) return sendError(ctx, runs.error(), f);
    sendReply(*ctx.conn, "runs", f.id, {{"thread_id", *thread_id}, {"runs", std::move(*runs)}});
  });

  router.addHandler("list_agents", [s](const ClientContext& ctx, const Frame& f) {
    json::array out;
    for (const auto& [name, info] : s.bridge.agentInfos()) {
      json::object a{{"name", name}, {"kind", info.kind}, {"description", info.description}};
      if (!info.provider.empty()) a["provider"] = info.provider;
      if (!info.model.empty()) a["model"] = info.model;
      json::array tools;
      for (const auto& t : info.tools) tools.emplace_back(t);
      a["tools"] = std::move(tools);
      out.emplace_back(std::move(a));
    }
    sendReply(*ctx.conn, "agents", f.id, {{"agents", std::move(out)}, {"default", s.bridge.defaultAgent()}});
  });

  router.addHandler("get_run", [s](const ClientContext& ctx, const Frame& f) {
    auto run_id = requiredString(ctx, f, "run_id");
    if (!run_id) return;
    auto state = runState(s.store, ctx.user_id, *run_id);
    if (!state) return sendError(ctx, state.error(), f);
    if (!*state) return gateway::sendError(*ctx.conn, "run_not_found", "no run '" + *run_id + "' of this user", f.id);
    sendReply(*ctx.conn, "run", f.id, std::move(**state));
  });
}

}  // namespace agentwire::gateway
