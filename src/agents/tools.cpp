#include "agents/tools.hpp"

#include "core/ids.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <chrono>
#include <ctime>
#include <sstream>

namespace agentwire::agents {
namespace json = boost::json;

bool ToolRegistry::add(Tool tool) {
  std::unique_lock lock(mutex_);
  std::string fn = tool.function_name.empty() ? tool.name : tool.function_name;
  if (tools_.count(tool.name) > 0 || by_function_.count(fn) > 0 || tools_.count(fn) > 0) return false;
  by_function_[fn] = tool.name;
  auto name = tool.name;
  tools_.emplace(std::move(name), std::move(tool));
  return true;
}

const Tool* ToolRegistry::find(const std::string& name) const {
  std::shared_lock lock(mutex_);
  auto it = tools_.find(name);
  if (it != tools_.end()) return &it->second;
  auto f = by_function_.find(name);
  if (f == by_function_.end()) return nullptr;
  it = tools_.find(f->second);
  return it == tools_.end() ? nullptr : &it->second;
}

std::string ToolRegistry::canonicalName(const std::string& name) const {
  const Tool* t = find(name);
  return t != nullptr ? t->name : name;
}

std::vector<std::string> ToolRegistry::names() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [n, t] : tools_) out.push_back(n);
  return out;
}

bool ToolRegistry::permits(const std::vector<std::string>& allow, const std::string& name) {
  if (allow.empty()) return true;
  for (const auto& a : allow) {
    if (a == name) return true;
    if (a.size() > 2 && a.compare(a.size() - 2, 2, ".*") == 0 &&
        name.compare(0, a.size() - 1, a, 0, a.size() - 1) == 0) {
      return true;
    }
  }
  return false;
}

std::vector<ToolRegistry::ModelTool> ToolRegistry::modelTools(const std::vector<std::string>& allow) const {
  std::shared_lock lock(mutex_);
  std::vector<ModelTool> out;
  for (const auto& [name, t] : tools_) {
    if (!permits(allow, name)) continue;
    out.push_back(ModelTool{name, t.function_name.empty() ? name : t.function_name, t.description, t.parameters});
  }
  return out;
}

core::Result<json::value> ToolRegistry::call(const UserEmitter& emitter, const std::string& called,
                                             const json::object& args, std::string call_id,
                                             const CancelToken* cancel) const {
  if (call_id.empty()) call_id = core::newId("call");
  const Tool* tool = find(called);
  const std::string& name = tool != nullptr ? tool->name : called;
  emitter.emit("tool_executing", {{"tool_call_id", call_id}, {"tool_name", name}, {"args", args}});
  auto t0 = std::chrono::steady_clock::now();
  core::Result<json::value> result =
      tool == nullptr ? core::Result<json::value>(core::Error{"unknown_tool", fmt::format("no tool named '{}'", name)})
      : tool->run_cancellable ? tool->run_cancellable(args, cancel)
                              : tool->run(args);
  double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  json::value shown = result ? result.value() : json::value(json::object{{"error", result.error().message}});
  emitter.emit("tool_completed",
               {{"tool_call_id", call_id}, {"tool_name", name}, {"result", shown}, {"duration_ms", took}});
  return result;
}

namespace {

double number(const json::object& args, const char* key, bool& ok) {
  auto* v = args.if_contains(key);
  if (v == nullptr) {
    ok = false;
    return 0;
  }
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  ok = false;
  return 0;
}

}  // namespace

void addBuiltinTools(ToolRegistry& r) {
  r.add(Tool{"word_count",
             "Counts the words of a text",
             {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}, {"required", {"text"}}},
             [](const json::object& args) -> core::Result<json::value> {
               auto* t = args.if_contains("text");
               if (t == nullptr || !t->is_string()) return core::Error{"invalid_args", "text (a string) is required"};
               std::istringstream in(std::string(t->as_string()));
               int64_t n = 0;
               std::string w;
               while (in >> w) ++n;
               return json::value(json::object{{"words", n}});
             }});
  r.add(Tool{"clock",
             "The current UTC time",
             {{"type", "object"}, {"properties", json::object{}}},
             [](const json::object&) -> core::Result<json::value> {
               std::time_t now = std::time(nullptr);
               std::tm tm{};
               gmtime_r(&now, &tm);
               char buf[32];
               std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
               return json::value(json::object{{"utc", buf}, {"unix_ms", core::nowMs()}});
             }});
  r.add(Tool{"calculator",
             "Adds, subtracts, multiplies or divides two numbers",
             {{"type", "object"},
              {"properties",
               {{"op", {{"type", "string"}, {"enum", {"add", "sub", "mul", "div"}}}},
                {"a", {{"type", "number"}}},
                {"b", {{"type", "number"}}}}},
              {"required", {"op", "a", "b"}}},
             [](const json::object& args) -> core::Result<json::value> {
               bool ok = true;
               double a = number(args, "a", ok);
               double b = number(args, "b", ok);
               auto* op = args.if_contains("op");
               if (!ok || op == nullptr || !op->is_string()) {
                 return core::Error{"invalid_args", "op, a and b are required"};
               }
               auto o = op->as_string();
               if (o == "add") return json::value(json::object{{"value", a + b}});
               if (o == "sub") return json::value(json::object{{"value", a - b}});
               if (o == "mul") return json::value(json::object{{"value", a * b}});
               if (o == "div") {
                 if (b == 0) return core::Error{"invalid_args", "division by zero"};
                 return json::value(json::object{{"value", a / b}});
               }
               return core::Error{"invalid_args", "op must be add, sub, mul or div"};
             }});
}

}  // namespace agentwire::agents
