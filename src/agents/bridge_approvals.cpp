// The AgentWebSocketBridge's tool approvals: parking a run on a tool call that needs a person's
// answer, answering, expiring, and taking the run up again (here, after a restart, or on the
// node that parked it).
#include "agents/bridge.hpp"

#include "bus/bus.hpp"
#include "core/ids.hpp"
#include "delivery/delivery.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>

namespace agentwire::agents {
namespace json = boost::json;

namespace {

// What a parked run needs to take up again, stored with its approval.
std::string runState(const std::string& input, const std::string& request_id, const std::string& agent,
                     const RunJournal& journal, const RunUsage& counted) {
  json::object st{{"input", input}, {"request_id", request_id}, {"agent", agent}, {"journal", journal.entries()}};
  if (counted.known) {
    st["counted"] = json::object{{"input_tokens", counted.input_tokens}, {"output_tokens", counted.output_tokens}};
  }
  return json::serialize(st);
}

// The tokens a parked run had counted when its process stopped (older states have none).
RunUsage countedOf(const json::object& st) {
  RunUsage u;
  const auto* c = st.if_contains("counted");
  const auto* o = c != nullptr ? c->if_object() : nullptr;
  const auto* in = o != nullptr ? o->if_contains("input_tokens") : nullptr;
  const auto* out = o != nullptr ? o->if_contains("output_tokens") : nullptr;
  if (in != nullptr && in->is_int64() && out != nullptr && out->is_int64()) {
    u.known = true;
    u.input_tokens = in->as_int64();
    u.output_tokens = out->as_int64();
  }
  return u;
}

ApprovalDecision decisionOf(const store::Approval& a) {
  return ApprovalDecision{a.id, a.tool_call_id, a.tool_name, a.status, a.reason};
}

}  // namespace

std::size_t AgentWebSocketBridge::parkedRuns() const {
  std::lock_guard lock(mutex_);
  return parked_.size();
}

void AgentWebSocketBridge::park(Run& run, const UserEmitter& emitter, std::chrono::steady_clock::time_point t0,
                                RunParked parked, const RunUsage& usage) {
  // Counted now: a parked run may never take up again (stopped, expired, its agent gone after a restart).
  countTokens(run, usage);
  std::size_t waiting = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, p] : parked_) waiting += p.run.ctx.user_id == run.ctx.user_id ? 1 : 0;
  }
  if (waiting >= static_cast<std::size_t>(options_.max_parked_per_user)) {
    // Each parked run holds a thread's place and its state: one user cannot pile them up.
    log_->warn("run '{}' of user '{}' cannot wait for approval of tool '{}': {} runs of the user wait already",
               run.ctx.run_id, run.ctx.user_id, parked.tool_name, waiting);
    releaseThreadOf(run);
    emitter.emitLifecycle("agent_error",
                          {{"code", "approval_limit"},
                           {"message", fmt::format("{} runs of this user are waiting for an approval "
                                                   "(agents.max_parked_per_user); answer one and send again",
                                                   waiting)}},
                          "error");
    release(run);
    return finish(run, emitter, t0, "error", "approval_limit", &usage);
  }
  store::Approval a;
  a.id = core::newId("apr");
  a.user_id = run.ctx.user_id;
  a.thread_id = run.ctx.thread_id;
  a.run_id = run.ctx.run_id;
  a.tool_call_id = parked.tool_call_id;
  a.tool_name = parked.tool_name;
  a.args_json = json::serialize(parked.args);
  a.run_state_json = runState(run.input, run.ctx.request_id, run.agent->name(), *run.journal, run.counted);
  a.node_id = options_.node_id;
  a.status = "pending";
  a.created_ms = core::nowMs();
  a.expires_ms = a.created_ms + options_.approval_timeout_ms;
  {
    // In parked_ before the approval is stored (an answer needs the stored approval, so it always
    // finds the run here), but not `stored` until park() is done with it.
    std::lock_guard lock(mutex_);
    Parked p{run, a.id, a.expires_ms};
    p.run.parked = false;
    p.run.resumed = true;
    p.run.approval_id = a.id;
    parked_.emplace(run.ctx.run_id, std::move(p));
  }
  // Stored before it is announced: a client that sees tool_approval_requested finds the approval
  // in list_approvals and can answer it at once. An answer given between the two (by a client
  // that listed it) waits in resolve() for the announcement, so tool_approval_resolved always
  // follows tool_approval_requested in the user's stream (one writer per stream keeps the order).
  auto added = store_.addApproval(a);
  if (added) {
    emitter.emitLifecycle("tool_approval_requested",
                          {{"approval_id", a.id},
                           {"tool_call_id", a.tool_call_id},
                           {"tool_name", a.tool_name},
                           {"args", std::move(parked.args)},
                           {"expires_at", a.expires_ms}},
                          {});
    {
      std::lock_guard lock(mutex_);
      parked_.at(run.ctx.run_id).announced = true;
    }
    announced_cv_.notify_all();
  }
  if (!added) {
    log_->error("run '{}' of user '{}' cannot wait for approval of tool '{}': {}", run.ctx.run_id, run.ctx.user_id,
                a.tool_name, added.error().message);
    {
      std::lock_guard lock(mutex_);
      parked_.erase(run.ctx.run_id);
    }
    announced_cv_.notify_all();
    releaseThreadOf(run);
    emitter.emitLifecycle(
        "agent_error",
        {{"code", "unavailable"}, {"message", "cannot store the tool approval: " + added.error().message}}, "error");
    release(run);
    return finish(run, emitter, t0, "error", "unavailable", &usage);
  }
  std::optional<store::Approval> answered;
  {
    std::lock_guard lock(mutex_);
    executing_.erase(run.ctx.run_id);
    if (--running_per_user_[run.ctx.user_id] == 0) running_per_user_.erase(run.ctx.user_id);
    run.parked = true;  // the worker leaves its thread's place to the parked run
    auto& p = parked_.at(run.ctx.run_id);
    p.stored = true;
    answered = std::move(p.answered);
    p.answered.reset();
    // Stopped or interrupted after execute() decided to park it and before it was in parked_ (both
    // take mutex_, so one of them sees the other): it ends now rather than at its expiry.
    if (p.end_by.empty() && !stopping_ && run.cancel->stopRequested()) {
      p.end_by = run.cancel->interrupted() ? "interrupted" : "stop_agent";
      p.end_reason = "the run was stopped";
    }
  }
  cv_.notify_all();            // another run of this user may execute now
  approvals_cv_.notify_all();  // its expiry, or an end asked for meanwhile
  log_->info("run '{}' of user '{}' waits for approval '{}' of tool '{}'", a.run_id, a.user_id, a.id, a.tool_name);
  if (answered) resumeParked(*answered);  // answered before park() was done
}

core::Result<store::Approval> AgentWebSocketBridge::answerApproval(const std::string& user_id,
                                                                   const std::string& approval_id, bool approve,
                                                                   const std::string& reason, const std::string& by) {
  auto found = store_.findApproval(approval_id);
  if (!found) return core::Error{"unavailable", "cannot read the approval right now; try again"};
  // Another user's approval is not found: its existence is not revealed.
  if (!*found || (*found)->user_id != user_id) {
    return core::Error{"approval_not_found", fmt::format("no approval '{}' of this user", approval_id)};
  }
  return resolve(approval_id, approve ? "approved" : "denied", reason, by);
}

core::Result<store::Approval> AgentWebSocketBridge::resolve(const std::string& approval_id, const std::string& status,
                                                            const std::string& reason, const std::string& by) {
  auto r = store_.resolveApproval(approval_id, status, reason, by);
  if (!r) return core::Error{"unavailable", "cannot record the answer right now; try again"};
  if (!*r) return core::Error{"approval_not_found", fmt::format("no approval '{}' of this user", approval_id)};
  auto& [won, a] = **r;
  if (!won) {
    return core::Error{"approval_resolved", fmt::format("approval '{}' was already resolved: {} by {}", approval_id,
                                                        a.status, a.by.empty() ? "?" : a.by)};
  }
  // After the run's tool_approval_requested (an answer can come as soon as the approval is stored,
  // a moment before that event is delivered), and in the stream before any event of the run taken
  // up again (both go through the user's one writer).
  {
    // Copies, not the structured binding: clang (the fuzz build) cannot capture one.
    const std::string run_id = a.run_id;
    const std::string id = a.id;
    std::unique_lock lock(mutex_);
    announced_cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      auto it = parked_.find(run_id);
      return it == parked_.end() || it->second.approval_id != id || it->second.announced;
    });
  }
  announceResolved(a);
  resumeParked(a);
  return a;
}

void AgentWebSocketBridge::announceResolved(const store::Approval& a) {
  json::object data{{"approval_id", a.id},
                    {"tool_call_id", a.tool_call_id},
                    {"tool_name", a.tool_name},
                    {"decision", a.status},
                    {"by", a.by}};
  if (!a.reason.empty()) data["reason"] = a.reason;
  auto announced = delivery_.deliver(
      a.user_id, delivery::Event{"tool_approval_resolved", a.thread_id, a.run_id, std::move(data), {}, true});
  if (!announced) {
    log_->warn("cannot announce approval '{}' ({}): {}", a.id, a.status, announced.error().message);
  }
}

void AgentWebSocketBridge::resumeParked(const store::Approval& a) {
  bool queued = false;
  {
    std::lock_guard lock(mutex_);
    auto it = parked_.find(a.run_id);
    if (it != parked_.end() && it->second.approval_id == a.id) {
      if (!it->second.stored) {
        it->second.answered = a;  // park() takes it up once it is done
        return;
      }
      // Shutting down: it stays parked; its approval is resolved and not taken up, so the next
      // start takes it up.
      if (stopping_) return;
      Run run = std::move(it->second.run);
      parked_.erase(it);
      run.journal->rewind(decisionOf(a));
      // First in the queue, and its thread free for it alone: no later run of the thread goes before it.
      running_threads_.erase(run.ctx.thread_id);
      ++queued_per_user_[run.ctx.user_id];
      queue_.push_front(std::move(run));
      queued = true;
    } else if (a.node_id == options_.node_id || bus_ == nullptr) {
      return;  // not parked (anymore): it ended, or it is taken up already
    }
  }
  // Parked here: a worker takes it up, whatever node id the approval was stored under (a process
  // on an ephemeral port gets a new one at each start, and SQLite's runs are all this process's).
  if (queued) {
    cv_.notify_all();
    return;
  }
  bus_->sendToNode(a.node_id, "resume " + a.id);  // parked on the node that stored it
}

void AgentWebSocketBridge::endParkedLocked(const std::string& run_id, const std::string& by,
                                           const std::string& reason) {
  auto it = parked_.find(run_id);
  if (it == parked_.end()) return;
  it->second.end_by = by;
  it->second.end_reason = reason;
  approvals_cv_.notify_all();
}

core::Result<std::set<std::string>> AgentWebSocketBridge::loadParkedRuns() {
  auto waiting = store_.parkedApprovals(options_.node_id);
  if (!waiting) return waiting.error();
  std::set<std::string> parked;
  std::vector<store::Approval> answered;
  for (const auto& a : *waiting) {
    boost::system::error_code ec;
    auto state = json::parse(a.run_state_json, ec);
    const json::object* st = !ec ? state.if_object() : nullptr;
    const json::value* agent_name = st != nullptr ? st->if_contains("agent") : nullptr;
    auto agent = agent_name != nullptr && agent_name->is_string() ? agents_.find(std::string(agent_name->as_string()))
                                                                  : agents_.end();
    if (agent == agents_.end() || !st->contains("journal") || !st->at("journal").is_array()) {
      // Its state cannot be taken up (the agent is gone): the approval expires and the run ends
      // with agent_error interrupted, like every other run the previous process left.
      log_->warn("run '{}' waited for approval '{}' but cannot be taken up again (agent missing)", a.run_id, a.id);
      auto r = store_.resolveApproval(a.id, "expired", "the server restarted without the run's agent", "restart");
      if (r && *r && (*r)->first) announceResolved((*r)->second);
      continue;
    }
    Run run;
    run.ctx = UserContext{a.user_id, a.thread_id, a.run_id,
                          st->contains("request_id") && st->at("request_id").is_string()
                              ? std::string(st->at("request_id").as_string())
                              : std::string{}};
    run.input = st->contains("input") && st->at("input").is_string() ? std::string(st->at("input").as_string()) : "";
    run.agent = agent->second.get();
    run.cancel = std::make_shared<CancelToken>();
    run.journal = std::make_shared<RunJournal>(st->at("journal").as_array(), std::nullopt);
    run.counted = countedOf(*st);
    run.resumed = true;
    run.approval_id = a.id;
    parked.insert(a.run_id);
    {
      std::lock_guard lock(mutex_);
      ++thread_runs_[a.thread_id];
      running_threads_.insert(a.thread_id);
      runs_[a.run_id] = {a.user_id, run.cancel};
      run_threads_[a.run_id] = {a.user_id, a.thread_id};
      Parked p{std::move(run), a.id, a.expires_ms};
      p.stored = true;
      p.announced = true;  // by the process that parked it
      parked_.emplace(a.run_id, std::move(p));
    }
    if (a.status != "pending") answered.push_back(a);  // answered after the process stopped, before it took up
  }
  if (!parked.empty()) log_->info("{} runs wait for a tool approval again", parked.size());
  for (const auto& a : answered) resumeParked(a);
  return parked;
}

void AgentWebSocketBridge::expireApprovalsOf(const std::string& node_id) {
  auto waiting = store_.parkedApprovals(node_id);
  if (!waiting) {
    log_->warn("cannot read the approvals of node '{}': {}", node_id, waiting.error().message);
    return;
  }
  for (const auto& a : *waiting) {
    if (a.status != "pending") continue;
    // Its run ends next with the node's other runs (agent_error interrupted); nothing resumes it.
    auto r = store_.resolveApproval(a.id, "expired", "the server running this run stopped", "interrupted");
    if (r && *r && (*r)->first) announceResolved((*r)->second);
  }
}

void AgentWebSocketBridge::dropParked(const std::string& approval_id) {
  // Its approval is gone with its thread (deleted): the run has nothing left to end in.
  std::lock_guard lock(mutex_);
  for (auto it = parked_.begin(); it != parked_.end(); ++it) {
    if (it->second.approval_id != approval_id) continue;
    const auto& ctx = it->second.run.ctx;
    releaseThread(ctx.thread_id);
    running_threads_.erase(ctx.thread_id);
    runs_.erase(ctx.run_id);
    run_threads_.erase(ctx.run_id);
    parked_.erase(it);
    break;
  }
  cv_.notify_all();
}

void AgentWebSocketBridge::pruneHistory(int64_t now_ms) {
  const int64_t before = now_ms - options_.history_retention_ms;
  // The budget reads today's count: at least yesterday's is kept whatever the retention.
  const std::string before_day = core::utcDate(std::min(before, now_ms - int64_t{86400} * 1000));
  auto deleted = store_.pruneHistory(before, before_day);
  if (!deleted) {
    log_->warn("cannot prune resolved approvals and old token counts: {}; tried again in an hour",
               deleted.error().message);
  } else if (*deleted > 0) {
    log_->info("pruned {} resolved approvals and token counts older than {} s", *deleted,
               options_.history_retention_ms / 1000);
  }
}

void AgentWebSocketBridge::approvalsLoop() {
  // Several nodes: an answer given on another node reaches this one through the bus; should that
  // message be lost (the bus was down), the store says it, read every few seconds while runs wait.
  constexpr int64_t kSweepMs = 5000;
  int64_t next_sweep = core::nowMs() + kSweepMs;
  // History no run needs: soon after start (not in it: startup stays fast), then hourly.
  constexpr int64_t kPruneEveryMs = 3600 * 1000;
  int64_t next_prune = options_.history_retention_ms > 0 ? core::nowMs() + 10000 : INT64_MAX;
  std::unique_lock lock(mutex_);
  while (!approvals_stopping_) {
    // Due: approvals past their time, runs ended without an answer, answers from other nodes.
    struct Due {
      std::string approval_id, by, reason;
    };
    std::vector<Due> due;
    std::vector<std::string> resumes(resume_requests_.begin(), resume_requests_.end());
    resume_requests_.clear();
    int64_t now = core::nowMs();
    int64_t next = now + 60000;
    for (auto& [run_id, p] : parked_) {
      if (!p.stored) continue;  // park() is not done with it
      if (p.retry_ms > now) {
        next = std::min(next, p.retry_ms);
        continue;
      }
      if (!p.end_by.empty()) {
        due.push_back({p.approval_id, p.end_by, p.end_reason});
      } else if (p.expires_ms <= now) {
        due.push_back({p.approval_id, "timeout", "nobody answered in time"});
      } else {
        next = std::min(next, p.expires_ms);
        continue;
      }
      p.retry_ms = now + 1000;  // until resolve() takes it out of parked_
    }
    bool sweep = false;
    if (bus_ != nullptr && !parked_.empty()) {
      sweep = now >= next_sweep;
      if (sweep) next_sweep = now + kSweepMs;
      next = std::min(next, next_sweep);
    }
    const bool prune = now >= next_prune;
    if (prune) next_prune = now + kPruneEveryMs;
    next = std::min(next, next_prune);
    if (due.empty() && resumes.empty() && !sweep && !prune) {
      approvals_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, next - now)));
      continue;
    }
    lock.unlock();
    if (prune) pruneHistory(now);
    if (sweep) {
      auto waiting = store_.parkedApprovals(options_.node_id);
      if (waiting) {
        for (const auto& a : *waiting) {
          if (a.status != "pending") resumeParked(a);
        }
      }
    }
    for (const auto& d : due) {
      auto r = resolve(d.approval_id, "expired", d.reason, d.by);
      // approval_resolved: answered at the same moment; that answer takes the run up.
      if (!r && r.error().code == "approval_not_found") {
        dropParked(d.approval_id);
      } else if (!r && r.error().code == "approval_resolved") {
        // Resolved elsewhere: answered on another node whose message was lost, or expired by the
        // node that took over this one's runs (this node lost its lease). Taken up here either way:
        // an abandoned run ends silently and gives back its place.
        auto a = store_.findApproval(d.approval_id);
        if (a && *a) resumeParked(**a);
      } else if (!r) {
        log_->warn("cannot expire approval '{}': {}; tried again in a second", d.approval_id, r.error().message);
      }
    }
    for (const auto& id : resumes) {
      auto a = store_.findApproval(id);
      if (a && *a && (*a)->node_id == options_.node_id) resumeParked(**a);
    }
    lock.lock();
  }
}

}  // namespace agentwire::agents
