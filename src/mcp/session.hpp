#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace agentwire::agents {
class CancelToken;
}

namespace agentwire::mcp {

// A tool as the server lists it.
struct ToolInfo {
  std::string name;
  std::string description;
  boost::json::object input_schema;
};

// The MCP versions this client speaks, newest first; it asks for the first.
const std::vector<std::string>& supportedProtocolVersions();

// One JSON-RPC 2.0 session with an MCP server over a line transport (stdio: one message per line).
// Feed it every line the server writes (onLine) and tell it when the server is gone (onClosed);
// it sends through `send`. Requests wait on their own thread for the answer, a timeout or the
// run's cancellation (then `notifications/cancelled` tells the server to stop). Requests from the
// server are answered: `ping` with {}, anything else (sampling, elicitation, roots) with "method
// not found", since this client offers none of those capabilities. Thread-safe.
class Session {
 public:
  using Send = std::function<bool(const std::string& line)>;
  explicit Session(Send send);

  void onLine(const std::string& line);
  void onClosed(const std::string& why);

  // The handshake: initialize (version negotiation), then notifications/initialized. Returns the
  // server's serverInfo and capabilities.
  core::Result<boost::json::object> initialize(std::chrono::milliseconds timeout);
  core::Result<std::vector<ToolInfo>> listTools(std::chrono::milliseconds timeout);
  // tools/call. A result with isError, or a JSON-RPC error, is an Error (`tool_error`); a result
  // is summarised for the agent and the events by toolResultJson().
  core::Result<boost::json::value> callTool(const std::string& name, const boost::json::object& args,
                                            std::chrono::milliseconds timeout, const agents::CancelToken* cancel);

  core::Result<boost::json::value> request(const std::string& method, boost::json::object params,
                                           std::chrono::milliseconds timeout,
                                           const agents::CancelToken* cancel = nullptr);
  bool notify(const std::string& method, boost::json::object params);

  // Notifications from the server (e.g. notifications/tools/list_changed), on the reading thread.
  void setNotificationHandler(std::function<void(const std::string& method, const boost::json::object& params)> fn);
  std::string protocolVersion() const;

 private:
  Send send_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  int64_t next_id_ = 1;
  std::map<int64_t, std::optional<core::Result<boost::json::value>>> pending_;
  std::optional<std::string> closed_;
  std::string protocol_version_;
  std::function<void(const std::string&, const boost::json::object&)> on_notification_;
};

// What an agent and the events see of a tools/call result: {"text": the text contents joined by
// newlines, "structured"?: structuredContent, "other"?: [a note per image, audio or resource]}.
boost::json::object toolResultJson(const boost::json::object& result);

}  // namespace agentwire::mcp
