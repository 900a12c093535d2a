#include "mcp/mcp_server.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace agentwire::mcp {
namespace json = boost::json;

McpServer::McpServer(Options options, agents::ToolRegistry& registry, std::vector<std::string> dependencies)
    : Component("mcp_" + options.name, std::move(dependencies), lifecycle::Criticality::Optional),
      options_(std::move(options)),
      registry_(registry),
      log_(core::logger("mcp." + options_.name)) {}

McpServer::~McpServer() {
  stop();
}

bool McpServer::connect(std::string& error) {
  // The session writes through a weak reference: a call still sending when the process is
  // replaced finds it gone (false) instead of a destroyed object.
  auto target = std::make_shared<std::weak_ptr<StdioProcess>>();
  auto session = std::make_shared<Session>([target](const std::string& line) {
    auto p = target->lock();
    return p != nullptr && p->writeLine(line);
  });
  std::weak_ptr<Session> weak = session;
  auto process = std::make_shared<StdioProcess>(
      options_.process, StdioProcess::Callbacks{[weak](std::string line) {
                                                  if (auto s = weak.lock()) s->onLine(line);
                                                },
                                                [this](const std::string& line) { log_->debug("{}", line); },
                                                [this, weak](const std::string& how) {
                                                  if (auto s = weak.lock()) s->onClosed(how);
                                                  {
                                                    std::lock_guard lock(mutex_);
                                                    exited_ = true;
                                                    last_error_ = "the server exited (" + how + ")";
                                                  }
                                                  log_->warn("MCP server '{}' exited ({}); restarting it",
                                                             options_.name, how);
                                                  cv_.notify_all();
                                                }});
  *target = process;
  {
    std::lock_guard lock(mutex_);
    exited_ = false;
  }
  if (auto started = process->start(); !started) {
    error = started.error().message;
    return false;
  }
  auto fail = [&](const std::string& what) {
    error = what;
    process->stop();
    return false;
  };
  auto hello = session->initialize(options_.start_timeout);
  if (!hello) return fail("initialize: " + hello.error().message);
  auto tools = session->listTools(options_.start_timeout);
  if (!tools) return fail("tools/list: " + tools.error().message);
  std::size_t added = 0;
  for (const auto& t : *tools) {
    if (!options_.allow.empty() && options_.allow.count(t.name) == 0) continue;
    {
      std::lock_guard lock(mutex_);
      if (!tools_.insert(t.name).second) continue;  // known from an earlier start
    }
    agents::Tool tool;
    tool.name = options_.name + "." + t.name;
    tool.function_name = options_.name + "__" + t.name;
    tool.description = t.description;
    tool.parameters = t.input_schema;
    tool.run_cancellable = [this, name = t.name](const json::object& args, const agents::CancelToken* cancel) {
      return call(name, args, cancel);
    };
    registry_.add(std::move(tool));
    ++added;
  }
  std::string version = session->protocolVersion();
  {
    std::lock_guard lock(mutex_);
    session_ = session;
    process_ = std::move(process);
    protocol_version_ = version;
    last_error_.clear();
  }
  log_->info("MCP server '{}' ready (MCP {}): {} tools, {} new", options_.name, version, tools->size(), added);
  return true;
}

void McpServer::start() {
  std::string error;
  if (!connect(error)) {
    {
      std::lock_guard lock(mutex_);
      exited_ = true;
      last_error_ = error;
    }
    log_->warn("MCP server '{}' did not start: {}; its tools are unavailable until it does (retried)", options_.name,
               error);
    setHealth(lifecycle::HealthState::Degraded, error);
  } else {
    setHealth(lifecycle::HealthState::Healthy);
  }
  supervisor_ = std::thread([this] {
    core::setThreadName("aw-mcp");
    supervise();
  });
}

void McpServer::supervise() {
  auto backoff = options_.restart_initial;
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || exited_; });
    if (stopping_) return;
    setHealth(lifecycle::HealthState::Degraded, last_error_);
    auto gone = std::move(process_);
    session_.reset();
    lock.unlock();
    if (gone) gone->stop();  // joins its reader (never this thread)
    gone.reset();
    lock.lock();
    if (cv_.wait_for(lock, backoff, [this] { return stopping_; })) return;
    lock.unlock();
    std::string error;
    ++restarts_;
    bool ok = connect(error);
    lock.lock();
    if (ok) {
      backoff = options_.restart_initial;
      setHealth(lifecycle::HealthState::Healthy);
    } else {
      exited_ = true;
      last_error_ = error;
      backoff = std::min(options_.restart_max, backoff * 2);
      log_->warn("MCP server '{}' did not start again: {}; next try in {} ms", options_.name, error, backoff.count());
    }
  }
}

void McpServer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  std::shared_ptr<StdioProcess> process;
  {
    std::lock_guard lock(mutex_);
    process = std::move(process_);
    session_.reset();
  }
  if (process) process->stop();
}

core::Result<json::value> McpServer::call(const std::string& tool, const json::object& args,
                                          const agents::CancelToken* cancel) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    if (!exited_) session = session_;
  }
  ++calls_;
  if (!session) {
    ++errors_;
    return core::Error{"unavailable", fmt::format("the MCP server '{}' is not running (restarting)", options_.name)};
  }
  auto r = session->callTool(tool, args, options_.call_timeout, cancel);
  if (!r) ++errors_;
  return r;
}

json::object McpServer::details() const {
  std::lock_guard lock(mutex_);
  json::object d{{"up", session_ != nullptr && !exited_},
                 {"tools", tools_.size()},
                 {"calls", calls_.load()},
                 {"errors", errors_.load()},
                 {"restarts", restarts_.load()}};
  if (!protocol_version_.empty()) d["protocol_version"] = protocol_version_;
  if (!last_error_.empty()) d["last_error"] = last_error_;
  return d;
}

}  // namespace agentwire::mcp
