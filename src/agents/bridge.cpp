#include "agents/bridge.hpp"

#include "bus/bus.hpp"
#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"
#include "delivery/delivery.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace agentwire::agents {

std::optional<OnBusy> parseOnBusy(std::string_view s) {
  if (s == "enqueue") return OnBusy::Enqueue;
  if (s == "reject") return OnBusy::Reject;
  if (s == "interrupt") return OnBusy::Interrupt;
  return std::nullopt;
}

AgentWebSocketBridge::AgentWebSocketBridge(delivery::Delivery& delivery, store::Store& store, Options options,
                                           std::vector<std::string> dependencies)
    : Component("agent_bridge", std::move(dependencies)),
      delivery_(delivery),
      store_(store),
      options_(std::move(options)),
      log_(core::logger("agents")) {
  if (options_.chunk_window_ms > 0) rollup_timer_ = std::make_unique<RollupTimer>();
}

AgentWebSocketBridge::~AgentWebSocketBridge() {
  stop();
}

void AgentWebSocketBridge::addAgent(AgentPtr agent, AgentInfo info) {
  auto name = agent->name();
  durations_[name] = std::make_unique<monitoring::Histogram>(monitoring::Histogram::durationBounds());
  agents_[name] = std::move(agent);
  infos_[name] = std::move(info);
}

void AgentWebSocketBridge::start() {
  if (agents_.find(options_.default_agent) == agents_.end()) {
    throw std::runtime_error(fmt::format("default agent '{}' is not registered", options_.default_agent));
  }
  // Runs parked on a tool approval survive a restart: they wait again, and only the others end.
  auto parked = loadParkedRuns();
  if (!parked) throw std::runtime_error("cannot read parked runs: " + parked.error().message);
  auto interrupted = interruptUnfinishedRuns(
      options_.node_id, "the server stopped while this run was in progress; send the message again", *parked);
  if (!interrupted) throw std::runtime_error("cannot read unfinished runs: " + interrupted.error().message);
  if (*interrupted > 0) {
    log_->warn(
        "{} runs were still queued or running when the previous process ended; each ended with agent_error "
        "interrupted",
        *interrupted);
  }
  if (options_.lease_ms > 0) {
    auto taken = store_.acquireLease(options_.node_id, options_.lease_ms);
    if (!taken) throw std::runtime_error("cannot take this node's lease: " + taken.error().message);
    {
      std::lock_guard lock(lease_mutex_);
      lease_stopping_ = false;
    }
    lease_thread_ = std::thread([this] {
      core::setThreadName("aw-lease");
      leaseLoop();
    });
  }
  std::lock_guard lock(mutex_);
  stopping_ = false;
  accepting_ = true;
  approvals_stopping_ = false;
  approvals_thread_ = std::thread([this] {
    core::setThreadName("aw-approvals");
    approvalsLoop();
  });
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this, i] {
      core::setThreadName("aw-agent-" + std::to_string(i));
      workerLoop();
    });
  }
  log_->info("agent bridge ready: {} workers, agents: {}", options_.workers, fmt::join(agentNames(), ", "));
}

void AgentWebSocketBridge::stop() {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    stopping_ = true;
    // Runs still queued or in flight end with agent_stopped: no run is left without its last event.
    // Parked runs stay parked: their approvals are stored, and they wait again after a restart.
    for (auto& [id, entry] : runs_) {
      if (parked_.count(id) == 0) entry.second->cancel();
    }
    approvals_stopping_ = true;
  }
  cv_.notify_all();
  approvals_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  if (approvals_thread_.joinable()) approvals_thread_.join();
  if (lease_thread_.joinable()) {
    {
      std::lock_guard lock(lease_mutex_);
      lease_stopping_ = true;
    }
    lease_cv_.notify_all();
    lease_thread_.join();
    // Every run here ended (agent_stopped, committed by now): nothing for another node to take over;
    // unless runs wait for approvals here: then the lease is left to expire, so that, if this node
    // does not come back within node.lease_ms, another node ends them.
    delivery_.flush();
    bool waiting = false;
    {
      std::lock_guard lock(mutex_);
      waiting = !parked_.empty();
    }
    if (!waiting) (void)store_.dropLease(options_.node_id);
  }
}

void AgentWebSocketBridge::setBus(bus::Bus& b) {
  bus_ = &b;
  bus_->setControlListener([this](const std::string& message) {
    // "resume <approval_id>": an approval of a run parked here was answered on another node.
    if (message.rfind("resume ", 0) == 0) {
      {
        std::lock_guard lock(mutex_);
        resume_requests_.push_back(message.substr(7));
      }
      approvals_cv_.notify_all();
      return;
    }
    // "stop <run_id>": the sending node checked that the run is the requesting user's.
    if (message.rfind("stop ", 0) != 0) return;
    std::string run_id = message.substr(5);
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it != runs_.end()) it->second.second->cancel();
    endParkedLocked(run_id, "stop_agent", "the run was stopped");
  });
}

void AgentWebSocketBridge::leaseLoop() {
  std::unique_lock lock(lease_mutex_);
  while (!lease_stopping_) {
    lease_cv_.wait_for(lock, std::chrono::milliseconds(options_.lease_renew_ms), [&] { return lease_stopping_; });
    if (lease_stopping_) return;
    lock.unlock();
    renewAndTakeOver();
    lock.lock();
  }
}

void AgentWebSocketBridge::renewAndTakeOver() {
  auto renewed = store_.renewLease(options_.node_id, options_.lease_ms);
  if (!renewed) {
    ++lease_stats_.renew_failures;
    log_->warn("cannot renew this node's lease: {}; other nodes take over its runs if this lasts {} ms",
               renewed.error().message, options_.lease_ms);
    return;
  }
  if (!*renewed) {
    ++lease_stats_.lost;
    log_->error(
        "this node's lease was taken over (it was not renewed for {} ms: the process was paused or cut off from the "
        "database); its runs were ended as interrupted by another node and stop here without further events",
        options_.lease_ms);
    abandonRuns();
    auto again = store_.acquireLease(options_.node_id, options_.lease_ms);
    if (!again) log_->warn("cannot take this node's lease again: {}", again.error().message);
    return;
  }
  auto expired = store_.claimExpiredLeases(options_.node_id, options_.lease_ms);
  if (!expired) {
    log_->warn("cannot look for expired node leases: {}", expired.error().message);
    return;
  }
  for (const auto& node : *expired) {
    expireApprovalsOf(node);
    auto n = interruptUnfinishedRuns(
        node, "the server running this run stopped while it was in progress; send the message again");
    if (!n) {
      log_->warn("cannot end the runs of node '{}' (its lease expired): {}; retried when the claim expires", node,
                 n.error().message);
      continue;
    }
    // Dropped only once its runs ended for good: a takeover cut short (this node dies, the store
    // fails) leaves the claim to expire, and another node takes over again.
    delivery_.flush();
    auto left = store_.unfinishedRuns(node);
    if (left && left->empty()) (void)store_.dropLease(node);
    ++lease_stats_.takeovers;
    log_->warn("node '{}' stopped renewing its lease; {} of its runs ended with agent_error interrupted", node, *n);
  }
}

void AgentWebSocketBridge::abandonRuns() {
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, entry] : runs_) entry.second->abandon();
    // Parked runs were ended by the node that took over: taken up, they end silently.
    for (auto& [id, p] : parked_) endParkedLocked(id, "interrupted", "this node lost its lease");
  }
  approvals_cv_.notify_all();
}

std::unique_ptr<UserEmitter> AgentWebSocketBridge::createUserEmitter(const UserContext& ctx) {
  auto emitter = std::unique_ptr<UserEmitter>(new UserEmitter(delivery_, ctx));
  if (rollup_timer_) {
    ChunkRollup::Options o{std::chrono::milliseconds(options_.chunk_window_ms),
                           static_cast<std::size_t>(std::max(1, options_.chunk_max_bytes))};
    // The rollup never delivers after the emitter closed it (its destructor), so `e` outlives its use.
    auto rollup = std::make_shared<ChunkRollup>(
        o, [e = emitter.get()](const std::string& type, boost::json::object data, const std::string& status) {
          return e->deliver(type, std::move(data), status);
        });
    emitter->useRollup(std::move(rollup), *rollup_timer_);
  }
  return emitter;
}

core::Result<Agent*> AgentWebSocketBridge::admit(const std::string& user_id, const std::string& agent_name) const {
  const std::string& name = agent_name.empty() ? options_.default_agent : agent_name;
  auto it = agents_.find(name);
  if (it == agents_.end()) return core::Error{"unknown_agent", fmt::format("no agent named '{}'", name)};
  if (!accepting_) return core::Error{"not_ready", "the agent bridge is not running"};
  if (queue_.size() >= options_.max_queue) {
    return core::Error{"rate_limited", fmt::format("agent queue is full ({} runs waiting)", queue_.size())};
  }
  auto q = queued_per_user_.find(user_id);
  if (q != queued_per_user_.end() && q->second >= options_.max_queued_per_user) {
    return core::Error{"rate_limited", fmt::format("{} runs of this user are already waiting", q->second)};
  }
  if (options_.daily_token_budget > 0) {  // the date is not formatted for every message when there is no budget
    if (auto over = overBudgetLocked(user_id, core::utcDate(core::nowMs()))) return *over;
  }
  return it->second.get();
}

std::optional<core::Error> AgentWebSocketBridge::overBudgetLocked(const std::string& user_id,
                                                                  const std::string& day) const {
  if (options_.daily_token_budget <= 0 || core::isSystemUser(user_id)) return std::nullopt;
  auto u = usage_.find(user_id);
  if (u == usage_.end() || u->second.first != day || u->second.second < options_.daily_token_budget) {
    return std::nullopt;
  }
  // The day's end in UTC: the next day at 00:00.
  int64_t next_day_ms = (core::nowMs() / 86400000 + 1) * 86400000;
  return core::Error{"quota_exceeded",
                     fmt::format("the daily token budget of {} tokens is spent ({} used on {} UTC); it resets at "
                                 "{}T00:00:00Z",
                                 options_.daily_token_budget, u->second.second, day, core::utcDate(next_day_ms))};
}

core::Result<std::string> AgentWebSocketBridge::startRun(const UserContext& ctx, std::string input,
                                                         const std::string& agent_name) {
  std::lock_guard lock(mutex_);
  return enqueueLocked(ctx, std::move(input), agent_name, false);
}

core::Result<std::string> AgentWebSocketBridge::enqueueLocked(const UserContext& ctx, std::string input,
                                                              const std::string& agent_name, bool reserved) {
  auto agent = admit(ctx.user_id, agent_name);
  if (!agent) {
    if (reserved) releaseThread(ctx.thread_id);
    return agent.error();
  }
  if (!reserved) ++thread_runs_[ctx.thread_id];
  ++queued_per_user_[ctx.user_id];
  auto token = std::make_shared<CancelToken>();
  runs_[ctx.run_id] = {ctx.user_id, token};
  run_threads_[ctx.run_id] = {ctx.user_id, ctx.thread_id};
  Run run{ctx, std::move(input), *agent, token};
  if (!options_.approval_required_tools.empty()) run.journal = std::make_shared<RunJournal>();
  queue_.push_back(std::move(run));
  cv_.notify_one();
  return ctx.run_id;
}

bool AgentWebSocketBridge::threadBusy(const std::string& thread_id) const {
  std::lock_guard lock(mutex_);
  return thread_runs_.count(thread_id) > 0;
}

void AgentWebSocketBridge::releaseThread(const std::string& thread_id) {
  auto it = thread_runs_.find(thread_id);
  if (it != thread_runs_.end() && --it->second <= 0) thread_runs_.erase(it);
}

void AgentWebSocketBridge::submit(Submission s, Accepted accepted) {
  std::string agent_name;
  {
    std::unique_lock lock(mutex_);
    auto agent = admit(s.ctx.user_id, s.agent);
    if (!agent) {
      lock.unlock();
      return accepted(agent.error());
    }
    auto busy = thread_runs_.find(s.ctx.thread_id);
    if (s.on_busy == OnBusy::Reject && busy != thread_runs_.end()) {
      int n = busy->second;
      lock.unlock();
      return accepted(core::Error{
          "thread_busy", fmt::format("thread '{}' has {} run(s) in progress; the message was not stored (on_busy "
                                     "\"reject\"): send it again when the run ends, or with on_busy \"enqueue\"",
                                     s.ctx.thread_id, n)});
    }
    agent_name = (*agent)->name();
    // Counted from now, before the message is durable: a second message with on_busy "reject"
    // sent right behind this one is refused, not stored beside it.
    ++thread_runs_[s.ctx.thread_id];
  }
  store::Message m;
  m.thread_id = s.ctx.thread_id;
  m.user_id = s.ctx.user_id;
  m.role = "user";
  m.content = s.content;
  m.run_id = s.ctx.run_id;
  store::RunRecord run{s.ctx.run_id, s.ctx.user_id, s.ctx.thread_id, agent_name, options_.node_id, "queued", 0};
  // On the writer thread once the message and its run are durable: ack, then queue the run.
  delivery_.storeMessage(
      std::move(m), std::move(run),
      [this, s = std::move(s), agent_name, accepted = std::move(accepted)](const core::Result<store::Message>& r) {
        if (!r) {
          {
            std::lock_guard lock(mutex_);
            releaseThread(s.ctx.thread_id);
          }
          cv_.notify_all();
          return accepted(r);
        }
        accepted(r);
        core::Result<std::string> started = std::string{};
        {
          std::lock_guard lock(mutex_);
          if (s.on_busy == OnBusy::Interrupt) {
            // Every earlier run of the thread here, executing or queued, ends with agent_stopped
            // {reason: interrupted}; this run is queued behind them and starts when they have.
            for (const auto& [run_id, who] : run_threads_) {
              if (who.second != s.ctx.thread_id || who.first != s.ctx.user_id) continue;
              // Its stop token is gone once its terminal event is queued (releaseThreadOf).
              if (auto token = runs_.find(run_id); token != runs_.end()) token->second.second->interrupt();
              endParkedLocked(run_id, "interrupted", "a newer message on the thread interrupted the run");
            }
          }
          started = enqueueLocked(s.ctx, s.content, agent_name, true);
        }
        if (started) return;
        // Admitted a moment ago, refused now (the queue filled meanwhile, or shutdown began): the
        // run is stored, so it ends here, in the stream, like any other run.
        log_->warn("run '{}' of user '{}' could not be queued after its message was stored: {}", s.ctx.run_id,
                   s.ctx.user_id, started.error().message);
        const char* code = started.error().code == "not_ready" ? "interrupted" : started.error().code.c_str();
        delivery_.deliver(s.ctx.user_id,
                          delivery::Event{"agent_error",
                                          s.ctx.thread_id,
                                          s.ctx.run_id,
                                          {{"code", code}, {"message", started.error().message}},
                                          std::string(code) == "interrupted" ? "interrupted" : "error",
                                          true},
                          delivery::Delivery::Backpressure::Overflow);
      },
      delivery::Delivery::Backpressure::FailFast);
}

core::Result<std::size_t> AgentWebSocketBridge::interruptUnfinishedRuns(const std::string& node_id,
                                                                        const std::string& message,
                                                                        const std::set<std::string>& parked) {
  auto runs = store_.unfinishedRuns(node_id);
  if (!runs) return runs.error();
  std::size_t ended = 0;
  for (const auto& run : *runs) {
    if (parked.count(run.id) > 0) continue;
    auto r = delivery_.deliver(run.user_id, delivery::Event{"agent_error",
                                                            run.thread_id,
                                                            run.id,
                                                            {{"code", "interrupted"}, {"message", message}},
                                                            "interrupted",
                                                            true});
    if (!r) {
      log_->error("cannot end interrupted run '{}' of user '{}': {}", run.id, run.user_id, r.error().message);
      continue;
    }
    ++ended;
    if (!core::isSystemUser(run.user_id)) {
      std::lock_guard lock(mutex_);
      ++outcomes_[{run.agent, "interrupted"}];
    }
  }
  return ended;
}

core::Result<bool> AgentWebSocketBridge::stopRun(const std::string& user_id, const std::string& run_id) {
  {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it != runs_.end()) {
      if (it->second.first != user_id)
        return core::Error{"run_not_found", "no active run '" + run_id + "' of this user"};
      it->second.second->cancel();
      endParkedLocked(run_id, "stop_agent", "the run was stopped");
      return true;
    }
  }
  if (bus_ == nullptr) return core::Error{"run_not_found", "no active run '" + run_id + "' of this user"};
  // Another node may execute it: the runs in flight say which.
  auto run = store_.findRun(run_id);
  if (!run) return core::Error{"unavailable", "cannot look up the run right now; try again"};
  if (!*run || (*run)->user_id != user_id || (*run)->node_id == options_.node_id) {
    return core::Error{"run_not_found", "no active run '" + run_id + "' of this user"};
  }
  if (!bus_->live()) return core::Error{"unavailable", "the node running it cannot be reached right now; try again"};
  bus_->sendToNode((*run)->node_id, "stop " + run_id);
  return true;
}

std::size_t AgentWebSocketBridge::activeRuns() const {
  std::lock_guard lock(mutex_);
  return runs_.size();
}

std::vector<std::string> AgentWebSocketBridge::agentNames() const {
  std::vector<std::string> out;
  for (const auto& [n, a] : agents_) out.push_back(n);
  return out;
}

std::vector<std::pair<std::string, AgentInfo>> AgentWebSocketBridge::agentInfos() const {
  std::vector<std::pair<std::string, AgentInfo>> out;
  for (const auto& [name, info] : infos_) {
    out.emplace_back(name, info);
    auto& shown = out.back().second;
    if (!shown.all_tools) continue;
    // Named now, not at start: MCP servers that came up since have added theirs.
    shown.tools.clear();
    for (auto& t : tools_.names()) {
      if (ToolRegistry::permits(info.tools, t)) shown.tools.push_back(std::move(t));
    }
  }
  return out;
}

std::optional<AgentWebSocketBridge::Run> AgentWebSocketBridge::takeRunnable() {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    // While stopping, every queued run is taken (it ends at once with agent_stopped).
    if (!stopping_ && running_per_user_[it->ctx.user_id] >= options_.max_running_per_user) continue;
    // Runs of one thread never overlap: the first queued run of a busy thread waits (in order).
    if (!stopping_ && running_threads_.count(it->ctx.thread_id) > 0) continue;
    Run run = std::move(*it);
    queue_.erase(it);
    running_threads_.insert(run.ctx.thread_id);
    executing_.insert(run.ctx.run_id);
    if (--queued_per_user_[run.ctx.user_id] == 0) queued_per_user_.erase(run.ctx.user_id);
    ++running_per_user_[run.ctx.user_id];
    return run;
  }
  return std::nullopt;
}

void AgentWebSocketBridge::workerLoop() {
  for (;;) {
    std::optional<Run> run;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] {
        if (stopping_ && queue_.empty()) return true;
        run = takeRunnable();
        return run.has_value();
      });
      if (!run) return;  // stopping and drained
    }
    execute(*run);
    release(*run);  // when execute() ended without a terminal event (abandoned, or it threw)
  }
}

void AgentWebSocketBridge::releaseThreadOf(Run& run) {
  if (run.thread_released || run.parked) return;
  run.thread_released = true;
  std::lock_guard lock(mutex_);
  releaseThread(run.ctx.thread_id);
  // Nothing left to stop: stop_agent from a client that sees the terminal event reads how it ended.
  runs_.erase(run.ctx.run_id);
}

void AgentWebSocketBridge::release(Run& run) {
  if (run.parked) return;  // its place is the parked run's now
  releaseThreadOf(run);
  bool queued = false;
  {
    std::lock_guard lock(mutex_);
    if (executing_.erase(run.ctx.run_id) == 0) return;  // already released
    runs_.erase(run.ctx.run_id);
    run_threads_.erase(run.ctx.run_id);
    if (--running_per_user_[run.ctx.user_id] == 0) running_per_user_.erase(run.ctx.user_id);
    running_threads_.erase(run.ctx.thread_id);
    queued = !queue_.empty();
  }
  // A queued run of this user or of this thread may be eligible now. With nothing queued there is
  // nothing to wake the idle workers for (each would wake, find nothing and sleep again: three
  // wasted context switches per run with four workers).
  if (queued) cv_.notify_all();
}

void AgentWebSocketBridge::execute(Run& run) {
  auto emitter = createUserEmitter(run.ctx);
  emitter->token_ = run.cancel.get();
  emitter->journal_ = run.journal.get();
  emitter->pace_max_ = std::chrono::milliseconds(options_.pace_max_ms);
  emitter->paced_us_ = &paced_us_;
  emitter->pacing_now_ = &pacing_now_;
  auto t0 = std::chrono::steady_clock::now();
  // Each stretch of execution gets the run's time: a run parked on an approval is not timed while it waits.
  run.cancel->setDeadline(t0 + std::chrono::milliseconds(options_.run_timeout_ms));
  if (run.resumed) {
    // Taken up again: after a restart from here on it is not waiting for its approval anymore.
    if (!run.approval_id.empty()) {
      auto marked = store_.markApprovalResumed(run.approval_id);
      if (!marked) log_->warn("cannot mark approval '{}' taken up: {}", run.approval_id, marked.error().message);
      run.approval_id.clear();
    }
  } else {
    if (recorder_->enabled()) recorder_->record(runRecord(run, "run_started"));
    boost::json::object started{{"agent_name", run.agent->name()}, {"input", run.input}};
    // The client's id of the request (a WebSocket frame's id, AG-UI's runId): lets a client that
    // joins later tie the run to what it sent.
    if (!run.ctx.request_id.empty()) started["request_id"] = run.ctx.request_id;
    emitter->emitLifecycle("agent_started", std::move(started), "running");
    // Admission saw this node's count; the store has every node's. Read before the agent spends more.
    if (options_.daily_token_budget > 0 && !core::isSystemUser(run.ctx.user_id)) {
      const std::string day = core::utcDate(core::nowMs());
      auto used = store_.tokenUsage(run.ctx.user_id, day);
      std::optional<core::Error> over;
      if (used) {
        std::lock_guard lock(mutex_);
        usage_[run.ctx.user_id] = {day, *used};
        over = overBudgetLocked(run.ctx.user_id, day);
      }  // a store that cannot answer does not stop the run: the budget is a limit, not a lock
      if (over) {
        releaseThreadOf(run);
        emitter->emitLifecycle("agent_error", {{"code", over->code}, {"message", over->message}}, "error");
        release(run);
        return finish(run, *emitter, t0, "error", over->code);
      }
    }
  }
  std::string answer;
  std::string error;
  std::string error_code = "internal";
  // The self-check's runs never wait for a person: they prove the path, tools included.
  const auto* approval = core::isSystemUser(run.ctx.user_id) ? nullptr : &options_.approval_required_tools;
  RunContext ctx{*emitter, *run.cancel, tools_, run.journal.get(), approval, nullptr, {}};
  try {
    if (!run.cancel->cancelled()) answer = run.agent->run(RunInput{run.input}, ctx);
  } catch (RunParked& p) {
    if (!run.cancel->cancelled()) return park(run, *emitter, t0, std::move(p), ctx.usage);
  } catch (const AgentError& e) {
    error = e.what();
    error_code = e.code();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown error";
  }
  double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string timeout_message = fmt::format("run exceeded {} ms", options_.run_timeout_ms);
  if (run.cancel->abandoned()) return finish(run, *emitter, t0, "abandoned", "lease lost", &ctx.usage);
  // A stop or a deadline that made the agent give up is reported as such, not as its error.
  if (run.cancel->stopRequested()) {
    std::string reason = "requested";  // stop_agent
    if (run.cancel->interrupted()) {
      reason = "interrupted";  // a newer message on the thread, with on_busy "interrupt"
    } else {
      std::lock_guard lock(mutex_);
      if (stopping_) reason = "shutdown";
    }
    releaseThreadOf(run);
    emitter->emitLifecycle("agent_stopped", {{"reason", reason}}, "stopped");
    release(run);
    return finish(run, *emitter, t0, "stopped", reason, &ctx.usage);
  }
  if (run.cancel->timedOut()) {
    log_->warn("run '{}' of agent '{}' for user '{}' timed out after {} ms", run.ctx.run_id, run.agent->name(),
               run.ctx.user_id, options_.run_timeout_ms);
    releaseThreadOf(run);
    emitter->emitLifecycle("agent_error", {{"code", "timeout"}, {"message", timeout_message}}, "error");
    release(run);
    return finish(run, *emitter, t0, "timeout", "timeout", &ctx.usage);
  }
  if (!error.empty()) {
    log_->error("run '{}' of agent '{}' for user '{}' thread '{}' failed: {}", run.ctx.run_id, run.agent->name(),
                run.ctx.user_id, run.ctx.thread_id, error);
    releaseThreadOf(run);
    emitter->emitLifecycle("agent_error", {{"code", error_code}, {"message", error}}, "error");
    release(run);
    return finish(run, *emitter, t0, "error", error_code, &ctx.usage);
  }
  store::Message m;
  m.id = run.ctx.run_id + "_answer";
  m.thread_id = run.ctx.thread_id;
  m.user_id = run.ctx.user_id;
  m.role = "agent";
  m.content = answer;
  m.run_id = run.ctx.run_id;
  std::string message_id = m.id;
  // Through delivery's group commit, without waiting for it: agent_completed is queued behind the
  // answer, so it commits in the same transaction or a later one and is sent only after both are
  // durable. The worker is free for the next run at once (waiting here capped runs/s at
  // workers / commit time and was the largest part of the latency under load). If the commit
  // fails, the answer and agent_completed fail together and are counted as delivery failures.
  delivery_.storeMessage(
      std::move(m), std::nullopt,
      [log = log_, run_id = run.ctx.run_id](const core::Result<store::Message>& r) {
        if (!r) log->error("cannot store the answer of run '{}': {}", run_id, r.error().message);
      },
      delivery::Delivery::Backpressure::Wait);
  releaseThreadOf(run);
  boost::json::object completed{{"message_id", message_id},
                                {"content", answer},
                                {"execution_time_ms", took},
                                {"finish_reason", ctx.usage.finish_reason}};
  if (ctx.usage.known) {
    completed["usage"] = {{"input_tokens", ctx.usage.input_tokens}, {"output_tokens", ctx.usage.output_tokens}};
  }
  emitter->emitLifecycle("agent_completed", std::move(completed), "completed");
  release(run);
  finish(run, *emitter, t0, "completed", ctx.usage.finish_reason, &ctx.usage);
}

analytics::Record AgentWebSocketBridge::runRecord(const Run& run, const char* kind) {
  analytics::Record r;
  r.kind = kind;
  r.user_id = run.ctx.user_id;
  r.thread_id = run.ctx.thread_id;
  r.run_id = run.ctx.run_id;
  r.agent = run.agent->name();
  return r;
}

void AgentWebSocketBridge::finish(Run& run, const UserEmitter& emitter, std::chrono::steady_clock::time_point t0,
                                  const std::string& outcome, const std::string& reason, const RunUsage* usage) {
  auto took = std::chrono::steady_clock::now() - t0;
  if (!core::isSystemUser(run.ctx.user_id)) {
    durations_.at(run.agent->name())->observe(std::chrono::duration<double>(took).count());
    std::lock_guard lock(mutex_);
    ++outcomes_[{run.agent->name(), outcome}];
  }
  if (usage != nullptr) countTokens(run, *usage);
  const RunUsage& total = run.counted;  // the whole run's, also when it ended without taking up again
  if (!recorder_->enabled()) return;
  analytics::Record r = runRecord(run, "run_finished");
  r.outcome = outcome;
  r.reason = reason;
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  r.count = emitter.toolCalls();
  if (total.known) {
    r.input_tokens = total.input_tokens;
    r.output_tokens = total.output_tokens;
  }
  recorder_->record(std::move(r));
}

void AgentWebSocketBridge::countTokens(Run& run, const RunUsage& total) {
  if (!total.known || core::isSystemUser(run.ctx.user_id)) return;
  // A run stopped while it replayed has less than was counted: nothing is taken back.
  const int64_t input = std::max<int64_t>(0, total.input_tokens - run.counted.input_tokens);
  const int64_t output = std::max<int64_t>(0, total.output_tokens - run.counted.output_tokens);
  run.counted.known = true;
  run.counted.input_tokens += input;
  run.counted.output_tokens += output;
  if (input + output == 0) return;
  // Counted on the day the run ends or parks, in the store (every node's runs add up there).
  const std::string day = core::utcDate(core::nowMs());
  auto sum = store_.addTokenUsage(run.ctx.user_id, day, input + output);
  if (!sum) {
    log_->warn("cannot count the tokens of run '{}' for user '{}': {}", run.ctx.run_id, run.ctx.user_id,
               sum.error().message);
  }
  std::lock_guard lock(mutex_);  // the metric and admission's view change together
  tokens_[{run.agent->name(), "input"}] += static_cast<uint64_t>(input);
  tokens_[{run.agent->name(), "output"}] += static_cast<uint64_t>(output);
  if (sum) usage_[run.ctx.user_id] = {day, *sum};
}

std::map<std::string, monitoring::Histogram::Snapshot> AgentWebSocketBridge::runDurations() const {
  std::map<std::string, monitoring::Histogram::Snapshot> out;
  for (const auto& [agent, h] : durations_) out[agent] = h->snapshot();
  return out;
}

std::vector<std::pair<std::string, std::string>> AgentWebSocketBridge::activeRunThreads() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [run, who] : run_threads_) {
    if (!core::isSystemUser(who.first)) out.push_back(who);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> AgentWebSocketBridge::threadRuns(const std::string& user_id,
                                                                                  const std::string& thread_id) const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [run, who] : run_threads_) {  // run ids are time-ordered: oldest first
    if (who.first == user_id && who.second == thread_id) {
      const char* status = parked_.count(run) > 0      ? "awaiting_approval"
                           : executing_.count(run) > 0 ? "running"
                                                       : "queued";
      out.emplace_back(run, status);
    }
  }
  return out;
}

std::map<std::pair<std::string, std::string>, uint64_t> AgentWebSocketBridge::runOutcomes() const {
  std::lock_guard lock(mutex_);
  return outcomes_;
}

std::map<std::pair<std::string, std::string>, uint64_t> AgentWebSocketBridge::tokensUsed() const {
  std::lock_guard lock(mutex_);
  return tokens_;
}

}  // namespace agentwire::agents
