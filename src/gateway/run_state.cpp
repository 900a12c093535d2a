#include "gateway/run_state.hpp"

#include "store/store.hpp"

#include <boost/json.hpp>

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

core::Result<std::optional<json::object>> runState(store::Store& store, const std::string& user_id,
                                                   const std::string& run_id) {
  auto record = store.findRun(run_id);
  if (!record) return record.error();
  std::optional<store::RunRecord> in_flight;
  if (*record && (*record)->user_id == user_id) in_flight = **record;  // another user's run is not found
  auto events = store.runEvents(user_id, run_id);
  if (!events) return events.error();
  if (!in_flight && events->empty()) return std::optional<json::object>();

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
  for (const auto& ev : *events) {
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
  if (created == 0) created = started.value_or(events->empty() ? 0 : events->front().ts_ms);
  json::object o{
      {"run_id", run_id}, {"thread_id", thread_id}, {"agent", agent}, {"status", status}, {"created_at", created}};
  if (started) o["started_at"] = *started;
  if (ended) o["ended_at"] = *ended;
  if (error) o["error"] = std::move(*error);
  return std::optional<json::object>(std::move(o));
}

}  // namespace agentwire::gateway
