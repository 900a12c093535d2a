#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace agentwire::agents {

// One line of a process agent's JSON Lines output, understood (see ProcessAgent for the protocol).
struct AgentLine {
  enum class Kind { Event, Final, Failed, ToolCall };
  Kind kind = Kind::Event;
  std::string type;          // Event: agent_thinking, tool_executing, tool_completed, agent_response_chunk
  boost::json::object data;  // Event: the event's fields without "type"
  std::string content;       // Final: the answer
  std::string code;          // Failed: the agent's error code
  std::string message;       // Failed: its message
  std::string tool_call_id;  // ToolCall: the program's id of the call (a new one when it gave none)
  std::string tool_name;     // ToolCall
  boost::json::object args;  // ToolCall
};

// Parses one line (without its newline). nullopt for a blank line; error `agent_protocol` for a
// line that is not a JSON object with a string `type`, a `final` without string content, a
// `tool_call` without a string tool_name or with args that are not an object, or an unknown type.
// Never throws.
core::Result<std::optional<AgentLine>> parseAgentLine(std::string_view line, int line_no);

}  // namespace agentwire::agents
