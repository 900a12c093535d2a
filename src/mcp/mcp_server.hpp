#pragma once

#include "agents/tools.hpp"
#include "lifecycle/component.hpp"
#include "mcp/http_transport.hpp"
#include "mcp/session.hpp"
#include "mcp/stdio_process.hpp"
#include "monitoring/histogram.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::mcp {

// One MCP tool server (stdio or Streamable HTTP transport), as an optional component started before the agent
// bridge. start() runs the server, does the handshake and registers its tools as
// `{name}.{tool}` (`{name}__{tool}` for a model, whose function names cannot hold dots); it never
// fails the startup: a server that cannot start leaves the component degraded and is tried again
// with backoff, like one that exits later (its tools then answer `unavailable` until it is back,
// and tools it lists after coming back join the registry).
class McpServer final : public lifecycle::Component {
 public:
  struct Options {
    std::string name;
    ProcessSpec process;  // the stdio transport, or, when http.url is set, Streamable HTTP
    HttpSpec http;
    std::set<std::string> allow;  // the server's tools to offer; empty = all
    std::chrono::milliseconds call_timeout{30000};
    std::chrono::milliseconds start_timeout{10000};
    std::chrono::milliseconds restart_initial{250};
    std::chrono::milliseconds restart_max{30000};
  };
  McpServer(Options options, agents::ToolRegistry& registry, std::vector<std::string> dependencies);
  ~McpServer() override;

  void start() override;
  void stop() override;
  boost::json::object details() const override;

  core::Result<boost::json::value> call(const std::string& tool, const boost::json::object& args,
                                        const agents::CancelToken* cancel);

  const std::string& serverName() const { return options_.name; }
  bool up() const;
  // Per tool (the server's own name): calls, failed calls (a tool error, a timeout, the server
  // gone), and call durations in seconds.
  struct ToolStats {
    uint64_t calls = 0;
    uint64_t errors = 0;
    monitoring::Histogram::Snapshot durations;
  };
  std::map<std::string, ToolStats> toolStats() const;

 private:
  bool connect(std::string& error);
  void supervise();
  // Registers the listed tools that the allow-list lets through and makes them the ones offered
  // (a tool the server stopped listing answers tool_gone). Returns how many were new.
  std::size_t offer(const std::vector<ToolInfo>& tools);
  void refreshTools();

  Options options_;
  agents::ToolRegistry& registry_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::shared_ptr<Session> session_;
  std::shared_ptr<Transport> process_;
  bool exited_ = true;
  bool stopping_ = false;
  std::string last_error_;
  std::string protocol_version_;
  std::set<std::string> tools_;   // registered, by the server's own names
  std::set<std::string> listed_;  // in the server's latest tools/list
  bool refresh_ = false;          // notifications/tools/list_changed came: list them again
  struct PerTool {
    uint64_t calls = 0;
    uint64_t errors = 0;
    std::unique_ptr<monitoring::Histogram> durations;
  };
  std::map<std::string, PerTool> per_tool_;  // under mutex_
  std::thread supervisor_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> restarts_{0};
};

}  // namespace agentwire::mcp
