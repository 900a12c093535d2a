#include "mcp/session.hpp"

#include "agents/agent.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/json.hpp>

#include <algorithm>

namespace agentwire::mcp {
namespace json = boost::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);  // how often a waiting call looks at its run

std::string errorText(const json::value& error) {
  if (!error.is_object()) return json::serialize(error);
  const auto& e = error.as_object();
  std::string msg = e.contains("message") && e.at("message").is_string() ? std::string(e.at("message").as_string())
                                                                         : json::serialize(error);
  if (e.contains("code")) msg += fmt::format(" (JSON-RPC error {})", json::serialize(e.at("code")));
  return msg;
}

}  // namespace

const std::vector<std::string>& supportedProtocolVersions() {
  static const std::vector<std::string> versions{"2025-06-18", "2025-03-26", "2024-11-05"};
  return versions;
}

Session::Session(Send send) : send_(std::move(send)) {}

void Session::setNotificationHandler(std::function<void(const std::string&, const json::object&)> fn) {
  std::lock_guard lock(mutex_);
  on_notification_ = std::move(fn);
}

std::string Session::protocolVersion() const {
  std::lock_guard lock(mutex_);
  return protocol_version_;
}

void Session::onLine(const std::string& line) {
  boost::system::error_code ec;
  auto v = json::parse(line, ec);
  if (ec || !v.is_object()) return;  // not JSON-RPC (a server printing to stdout): ignored
  auto& msg = v.as_object();
  const auto* method = msg.if_contains("method");
  const auto* id = msg.if_contains("id");
  if (method != nullptr && method->is_string()) {
    json::object params =
        msg.contains("params") && msg.at("params").is_object() ? msg.at("params").as_object() : json::object{};
    if (id == nullptr) {
      std::function<void(const std::string&, const json::object&)> fn;
      {
        std::lock_guard lock(mutex_);
        fn = on_notification_;
      }
      if (fn) fn(std::string(method->as_string()), params);
      return;
    }
    // A request from the server.
    json::object answer{{"jsonrpc", "2.0"}, {"id", *id}};
    if (method->as_string() == "ping") {
      answer["result"] = json::object{};
    } else {
      answer["error"] = json::object{{"code", -32601}, {"message", "method not supported by this client"}};
    }
    send_(json::serialize(answer));
    return;
  }
  if (id == nullptr || !id->is_int64()) return;  // not one of ours (ids are integers)
  core::Result<json::value> outcome = json::value();
  if (const auto* err = msg.if_contains("error")) {
    outcome = core::Error{"tool_error", errorText(*err)};
  } else {
    outcome = msg.contains("result") ? msg.at("result") : json::value(json::object{});
  }
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id->as_int64());
    if (it == pending_.end()) return;  // answered after its timeout or cancellation
    it->second = std::move(outcome);
  }
  cv_.notify_all();
}

void Session::onClosed(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    closed_ = why;
  }
  cv_.notify_all();
}

core::Result<json::value> Session::request(const std::string& method, json::object params,
                                           std::chrono::milliseconds timeout, const agents::CancelToken* cancel) {
  int64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return core::Error{"unavailable", "the tool server is gone: " + *closed_};
    id = next_id_++;
    pending_[id];
  }
  json::object msg{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
  if (!send_(json::serialize(msg))) {
    std::lock_guard lock(mutex_);
    pending_.erase(id);
    return core::Error{"unavailable", "the tool server does not read its input (it exited)"};
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    auto& slot = pending_[id];
    if (slot) {
      auto out = std::move(*slot);
      pending_.erase(id);
      return out;
    }
    if (closed_) {
      pending_.erase(id);
      return core::Error{"unavailable", "the tool server ended during the call: " + *closed_};
    }
    bool cancelled = cancel != nullptr && cancel->cancelled();
    bool late = std::chrono::steady_clock::now() >= deadline;
    if (cancelled || late) {
      pending_.erase(id);
      lock.unlock();
      std::string reason = late ? "timed out" : "the run was stopped";
      notify("notifications/cancelled", {{"requestId", id}, {"reason", reason}});
      if (late) return core::Error{"timeout", fmt::format("{} got no answer within {} ms", method, timeout.count())};
      return core::Error{"cancelled", method + " was cancelled: the run was stopped"};
    }
    cv_.wait_for(lock, std::min<std::chrono::nanoseconds>(kPoll, deadline - std::chrono::steady_clock::now()));
  }
}

bool Session::notify(const std::string& method, json::object params) {
  json::object msg{{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.empty()) msg["params"] = std::move(params);
  return send_(json::serialize(msg));
}

core::Result<json::object> Session::initialize(std::chrono::milliseconds timeout) {
  const auto& versions = supportedProtocolVersions();
  auto r = request("initialize",
                   {{"protocolVersion", versions.front()},
                    {"capabilities", json::object{}},
                    {"clientInfo", json::object{{"name", "agentwire"}, {"version", "0.1"}}}},
                   timeout);
  if (!r) return r.error();
  if (!r->is_object()) return core::Error{"tool_error", "initialize: the answer is not an object"};
  const auto& o = r->as_object();
  const auto* v = o.if_contains("protocolVersion");
  std::string version = v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
  if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
    return core::Error{"tool_error", fmt::format("the server speaks MCP version '{}'; this client speaks {}", version,
                                                 fmt::join(versions, ", "))};
  }
  {
    std::lock_guard lock(mutex_);
    protocol_version_ = version;
  }
  notify("notifications/initialized", {});
  return o;
}

core::Result<std::vector<ToolInfo>> Session::listTools(std::chrono::milliseconds timeout) {
  std::vector<ToolInfo> out;
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    json::object params;
    if (!cursor.empty()) params["cursor"] = cursor;
    auto r = request("tools/list", std::move(params), timeout);
    if (!r) return r.error();
    const auto* tools = r->is_object() ? r->as_object().if_contains("tools") : nullptr;
    if (tools == nullptr || !tools->is_array()) return core::Error{"tool_error", "tools/list: no tools array"};
    for (const auto& t : tools->as_array()) {
      if (!t.is_object() || !t.as_object().contains("name") || !t.at("name").is_string()) continue;
      ToolInfo info;
      info.name = std::string(t.at("name").as_string());
      if (const auto* d = t.as_object().if_contains("description"); d != nullptr && d->is_string()) {
        info.description = std::string(d->as_string());
      }
      if (const auto* s = t.as_object().if_contains("inputSchema"); s != nullptr && s->is_object()) {
        info.input_schema = s->as_object();
        info.input_schema.erase("$schema");  // OpenAI's function parameters want the schema itself
      } else {
        info.input_schema = {{"type", "object"}};
      }
      out.push_back(std::move(info));
    }
    const auto* next = r->as_object().if_contains("nextCursor");
    if (next == nullptr || !next->is_string() || next->as_string().empty()) return out;
    cursor = std::string(next->as_string());
  }
  return out;
}

core::Result<json::value> Session::callTool(const std::string& name, const json::object& args,
                                            std::chrono::milliseconds timeout, const agents::CancelToken* cancel) {
  auto r = request("tools/call", {{"name", name}, {"arguments", args}}, timeout, cancel);
  if (!r) return r.error();
  if (!r->is_object()) return core::Error{"tool_error", "tools/call: the answer is not an object"};
  auto summary = toolResultJson(r->as_object());
  const auto* is_error = r->as_object().if_contains("isError");
  if (is_error != nullptr && is_error->is_bool() && is_error->as_bool()) {
    std::string text = summary.contains("text") ? std::string(summary.at("text").as_string()) : "the tool failed";
    return core::Error{"tool_error", text};
  }
  return json::value(std::move(summary));
}

json::object toolResultJson(const json::object& result) {
  json::object out;
  std::string text;
  json::array other;
  if (const auto* content = result.if_contains("content"); content != nullptr && content->is_array()) {
    for (const auto& c : content->as_array()) {
      if (!c.is_object()) continue;
      const auto& o = c.as_object();
      std::string type = o.contains("type") && o.at("type").is_string() ? std::string(o.at("type").as_string()) : "";
      if (type == "text" && o.contains("text") && o.at("text").is_string()) {
        if (!text.empty()) text += "\n";
        text += o.at("text").as_string();
      } else if (type == "image" || type == "audio") {
        std::string mime = o.contains("mimeType") && o.at("mimeType").is_string()
                               ? std::string(o.at("mimeType").as_string())
                               : std::string("unknown type");
        std::size_t bytes =
            o.contains("data") && o.at("data").is_string() ? o.at("data").as_string().size() * 3 / 4 : 0;
        other.push_back(json::object{{"type", type}, {"mime_type", mime}, {"bytes", bytes}});
      } else if (type == "resource" || type == "resource_link") {
        const json::value* res = o.if_contains("resource");
        const json::object& r = res != nullptr && res->is_object() ? res->as_object() : o;
        std::string uri = r.contains("uri") && r.at("uri").is_string() ? std::string(r.at("uri").as_string()) : "";
        other.push_back(json::object{{"type", type}, {"uri", uri}});
      }
    }
  }
  out["text"] = text;
  if (const auto* s = result.if_contains("structuredContent"); s != nullptr && !s->is_null()) out["structured"] = *s;
  if (!other.empty()) out["other"] = std::move(other);
  return out;
}

}  // namespace agentwire::mcp
