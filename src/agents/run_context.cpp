#include "agents/agent.hpp"

#include "core/ids.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace agentwire::agents {
namespace json = boost::json;

namespace {

const json::object* recorded(RunJournal* journal, const char* kind) {
  if (journal == nullptr) return nullptr;
  auto entry = journal->next(kind);
  if (!entry) throw AgentError(entry.error().code, entry.error().message);
  return *entry;
}

}  // namespace

bool requiresApproval(const std::set<std::string>& required, const std::string& tool) {
  if (required.count(tool) > 0) return true;
  // "server.*": every tool of an MCP server.
  auto dot = tool.find('.');
  return dot != std::string::npos && required.count(tool.substr(0, dot) + ".*") > 0;
}

core::Result<json::value> RunContext::callTool(const std::string& called, const json::object& args,
                                               std::string call_id) {
  // One name for the tool in events, approvals and the journal, whichever the agent used.
  const std::string name = tools.canonicalName(called);
  if (allowed_tools != nullptr && !ToolRegistry::permits(*allowed_tools, name)) {
    // Told to the model like any tool error (a model may ask for a tool it was not offered).
    if (call_id.empty()) call_id = core::newId("call");
    std::string message = fmt::format("this agent may not call '{}'", name);
    emitter.emit("tool_executing", {{"tool_call_id", call_id}, {"tool_name", name}, {"args", args}});
    emitter.emit("tool_completed", {{"tool_call_id", call_id},
                                    {"tool_name", name},
                                    {"result", json::object{{"error", message}}},
                                    {"duration_ms", 0}});
    return core::Error{"tool_not_allowed", message};
  }
  if (const auto* e = recorded(journal, "tool")) {
    if (e->at("ok").as_bool()) return e->at("value");
    const auto& err = e->at("error").as_object();
    return core::Error{std::string(err.at("code").as_string()), std::string(err.at("message").as_string())};
  }
  core::Result<json::value> result = json::value();
  // A run taken up after an approval reaches the call it waited for here (the record is used up),
  // whether or not the tool still needs approval (the configuration may have changed meanwhile).
  auto decision = journal != nullptr ? journal->takeDecision() : std::nullopt;
  bool needs_approval = approval_required != nullptr && requiresApproval(*approval_required, name);
  if (!decision && journal != nullptr && needs_approval) {
    throw RunParked{call_id.empty() ? core::newId("call") : call_id, name, args};
  }
  if (decision) {
    if (decision->tool_name != name) {
      throw AgentError("interrupted", "the run could not be taken up again: its agent called another tool");
    }
    call_id = decision->tool_call_id;
    if (decision->status == "approved") {
      result = tools.call(emitter, name, args, call_id, &cancel);
    } else {
      bool denied = decision->status == "denied";
      std::string message = denied ? "the user denied this tool call" : "nobody approved this tool call in time";
      if (denied && !decision->reason.empty()) message += ": " + decision->reason;
      result = core::Error{denied ? "approval_denied" : "approval_expired", message};
      emitter.emit("tool_completed", {{"tool_call_id", call_id},
                                      {"tool_name", name},
                                      {"result", json::object{{"error", message}}},
                                      {"duration_ms", 0},
                                      {"approval", decision->status}});
    }
  } else {
    result = tools.call(emitter, name, args, call_id, &cancel);
  }
  if (journal != nullptr) {
    json::object entry{{"kind", "tool"}, {"ok", result.ok()}};
    if (result) {
      entry["value"] = result.value();
    } else {
      entry["error"] = json::object{{"code", result.error().code}, {"message", result.error().message}};
    }
    journal->record(std::move(entry));
  }
  return result;
}

json::value RunContext::step(const std::function<json::value()>& fn) {
  if (const auto* e = recorded(journal, "step")) return e->at("value");
  json::value v = fn();
  if (journal != nullptr) journal->record(json::object{{"kind", "step"}, {"value", v}});
  return v;
}

}  // namespace agentwire::agents
