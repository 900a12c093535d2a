#pragma once

#include "agents/user_emitter.hpp"
#include "core/result.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace agentwire::agents {

// A tool an agent can call. `run` gets the call's arguments and returns its result or an error;
// it may be called from several agent threads at once, so it must be thread-safe.
struct Tool {
  std::string name;
  std::string description;
  boost::json::object parameters;  // JSON Schema of the arguments (for LLM tool calling)
  std::function<core::Result<boost::json::value>(const boost::json::object& args)> run;
};

// The tools agents may call, by name. Filled before the bridge starts; read-only afterwards.
//
// Adding a tool in C++:
//   registry.add(Tool{"shout", "Upper-cases text",
//                     {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
//                     [](const boost::json::object& args) -> core::Result<boost::json::value> { ... }});
class ToolRegistry {
 public:
  void add(Tool tool);
  const Tool* find(const std::string& name) const;
  std::vector<std::string> names() const;

  // Calls a tool on behalf of a run: emits tool_executing, runs it, emits tool_completed with the
  // result (or {"error": ...}) and the duration. Returns the result.
  // `call_id` names the call in both events (a new id when empty, e.g. an LLM's own id otherwise).
  core::Result<boost::json::value> call(const UserEmitter& emitter, const std::string& name,
                                        const boost::json::object& args, std::string call_id = {}) const;
  // The tools in OpenAI's Chat Completions `tools` format.
  boost::json::array openAiTools() const;

 private:
  std::map<std::string, Tool> tools_;
};

// word_count {text}, clock {} (UTC time), calculator {op: add|sub|mul|div, a, b}.
void addBuiltinTools(ToolRegistry& registry);

}  // namespace agentwire::agents
