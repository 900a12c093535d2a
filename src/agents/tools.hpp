#pragma once

#include "agents/user_emitter.hpp"
#include "core/result.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <shared_mutex>
#include <string>
#include <vector>

namespace agentwire::agents {

class CancelToken;

// A tool an agent can call. `run` gets the call's arguments and returns its result or an error;
// it may be called from several agent threads at once, so it must be thread-safe.
struct Tool {
  std::string name;
  std::string description;
  boost::json::object parameters;  // JSON Schema of the arguments (for LLM tool calling)
  std::function<core::Result<boost::json::value>(const boost::json::object& args)> run;
  // Instead of `run`, for a tool that can stop when its run is stopped or times out (MCP tools).
  std::function<core::Result<boost::json::value>(const boost::json::object& args, const CancelToken* cancel)>
      run_cancellable = {};
  // The name a model calls it by when `name` is not a valid function name (MCP tools are
  // `server.tool` in events, `server__tool` for the model). Empty: `name`.
  std::string function_name = {};
};

// The tools agents may call, by name. Filled before the bridge starts; tool servers that come up
// later add theirs (a tool, once added, is never replaced or removed). Thread-safe.
//
// Adding a tool in C++:
//   registry.add(Tool{"shout", "Upper-cases text",
//                     {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
//                     [](const boost::json::object& args) -> core::Result<boost::json::value> { ... }});
class ToolRegistry {
 public:
  // False (nothing changed) when a tool of that name or function name exists.
  bool add(Tool tool);
  // By name or by function name.
  const Tool* find(const std::string& name) const;
  // The name events use for a tool called by `name` or its function name; `name` when unknown.
  std::string canonicalName(const std::string& name) const;
  std::vector<std::string> names() const;

  // Calls a tool on behalf of a run: emits tool_executing, runs it, emits tool_completed with the
  // result (or {"error": ...}) and the duration. Returns the result.
  // `call_id` names the call in both events (a new id when empty, e.g. an LLM's own id otherwise).
  core::Result<boost::json::value> call(const UserEmitter& emitter, const std::string& name,
                                        const boost::json::object& args, std::string call_id = {},
                                        const CancelToken* cancel = nullptr) const;
  // A tool as an agent is offered it: its name (as in events), the name a model calls it by, what it
  // does, its arguments' schema.
  struct ModelTool {
    std::string name;
    std::string function_name;
    std::string description;
    boost::json::object parameters;
  };
  // The tools an agent may call: all when `allow` is empty, else those named in it (a tool name, or
  // "server.*" for every tool of an MCP server).
  std::vector<ModelTool> modelTools(const std::vector<std::string>& allow = {}) const;
  static bool permits(const std::vector<std::string>& allow, const std::string& name);

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, Tool> tools_;  // nodes never move: find()'s pointers stay valid
  std::map<std::string, std::string> by_function_;
};

// word_count {text}, clock {} (UTC time), calculator {op: add|sub|mul|div, a, b}.
void addBuiltinTools(ToolRegistry& registry);

}  // namespace agentwire::agents
