#include "agents/agent_lines.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace agentwire::agents {

core::Result<std::optional<AgentLine>> parseAgentLine(std::string_view line, int line_no) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return std::optional<AgentLine>();
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  if (ec || !v.is_object() || !v.as_object().contains("type") || !v.at("type").is_string()) {
    return core::Error{"agent_protocol", fmt::format("line {} is not a JSON event: {}", line_no, line.substr(0, 200))};
  }
  AgentLine out;
  auto o = std::move(v.as_object());
  std::string type(o.at("type").as_string());
  o.erase("type");
  if (type == "final") {
    auto* c = o.if_contains("content");
    if (c == nullptr || !c->is_string()) return core::Error{"agent_protocol", "final has no string 'content'"};
    out.kind = AgentLine::Kind::Final;
    out.content = std::string(c->as_string());
    return std::optional<AgentLine>(std::move(out));
  }
  if (type == "error") {
    auto* code = o.if_contains("code");
    auto* msg = o.if_contains("message");
    out.kind = AgentLine::Kind::Failed;
    out.code = code != nullptr && code->is_string() ? std::string(code->as_string()) : "agent_failed";
    out.message = msg != nullptr && msg->is_string() ? std::string(msg->as_string()) : "agent reported an error";
    return std::optional<AgentLine>(std::move(out));
  }
  if (type == "tool_call") {
    auto* name = o.if_contains("tool_name");
    auto* args = o.if_contains("args");
    auto* id = o.if_contains("tool_call_id");
    if (name == nullptr || !name->is_string() || name->as_string().empty()) {
      return core::Error{"agent_protocol", fmt::format("line {}: tool_call has no string 'tool_name'", line_no)};
    }
    if (args != nullptr && !args->is_object() && !args->is_null()) {
      return core::Error{"agent_protocol", fmt::format("line {}: tool_call 'args' must be an object", line_no)};
    }
    if (id != nullptr && !id->is_string()) {
      return core::Error{"agent_protocol", fmt::format("line {}: tool_call 'tool_call_id' must be a string", line_no)};
    }
    out.kind = AgentLine::Kind::ToolCall;
    out.tool_name = std::string(name->as_string());
    if (args != nullptr && args->is_object()) out.args = args->as_object();
    if (id != nullptr) out.tool_call_id = std::string(id->as_string());
    return std::optional<AgentLine>(std::move(out));
  }
  if (type != "agent_thinking" && type != "tool_executing" && type != "tool_completed" &&
      type != "agent_response_chunk") {
    return core::Error{"agent_protocol", fmt::format("line {}: unknown event type '{}'", line_no, type)};
  }
  out.type = std::move(type);
  out.data = std::move(o);
  return std::optional<AgentLine>(std::move(out));
}

}  // namespace agentwire::agents
