#include "gateway/run_state.hpp"

#include "store/store.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <map>

namespace agentwire::gateway {

namespace json = boost::json;

bool runEnded(const std::string& status) {
  return status == "completed" || status == "error" || status == "stopped" || status == "interrupted";
}

json::array approvalsJson(const std::vector<store::Approval>& approvals) {
  json::array out;
  for (const auto& a : approvals) {
    boost::system::error_code ec;
    auto args = json::parse(a.args_json, ec);
    out.emplace_back(json::object{{"approval_id", a.id},
                                  {"thread_id", a.thread_id},
                                  {"run_id", a.run_id},
                                  {"tool_call_id", a.tool_call_id},
                                  {"tool_name", a.tool_name},
                                  {"args", ec ? json::value(json::object{}) : std::move(args)},
                                  {"status", a.status},
                                  {"created_at", a.created_ms},
                                  {"expires_at", a.expires_ms}});
  }
  return out;
}

namespace {

// A run's state from its in-flight record (if any) and its retained events, in order.
json::object fold(const std::string& run_id, const std::optional<store::RunRecord>& in_flight,
                  const std::vector<const store::StoredEvent*>& events) {
  std::string thread_id;
  std::string agent;
  std::string status;
  int64_t created = 0;
  std::optional<int64_t> started;
  std::optional<int64_t> ended;
  std::optional<json::object> error;
  if (in_flight) {
    thread_id = in_flight->thread_id;
    agent = in_flight->agent;
    status = in_flight->status;
    created = in_flight->created_ms;
  }
  for (const auto* e : events) {
    const auto& ev = *e;
    thread_id = ev.thread_id;
    boost::system::error_code ec;
    auto data = json::parse(ev.data_json, ec);
    const json::object* d = !ec && data.is_object() ? &data.as_object() : nullptr;
    if (ev.type == "agent_started") {
      started = ev.ts_ms;
      if (agent.empty() && d != nullptr && d->contains("agent_name") && d->at("agent_name").is_string()) {
        agent = std::string(d->at("agent_name").as_string());
      }
      if (!runEnded(status)) status = "running";
    } else if (ev.type == "tool_approval_requested") {
      if (!runEnded(status)) status = "awaiting_approval";
    } else if (ev.type == "tool_approval_resolved") {
      if (!runEnded(status)) status = "running";
    } else if (ev.type == "agent_completed" || ev.type == "agent_error" || ev.type == "agent_stopped") {
      ended = ev.ts_ms;
      status = ev.type == "agent_completed" ? "completed" : ev.type == "agent_stopped" ? "stopped" : "error";
      if (ev.type == "agent_error" && d != nullptr) {
        error = json::object{{"code", d->contains("code") ? d->at("code") : json::value("internal")},
                             {"message", d->contains("message") ? d->at("message") : json::value("")}};
        if (d->contains("code") && d->at("code") == "interrupted") status = "interrupted";
      }
    }
  }
  if (status.empty()) status = "running";  // events, no start retained, no end yet
  if (created == 0) created = started.value_or(events.empty() ? 0 : events.front()->ts_ms);
  json::object o{
      {"run_id", run_id}, {"thread_id", thread_id}, {"agent", agent}, {"status", status}, {"created_at", created}};
  if (started) o["started_at"] = *started;
  if (ended) o["ended_at"] = *ended;
  if (error) o["error"] = std::move(*error);
  return o;
}

// The user's run in flight, if it is one (another user's run is not found).
core::Result<std::optional<store::RunRecord>> inFlight(store::Store& store, const std::string& user_id,
                                                       const std::string& run_id) {
  auto record = store.findRun(run_id);
  if (!record) return record.error();
  if (*record && (*record)->user_id == user_id) return *record;
  return std::optional<store::RunRecord>();
}

}  // namespace

core::Result<std::optional<json::object>> runState(store::Store& store, const std::string& user_id,
                                                   const std::string& run_id) {
  auto in_flight = inFlight(store, user_id, run_id);
  if (!in_flight) return in_flight.error();
  auto events = store.runEvents(user_id, run_id);
  if (!events) return events.error();
  if (!*in_flight && events->empty()) return std::optional<json::object>();
  std::vector<const store::StoredEvent*> refs;
  for (const auto& ev : *events) refs.push_back(&ev);
  return std::optional<json::object>(fold(run_id, *in_flight, refs));
}

core::Result<json::array> threadRunStates(store::Store& store, const std::string& user_id, const std::string& thread_id,
                                          int limit) {
  auto events = store.threadEvents(user_id, thread_id);
  if (!events) return events.error();
  // Runs in the order of their messages (a queued run has no event yet), then any whose message is
  // older than the page but whose events are retained.
  auto messages = store.listMessages(thread_id, limit, 0);
  if (!messages) return messages.error();
  std::vector<std::string> page;
  std::vector<std::string> order;  // older than the page first
  std::map<std::string, std::vector<const store::StoredEvent*>> by_run;
  for (const auto& m : *messages) {
    if (m.role == "user" && !m.run_id.empty() && by_run.try_emplace(m.run_id).second) page.push_back(m.run_id);
  }
  for (const auto& ev : *events) {
    if (ev.run_id.empty()) continue;
    auto [it, fresh] = by_run.try_emplace(ev.run_id);
    if (fresh) order.push_back(ev.run_id);
    it->second.push_back(&ev);
  }
  order.insert(order.end(), page.begin(), page.end());
  json::array out;
  for (const auto& run_id : order) {
    const auto& evs = by_run.at(run_id);
    bool ended = std::any_of(evs.begin(), evs.end(), [](const store::StoredEvent* e) {
      return e->type == "agent_completed" || e->type == "agent_error" || e->type == "agent_stopped";
    });
    std::optional<store::RunRecord> record;
    if (!ended) {  // only then can it be in flight: one lookup per run in progress
      auto r = inFlight(store, user_id, run_id);
      if (!r) return r.error();
      record = *r;
      if (!record && evs.empty()) continue;  // its events are gone (retention), it ended long ago
    }
    out.emplace_back(fold(run_id, record, evs));
  }
  return out;
}

}  // namespace agentwire::gateway
