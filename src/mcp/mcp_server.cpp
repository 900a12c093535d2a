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

std::size_t McpServer::offer(const std::vector<ToolInfo>& tools) {
  std::size_t added = 0;
  std::set<std::string> listed;
  for (const auto& t : tools) {
    if (!options_.allow.empty() && options_.allow.count(t.name) == 0) continue;
    listed.insert(t.name);
    {
      std::lock_guard lock(mutex_);
      if (!tools_.insert(t.name).second) continue;  // known from an earlier list
      per_tool_[t.name].durations = std::make_unique<monitoring::Histogram>(monitoring::Histogram::durationBounds());
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
  std::lock_guard lock(mutex_);
  listed_ = std::move(listed);
  return added;
}

void McpServer::refreshTools() {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    session = session_;
  }
  if (!session) return;  // a restart lists them anyway
  auto tools = session->listTools(options_.start_timeout);
  if (!tools) {
    log_->warn("MCP server '{}' changed its tools, but listing them failed: {}", options_.name, tools.error().message);
    return;
  }
  std::size_t added = offer(*tools);
  log_->info("MCP server '{}' changed its tools: {} listed, {} new", options_.name, tools->size(), added);
}

bool McpServer::connect(std::string& error) {
  // The session writes through a weak reference: a call still sending when the process is
  // replaced finds it gone (false) instead of a destroyed object.
  auto target = std::make_shared<std::weak_ptr<Transport>>();
  auto session = std::make_shared<Session>([target](const std::string& line) {
    auto p = target->lock();
    return p != nullptr && p->writeLine(line);
  });
  std::weak_ptr<Session> weak = session;
  StdioProcess::Callbacks callbacks{[weak](std::string line) {
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
                                      log_->warn("MCP server '{}' exited ({}); restarting it", options_.name, how);
                                      cv_.notify_all();
                                    }};
  std::shared_ptr<Transport> process;
  if (!options_.http.url.empty()) {
    process = std::make_shared<HttpTransport>(options_.http, std::move(callbacks));
  } else {
    process = std::make_shared<StdioProcess>(options_.process, std::move(callbacks));
  }
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
  // A server may change its tools while it runs (tools it registers once it knows the client, or
  // plugins): it says so, and the supervisor lists them again (not this reading thread, which must
  // stay free to read the answer). Set before the handshake: a server may add tools, and notify, as
  // soon as it gets notifications/initialized.
  session->setNotificationHandler([this](const std::string& method, const json::object&) {
    if (method != "notifications/tools/list_changed") return;
    {
      std::lock_guard lock(mutex_);
      refresh_ = true;
    }
    cv_.notify_all();
  });
  auto hello = session->initialize(options_.start_timeout);
  if (!hello) return fail("initialize: " + hello.error().message);
  auto tools = session->listTools(options_.start_timeout);
  if (!tools) return fail("tools/list: " + tools.error().message);
  std::size_t added = offer(*tools);
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
    cv_.wait(lock, [this] { return stopping_ || exited_ || refresh_; });
    if (stopping_) return;
    if (refresh_ && !exited_) {
      refresh_ = false;
      lock.unlock();
      refreshTools();
      lock.lock();
      continue;
    }
    refresh_ = false;  // a restart lists them anyway
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
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    session = session_;
  }
  // Whatever waits for the server's answer ends now (a tools/list after list_changed on the
  // supervisor, a call of a run): shutdown does not wait out their timeouts.
  if (session) session->onClosed("agentwire is stopping");
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  std::shared_ptr<Transport> process;
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
  bool listed = false;
  {
    std::lock_guard lock(mutex_);
    if (!exited_) session = session_;
    listed = listed_.count(tool) > 0;
  }
  ++calls_;
  auto t0 = std::chrono::steady_clock::now();
  core::Result<json::value> r = json::value();
  if (!session) {
    r = core::Error{"unavailable", fmt::format("the MCP server '{}' is not running (restarting)", options_.name)};
  } else if (!listed) {
    // Registered earlier, no longer in the server's list (tools, once registered, stay in the registry).
    r = core::Error{"tool_gone", fmt::format("the MCP server '{}' no longer offers '{}'", options_.name, tool)};
  } else {
    r = session->callTool(tool, args, options_.call_timeout, cancel);
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r) ++errors_;
  std::lock_guard lock(mutex_);
  auto& stats = per_tool_[tool];
  ++stats.calls;
  if (!r) ++stats.errors;
  if (stats.durations) stats.durations->observe(took);
  return r;
}

bool McpServer::up() const {
  std::lock_guard lock(mutex_);
  return session_ != nullptr && !exited_;
}

std::map<std::string, McpServer::ToolStats> McpServer::toolStats() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, ToolStats> out;
  for (const auto& [name, t] : per_tool_) {
    out[name] = ToolStats{t.calls, t.errors, t.durations ? t.durations->snapshot() : monitoring::Histogram::Snapshot{}};
  }
  return out;
}

json::object McpServer::details() const {
  std::lock_guard lock(mutex_);
  json::object d{{"up", session_ != nullptr && !exited_},
                 {"tools", listed_.size()},
                 {"calls", calls_.load()},
                 {"errors", errors_.load()},
                 {"restarts", restarts_.load()}};
  if (!protocol_version_.empty()) d["protocol_version"] = protocol_version_;
  if (!last_error_.empty()) d["last_error"] = last_error_;
  return d;
}

}  // namespace agentwire::mcp
