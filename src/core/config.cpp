#include "core/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>

extern char** environ;

namespace agentwire::core {
namespace {

enum class Kind { Int, Bool, String, List };  // List: a TOML array of strings, or "a,b" elsewhere

// One row per key: how to parse it into the Config and how to print it back.
// A table instead of hand-written code per layer keeps TOML, env, flags and check-config in step.
struct KeySpec {
  const char* name;
  Kind kind;
  bool secret;
  std::function<void(Config&, const std::string&)> set;
  std::function<std::string(const Config&)> get;
};

int parseInt(const std::string& key, const std::string& v, int lo, int hi) {
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size()) {
    throw ConfigError(fmt::format("configuration key '{}': '{}' is not an integer", key, v));
  }
  if (out < lo || out > hi) {
    throw ConfigError(fmt::format("configuration key '{}': {} is out of range [{}, {}]", key, out, lo, hi));
  }
  return out;
}

bool parseBool(const std::string& key, const std::string& v) {
  std::string l = v;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "true" || l == "1" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "0" || l == "no" || l == "off") return false;
  throw ConfigError(fmt::format("configuration key '{}': '{}' is not a boolean", key, v));
}

std::string oneOf(const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return v;
  }
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw ConfigError(fmt::format("configuration key '{}': '{}' is not one of {}", key, v, list));
}

#define AW_INT(NAME, FIELD, LO, HI)                                                                       \
  KeySpec {                                                                                               \
    NAME, Kind::Int, false, [](Config& c, const std::string& v) { c.FIELD = parseInt(NAME, v, LO, HI); }, \
        [](const Config& c) { return std::to_string(c.FIELD); }                                           \
  }
#define AW_BOOL(NAME, FIELD)                                                                        \
  KeySpec {                                                                                         \
    NAME, Kind::Bool, false, [](Config& c, const std::string& v) { c.FIELD = parseBool(NAME, v); }, \
        [](const Config& c) { return std::string(c.FIELD ? "true" : "false"); }                     \
  }
#define AW_STR(NAME, FIELD, SECRET)                                                   \
  KeySpec {                                                                           \
    NAME, Kind::String, SECRET, [](Config& c, const std::string& v) { c.FIELD = v; }, \
        [](const Config& c) { return c.FIELD; }                                       \
  }

std::vector<std::string> splitList(const std::string& v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= v.size()) {
    auto end = v.find(',', start);
    if (end == std::string::npos) end = v.size();
    auto item = v.substr(start, end - start);
    auto first = item.find_first_not_of(" \t");
    auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

const std::vector<KeySpec>& specs() {
  static const std::vector<KeySpec> table = {
      AW_STR("server.host", server.host, false),
      AW_INT("server.port", server.port, 0, 65535),
      AW_INT("server.threads", server.threads, 1, 64),
      AW_INT("server.drain_timeout_ms", server.drain_timeout_ms, 0, 600000),
      AW_INT("server.shutdown_delay_ms", server.shutdown_delay_ms, 0, 600000),
      AW_INT("server.request_timeout_ms", server.request_timeout_ms, 100, 3600000),
      AW_INT("server.max_http_connections", server.max_http_connections, 1, 10000000),
      AW_INT("server.max_http_connections_per_ip", server.max_http_connections_per_ip, 1, 10000000),
      AW_STR("server.port_file", server.port_file, false),
      AW_STR("server.web_dir", server.web_dir, false),
      KeySpec{"log.level", Kind::String, false,
              [](Config& c, const std::string& v) {
                c.log.level = oneOf("log.level", v, {"trace", "debug", "info", "warn", "error", "critical", "off"});
              },
              [](const Config& c) { return c.log.level; }},
      AW_STR("node.id", node.id, false),
      AW_INT("node.lease_ms", node.lease_ms, 1000, 3600000),
      AW_INT("node.lease_renew_ms", node.lease_renew_ms, 100, 600000),
      KeySpec{"bus.backend", Kind::String, false,
              [](Config& c, const std::string& v) {
                c.bus.backend = oneOf("bus.backend", v, {"local", "redis"});
              },
              [](const Config& c) { return c.bus.backend; }},
      AW_STR("bus.url", bus.url, false),
      AW_INT("bus.head_check_ms", bus.head_check_ms, 10, 3600000),
      AW_INT("bus.head_check_down_ms", bus.head_check_down_ms, 10, 3600000),
      AW_BOOL("bus.required", bus.required),
      KeySpec{"store.backend", Kind::String, false,
              [](Config& c, const std::string& v) {
                c.store.backend = oneOf("store.backend", v, {"sqlite", "postgres"});
              },
              [](const Config& c) { return c.store.backend; }},
      AW_STR("store.url", store.url, true),
      AW_INT("store.pool_size", store.pool_size, 1, 256),
      AW_STR("store.path", store.path, false),
      KeySpec{"store.sync", Kind::String, false,
              [](Config& c, const std::string& v) {
                c.store.sync = oneOf("store.sync", v, {"normal", "full"});
              },
              [](const Config& c) { return c.store.sync; }},
      AW_INT("store.cache_mb", store.cache_mb, 1, 65536),
      AW_INT("store.retention_events", store.retention_events, 1, 1000000000),
      AW_INT("store.retention_age_s", store.retention_age_s, 0, 20 * 365 * 86400),
      AW_STR("auth.secret", auth.secret, true),
      KeySpec{"auth.dev_mode", Kind::String, false,
              [](Config& c, const std::string& v) {
                c.auth.dev_mode = oneOf("auth.dev_mode", v, {"auto", "on", "off"});
              },
              [](const Config& c) { return c.auth.dev_mode; }},
      AW_INT("auth.dev_token_ttl_s", auth.dev_token_ttl_s, 1, 365 * 86400),
      AW_INT("ws.max_message_bytes", ws.max_message_bytes, 256, 64 * 1024 * 1024),
      AW_INT("ws.max_queue_messages", ws.max_queue_messages, 1, 1000000),
      AW_INT("ws.max_queue_bytes", ws.max_queue_bytes, 1024, 1024 * 1024 * 1024),
      AW_INT("ws.sse_keepalive_ms", ws.sse_keepalive_ms, 10, 3600000),
      AW_INT("ws.idle_timeout_ms", ws.idle_timeout_ms, 100, 3600000),
      AW_INT("ws.send_timeout_ms", ws.send_timeout_ms, 100, 3600000),
      AW_INT("ws.max_messages_per_second", ws.max_messages_per_second, 1, 1000000),
      AW_INT("ws.max_connections_per_user", ws.max_connections_per_user, 1, 100000),
      AW_INT("ws.resume_window_ms", ws.resume_window_ms, 0, 60000),
      AW_INT("limits.max_threads_per_user", limits.max_threads_per_user, 1, 100000000),
      AW_INT("limits.max_title_chars", limits.max_title_chars, 1, 10000),
      AW_INT("limits.list_page_max", limits.list_page_max, 1, 100000),
      AW_BOOL("analytics.enabled", analytics.enabled),
      AW_BOOL("analytics.required", analytics.required),
      AW_STR("analytics.url", analytics.url, false),
      AW_STR("analytics.database", analytics.database, false),
      AW_STR("analytics.user", analytics.user, false),
      AW_STR("analytics.password", analytics.password, true),
      AW_STR("analytics.node", analytics.node, false),
      AW_INT("analytics.connect_timeout_ms", analytics.connect_timeout_ms, 1, 600000),
      AW_INT("analytics.request_timeout_ms", analytics.request_timeout_ms, 1, 600000),
      AW_INT("analytics.batch_rows", analytics.batch_rows, 1, 1000000),
      AW_INT("analytics.flush_interval_ms", analytics.flush_interval_ms, 1, 3600000),
      AW_INT("analytics.queue_max", analytics.queue_max, 1, 100000000),
      AW_STR("analytics.spool_dir", analytics.spool_dir, false),
      AW_INT("analytics.spool_max_mb", analytics.spool_max_mb, 0, 1024 * 1024),
      AW_INT("analytics.retry_initial_ms", analytics.retry_initial_ms, 1, 600000),
      AW_INT("analytics.retry_max_ms", analytics.retry_max_ms, 1, 3600000),
      AW_INT("agents.workers", agents.workers, 1, 256),
      AW_INT("agents.max_queue", agents.max_queue, 1, 1000000),
      AW_STR("agents.default", agents.default_agent, false),
      AW_INT("agents.max_running_per_user", agents.max_running_per_user, 1, 10000),
      AW_INT("agents.max_queued_per_user", agents.max_queued_per_user, 1, 100000),
      AW_INT("agents.run_timeout_ms", agents.run_timeout_ms, 1, 24 * 3600 * 1000),
      AW_INT("agents.chunk_window_ms", agents.chunk_window_ms, 0, 10000),
      AW_INT("agents.chunk_max_bytes", agents.chunk_max_bytes, 1, 1 << 20),
      KeySpec{"agents.approval_required_tools", Kind::List, false,
              [](Config& c, const std::string& v) { c.agents.approval_required_tools = splitList(v); },
              [](const Config& c) { return fmt::format("{}", fmt::join(c.agents.approval_required_tools, ",")); }},
      AW_INT("agents.approval_timeout_ms", agents.approval_timeout_ms, 100, 7 * 24 * 3600 * 1000),
      AW_INT("agents.max_parked_per_user", agents.max_parked_per_user, 1, 100000),
      AW_INT("agents.pace_max_ms", agents.pace_max_ms, 0, 3600000),
      AW_INT("agents.user_daily_token_budget", agents.user_daily_token_budget, 0, 2000000000),
      AW_STR("agents.process_command", agents.process_command, false),
      AW_STR("agents.llm_base_url", agents.llm_base_url, false),
      AW_STR("agents.llm_api_key", agents.llm_api_key, true),
      AW_STR("agents.llm_model", agents.llm_model, false),
      AW_INT("agents.llm_idle_timeout_ms", agents.llm_idle_timeout_ms, 100, 600000),
      AW_BOOL("selfcheck.enabled", selfcheck.enabled),
      AW_INT("selfcheck.timeout_ms", selfcheck.timeout_ms, 1, 600000),
      AW_INT("status.trend_step_ms", status.trend_step_ms, 1000, 600000),
      AW_INT("status.trend_points", status.trend_points, 2, 10000),
  };
  return table;
}

#undef AW_INT
#undef AW_BOOL
#undef AW_STR

const KeySpec* findSpec(const std::string& key) {
  for (const auto& s : specs()) {
    if (key == s.name) return &s;
  }
  return nullptr;
}

void apply(Config& c, const std::string& key, const std::string& value, const std::string& origin) {
  const KeySpec* spec = findSpec(key);
  if (spec == nullptr) throw ConfigError(fmt::format("unknown configuration key '{}' ({})", key, origin));
  spec->set(c, value);
}

std::string nodeToString(const std::string& key, const toml::node& node, Kind kind) {
  switch (kind) {
    case Kind::Int:
      if (auto v = node.value<int64_t>(); v && node.is_integer()) return std::to_string(*v);
      break;
    case Kind::Bool:
      if (auto v = node.value<bool>(); v && node.is_boolean()) return *v ? "true" : "false";
      break;
    case Kind::String:
      if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
      break;
    case Kind::List:
      if (const auto* a = node.as_array()) {
        std::string out;
        for (const auto& item : *a) {
          auto v = item.value<std::string>();
          if (!v || !item.is_string() || v->find(',') != std::string::npos) {
            throw ConfigError(fmt::format("configuration key '{}': expected an array of names", key));
          }
          out += (out.empty() ? "" : ",") + *v;
        }
        return out;
      }
      if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
      break;
  }
  const char* want = kind == Kind::Int    ? "an integer"
                     : kind == Kind::Bool ? "a boolean"
                     : kind == Kind::List ? "an array of strings"
                                          : "a string";
  throw ConfigError(fmt::format("configuration key '{}': expected {}", key, want));
}

std::vector<std::string> stringList(const std::string& key, const toml::node& node) {
  std::vector<std::string> out;
  const auto* a = node.as_array();
  if (a == nullptr) throw ConfigError(fmt::format("configuration key '{}': expected an array of strings", key));
  for (const auto& item : *a) {
    auto v = item.value<std::string>();
    if (!v || !item.is_string())
      throw ConfigError(fmt::format("configuration key '{}': expected an array of strings", key));
    out.push_back(*v);
  }
  return out;
}

// [[agents.mcp_servers]]: an array of tables, one per server.
void applyMcpServers(Config& c, const toml::node& node, const std::string& path) {
  const auto* servers = node.as_array();
  if (servers == nullptr) {
    throw ConfigError(
        fmt::format("configuration key 'agents.mcp_servers' in {}: expected [[agents.mcp_servers]] tables", path));
  }
  for (const auto& item : *servers) {
    const auto* t = item.as_table();
    if (t == nullptr) throw ConfigError("configuration key 'agents.mcp_servers': expected tables");
    Config::McpServer s;
    for (const auto& entry : *t) {
      // Not a structured binding: clang (the fuzz build) cannot capture one in the lambda below.
      const auto& k = entry.first;
      const toml::node& v = entry.second;
      std::string key = "agents.mcp_servers." + std::string(k.str());
      auto str = [&] { return nodeToString(key, v, Kind::String); };
      if (k == "name")
        s.name = str();
      else if (k == "command")
        s.command = str();
      else if (k == "cwd")
        s.cwd = str();
      else if (k == "args")
        s.args = stringList(key, v);
      else if (k == "tools")
        s.tools = stringList(key, v);
      else if (k == "approval_required") {
        s.approval_required = v.is_string() ? std::vector<std::string>{str()} : stringList(key, v);
      } else if (k == "call_timeout_ms") {
        s.call_timeout_ms = std::stoi(nodeToString(key, v, Kind::Int));
        if (s.call_timeout_ms < 1 || s.call_timeout_ms > 3600000) {
          throw ConfigError(fmt::format("configuration key '{}': must be 1..3600000", key));
        }
      } else if (k == "env") {
        const auto* env = v.as_table();
        if (env == nullptr) throw ConfigError(fmt::format("configuration key '{}': expected a table", key));
        for (const auto& [ek, ev] : *env)
          s.env[std::string(ek.str())] = nodeToString(key + "." + std::string(ek.str()), ev, Kind::String);
      } else if (k == "url") {
        s.url = str();
      } else if (k == "headers") {
        const auto* headers = v.as_table();
        if (headers == nullptr) throw ConfigError(fmt::format("configuration key '{}': expected a table", key));
        for (const auto& [hk, hv] : *headers)
          s.headers[std::string(hk.str())] = nodeToString(key + "." + std::string(hk.str()), hv, Kind::String);
      } else {
        throw ConfigError(fmt::format("unknown configuration key '{}' in {}", key, path));
      }
    }
    auto valid_name = !s.name.empty() && s.name.size() <= 32 && std::all_of(s.name.begin(), s.name.end(), [](char ch) {
      return std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '-';
    });
    if (!valid_name) {
      throw ConfigError(
          fmt::format("configuration key 'agents.mcp_servers.name': '{}' must be 1-32 of [a-z0-9-]", s.name));
    }
    if (s.command.empty() == s.url.empty()) {
      throw ConfigError(fmt::format(
          "configuration key 'agents.mcp_servers': server '{}' needs either command (stdio) or url (Streamable "
          "HTTP), not both",
          s.name));
    }
    if (!s.url.empty() && s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0) {
      throw ConfigError(fmt::format("configuration key 'agents.mcp_servers.url': '{}' is not an http(s) URL", s.url));
    }
    for (const auto& other : c.agents.mcp_servers) {
      if (other.name == s.name) throw ConfigError(fmt::format("two MCP servers are named '{}'", s.name));
    }
    c.agents.mcp_servers.push_back(std::move(s));
  }
}

// [[agents.defs]]: an array of tables, one per named agent.
void applyAgentDefs(Config& c, const toml::node& node, const std::string& path) {
  const auto* defs = node.as_array();
  if (defs == nullptr) {
    throw ConfigError(fmt::format("configuration key 'agents.defs' in {}: expected [[agents.defs]] tables", path));
  }
  for (const auto& item : *defs) {
    const auto* t = item.as_table();
    if (t == nullptr) throw ConfigError("configuration key 'agents.defs': expected tables");
    Config::AgentDef d;
    for (const auto& entry : *t) {
      // Not a structured binding: clang (the fuzz build) cannot capture one in a lambda.
      const auto& k = entry.first;
      const toml::node& v = entry.second;
      std::string key = "agents.defs." + std::string(k.str());
      auto str = [&] { return nodeToString(key, v, Kind::String); };
      auto integer = [&](int lo, int hi) {
        int n = std::stoi(nodeToString(key, v, Kind::Int));
        if (n < lo || n > hi) throw ConfigError(fmt::format("configuration key '{}': must be {}..{}", key, lo, hi));
        return n;
      };
      if (k == "name")
        d.name = str();
      else if (k == "kind")
        d.kind = str();
      else if (k == "description")
        d.description = str();
      else if (k == "provider")
        d.provider = str();
      else if (k == "base_url")
        d.base_url = str();
      else if (k == "api_key")
        d.api_key = str();
      else if (k == "api_key_env")
        d.api_key_env = str();
      else if (k == "model")
        d.model = str();
      else if (k == "system_prompt")
        d.system_prompt = str();
      else if (k == "command")
        d.command = str();
      else if (k == "tools")
        d.tools = stringList(key, v);
      else if (k == "max_steps")
        d.max_steps = integer(1, 100);
      else if (k == "max_tokens")
        d.max_tokens = integer(1, 1000000);
      else if (k == "idle_timeout_ms")
        d.idle_timeout_ms = integer(100, 600000);
      else if (k == "temperature") {
        auto f = v.value<double>();
        if (!f || !(v.is_floating_point() || v.is_integer()) || *f < 0 || *f > 2) {
          throw ConfigError(fmt::format("configuration key '{}': expected a number from 0 to 2", key));
        }
        d.temperature = *f;
      } else {
        throw ConfigError(fmt::format("unknown configuration key '{}' in {}", key, path));
      }
    }
    c.agents.defs.push_back(std::move(d));
  }
}

void applyTable(Config& c, const toml::table& root, const std::string& path) {
  for (const auto& [section, node] : root) {
    const auto* table = node.as_table();
    if (table == nullptr) {
      throw ConfigError(fmt::format("unknown configuration key '{}' in {}", section.str(), path));
    }
    for (const auto& [name, value] : *table) {
      std::string key = std::string(section.str()) + "." + std::string(name.str());
      if (key == "agents.mcp_servers") {
        applyMcpServers(c, value, path);
        continue;
      }
      if (key == "agents.defs") {
        applyAgentDefs(c, value, path);
        continue;
      }
      const KeySpec* spec = findSpec(key);
      if (spec == nullptr) throw ConfigError(fmt::format("unknown configuration key '{}' in {}", key, path));
      spec->set(c, nodeToString(key, value, spec->kind));
    }
  }
}

void applyToml(Config& c, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(
        fmt::format("cannot load configuration file '{}': {} (line {})", path, e.description(), e.source().begin.line));
  }
  applyTable(c, root, path);
}

bool isLoopbackHost(const std::string& h) {
  return h == "localhost" || h == "::1" || h == "[::1]" || h.rfind("127.", 0) == 0;
}

void validateAgentDefs(const Config& c) {
  std::set<std::string> names{"echo"};
  if (!c.agents.llm_base_url.empty()) names.insert("llm");
  if (!c.agents.process_command.empty()) names.insert("process");
  std::set<std::string> servers;
  for (const auto& m : c.agents.mcp_servers) servers.insert(m.name);
  for (const auto& d : c.agents.defs) {
    auto fail = [&d](const std::string& what) {
      return ConfigError(fmt::format("configuration key 'agents.defs' (agent '{}'): {}", d.name, what));
    };
    bool valid_name = !d.name.empty() && d.name.size() <= 32 && std::all_of(d.name.begin(), d.name.end(), [](char ch) {
      return std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) ||
             ch == '-' || ch == '_';
    });
    if (!valid_name) throw fail("name must be 1-32 of [a-z0-9_-]");
    if (!names.insert(d.name).second) {
      throw fail(
          "the name is taken (echo is built in; llm and process are the agents.llm_* and "
          "agents.process_command ones)");
    }
    if (d.kind == "llm") {
      if (d.provider != "openai" && d.provider != "anthropic") throw fail("provider must be openai or anthropic");
      if (d.base_url.empty()) throw fail("base_url is required for kind llm");
      if (!d.api_key_env.empty() && std::getenv(d.api_key_env.c_str()) == nullptr) {
        throw fail(fmt::format("api_key_env names {}, which is not set", d.api_key_env));
      }
    } else if (d.kind == "process") {
      if (d.command.empty()) throw fail("command is required for kind process");
    } else if (d.kind != "echo") {
      throw fail("kind must be echo, llm or process");
    }
    for (const auto& t : d.tools) {
      // A typo here would silently leave the agent without a tool: names must be known now.
      static const std::set<std::string> kBuiltin{"word_count", "clock", "calculator"};
      auto dot = t.find('.');
      bool known = dot == std::string::npos ? kBuiltin.count(t) > 0 : servers.count(t.substr(0, dot)) > 0;
      if (!known) {
        throw fail(
            fmt::format("tool '{}' is neither built in (word_count, clock, calculator) nor of a configured MCP "
                        "server (server.tool or server.*)",
                        t));
      }
    }
  }
}

void validate(const Config& c) {
  if (!isLoopbackHost(c.server.host) && c.auth.secret.empty()) {
    throw ConfigError(fmt::format(
        "configuration key 'auth.secret': required when server.host ({}) is not a loopback address", c.server.host));
  }
  if (!isLoopbackHost(c.server.host) && c.auth.dev_mode == "on") {
    throw ConfigError(fmt::format(
        "configuration key 'auth.dev_mode': dev mode is refused when server.host ({}) is not a loopback address",
        c.server.host));
  }
  if (c.store.path.empty()) throw ConfigError("configuration key 'store.path': must not be empty");
  if (c.node.lease_renew_ms * 2 > c.node.lease_ms) {
    throw ConfigError(fmt::format(
        "configuration key 'node.lease_renew_ms': {} must be at most half of node.lease_ms ({}), so that one late "
        "renewal does not lose the lease",
        c.node.lease_renew_ms, c.node.lease_ms));
  }
  if (c.bus.backend == "redis" && c.bus.url.rfind("redis://", 0) != 0) {
    throw ConfigError(fmt::format("configuration key 'bus.url': '{}' is not a redis://host:port URL", c.bus.url));
  }
  if (c.bus.backend == "redis" && c.store.backend != "postgres") {
    throw ConfigError("configuration key 'bus.backend': redis needs store.backend = postgres (SQLite is one node's)");
  }
  if (c.store.backend == "postgres" && c.store.url.empty()) {
    throw ConfigError("configuration key 'store.url': required when store.backend is postgres");
  }
  validateAgentDefs(c);
  // HS256 with a short secret can be brute-forced offline from one token (RFC 7518 3.2 asks for
  // at least the hash size). Dev mode on loopback may use a short one for a try.
  if (!c.auth.secret.empty() && c.auth.secret.size() < 32 && !c.devModeEnabled()) {
    throw ConfigError(fmt::format(
        "configuration key 'auth.secret': {} bytes is too short; use at least 32 random bytes (e.g. openssl rand "
        "-hex 32)",
        c.auth.secret.size()));
  }
}

}  // namespace

bool Config::boundToLoopback() const {
  return isLoopbackHost(server.host);
}

bool Config::devModeEnabled() const {
  if (auth.dev_mode == "on") return boundToLoopback();
  if (auth.dev_mode == "off") return false;
  return boundToLoopback();
}

bool Config::storeInMemory() const {
  return store.backend == "sqlite" && store.path == ":memory:";
}

std::string Config::dataDir() const {
  if (storeInMemory()) return {};
  auto dir = std::filesystem::path(store.path).parent_path();
  return dir.empty() ? std::string(".") : dir.string();
}

std::string envNameFor(const std::string& key) {
  std::string out = "AGENTWIRE_";
  for (char ch : key) out += ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

std::vector<std::string> configKeys() {
  std::vector<std::string> out;
  for (const auto& s : specs()) out.emplace_back(s.name);
  return out;
}

std::map<std::string, std::string> processEnvironment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) out.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

Config loadConfig(const std::string& toml_path, const std::map<std::string, std::string>& env,
                  const std::vector<ConfigOverride>& overrides) {
  Config c;
  if (!toml_path.empty()) applyToml(c, toml_path);

  std::map<std::string, std::string> env_to_key;
  for (const auto& s : specs()) env_to_key.emplace(envNameFor(s.name), s.name);
  for (const auto& [name, value] : env) {
    if (name.rfind("AGENTWIRE_", 0) != 0) continue;
    auto it = env_to_key.find(name);
    if (it == env_to_key.end()) {
      throw ConfigError(fmt::format("unknown configuration key in environment variable '{}'", name));
    }
    apply(c, it->second, value, "environment variable " + name);
  }
  for (const auto& o : overrides) apply(c, o.key, o.value, "command line");
  validate(c);
  return c;
}

Config loadConfigText(std::string_view toml_text) {
  Config c;
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view("<text>"));
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("cannot load configuration: {} (line {})", e.description(), e.source().begin.line));
  }
  applyTable(c, root, "<text>");
  validate(c);
  return c;
}

std::string renderConfig(const Config& c) {
  std::string out;
  std::string section;
  for (const auto& s : specs()) {
    std::string key = s.name;
    auto dot = key.find('.');
    std::string sec = key.substr(0, dot);
    if (sec != section) {
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", sec);
      section = sec;
    }
    std::string v = s.get(c);
    if (s.secret && !v.empty()) v = "********";
    if (s.kind == Kind::String) v = fmt::format("\"{}\"", v);
    if (s.kind == Kind::List) {
      std::string items;
      for (const auto& item : splitList(v)) items += fmt::format("{}\"{}\"", items.empty() ? "" : ", ", item);
      v = "[" + items + "]";
    }
    out += fmt::format("{} = {}\n", key.substr(dot + 1), v);
  }
  return out;
}

}  // namespace agentwire::core
