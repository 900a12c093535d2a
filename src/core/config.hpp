#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace agentwire::core {

// Raised while loading configuration; the message names the offending key.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The one configuration object. Loaded in layers: defaults, then an optional TOML file,
// then AGENTWIRE_* environment variables, then command-line overrides. Immutable once loaded.
struct Config {
  struct Server {
    std::string host = "127.0.0.1";
    int port = 8080;
    int threads = 2;
    int drain_timeout_ms = 5000;
    int shutdown_delay_ms = 0;              // readiness is false this long before the listener closes
    int request_timeout_ms = 10000;         // an HTTP request (or upgrade) must arrive within this
    int max_http_connections = 4096;        // HTTP connections not upgraded to WebSocket, in all ...
    int max_http_connections_per_ip = 256;  // ... and from one address
    std::string port_file;                  // when set, the bound port is written here once listening
    std::string web_dir;                    // static files for / and /status; empty = built-in location
  } server;
  struct Log {
    std::string level = "info";
  } log;
  struct Bus {
    std::string backend = "local";  // local (one node) or redis (several nodes)
    std::string url = "redis://127.0.0.1:6379";
    int head_check_ms = 1000;      // how often a node checks its users' heads in the store (lost notices)
    int head_check_down_ms = 200;  // the same while Redis is down: the extra latency of an outage
    // false: Redis down only degrades the node (events go through the store's head checks, chat
    // goes on); true: the node is not ready while its subscription does not answer PING.
    bool required = false;
  } bus;
  struct Node {
    std::string id;  // names this node in the runs it executes; empty = <host name>:<server.port>
    // Several nodes (store.backend = postgres): how long a node's lease lasts and how often it is
    // renewed; a node that stops renewing has its runs ended (interrupted) by another node.
    int lease_ms = 10000;
    int lease_renew_ms = 2000;
  } node;
  struct Store {
    std::string backend = "sqlite";  // sqlite (embedded, one node) or postgres (several nodes)
    std::string url;                 // postgres: a libpq connection string, postgresql://user@host:port/db
    int pool_size = 4;               // postgres: connections
    std::string path = "var/agentwire.db";
    std::string sync = "normal";      // sqlite: normal (survives a process crash) or full (also a power loss)
    int cache_mb = 16;                // sqlite: the writer's page cache (a leaf per active user and table)
    int retention_events = 10000;     // per user: older events are deleted
    int retention_age_s = 7 * 86400;  // per user: events older than this are deleted (0 = no bound)
  } store;
  struct Auth {
    std::string secret;             // HS256 secret; empty = dev secret kept beside the store (dev only)
    std::string dev_mode = "auto";  // auto (on iff loopback), on, off
    int dev_token_ttl_s = 86400;
  } auth;
  struct Ws {
    int max_message_bytes = 64 * 1024;
    int max_queue_messages = 1024;
    int max_queue_bytes = 4 * 1024 * 1024;
    int sse_keepalive_ms = 15000;  // GET /api/events: a comment line after this long without an event
    int idle_timeout_ms = 30000;
    int send_timeout_ms = 30000;  // frames waiting, no write completing: the peer stopped reading (4001)
    int max_messages_per_second = 50;
    int max_connections_per_user = 16;
    int resume_window_ms = 1000;
  } ws;
  // Limits that hold on every entry point (WebSocket, HTTP API, AG-UI).
  struct Limits {
    int max_threads_per_user = 10000;
    int max_title_chars = 200;
    int list_page_max = 200;  // threads or messages in one page
  } limits;
  struct Analytics {
    bool enabled = false;
    bool required = false;
    std::string url = "http://127.0.0.1:8123";
    std::string database = "default";
    std::string user;      // empty = ClickHouse's default user
    std::string password;  // secret
    std::string node;      // recorded in every row; empty = the host name
    int connect_timeout_ms = 1000;
    int request_timeout_ms = 10000;
    int batch_rows = 5000;         // a batch is sent when it has this many rows ...
    int flush_interval_ms = 1000;  // ... or when its oldest row is this old
    int queue_max = 100000;        // rows waiting in memory; past it rows are dropped and counted
    std::string spool_dir;         // empty = analytics-spool beside the store
    int spool_max_mb = 256;        // past it new batches are dropped and counted
    int retry_initial_ms = 500;    // backoff after a failed insert, doubled up to retry_max_ms, with jitter
    int retry_max_ms = 30000;
  } analytics;
  // One MCP tool server ([[agents.mcp_servers]] in the file): stdio (command) or Streamable HTTP (url).
  struct McpServer {
    std::string name;     // its tools are "<name>.<tool>"
    std::string command;  // run with `args`, looked up in PATH
    std::string url;      // or: its Streamable HTTP endpoint, with `headers`
    std::map<std::string, std::string> headers;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;  // added to its environment
    std::string cwd;
    std::vector<std::string> tools;              // the tools offered to agents; empty = all
    std::vector<std::string> approval_required;  // tool names, or "*" for all of them
    int call_timeout_ms = 30000;
  };
  // One named agent ([[agents.defs]] in the file).
  struct AgentDef {
    std::string name;  // what threads and messages pick it by
    std::string kind;  // echo, llm, process
    std::string description;
    // llm
    std::string provider = "openai";  // or anthropic
    std::string base_url;
    std::string api_key;
    std::string api_key_env;  // or: the environment variable holding the key
    std::string model;        // empty: gpt-4o-mini (openai), claude-sonnet-4-5 (anthropic)
    std::string system_prompt = "You are a helpful assistant.";
    std::vector<std::string> tools;  // the tools it may call, "server.*" for all of an MCP server; empty = all
    int max_steps = 8;
    std::optional<double> temperature;
    int max_tokens = 0;  // 0: the upstream's default (4096 for anthropic, which requires one)
    int idle_timeout_ms = 30000;
    // process
    std::string command;
  };
  struct Agents {
    int workers = 4;
    int max_queue = 1000;
    std::string default_agent = "echo";
    int max_running_per_user = 2;
    int max_queued_per_user = 16;
    int run_timeout_ms = 60000;
    int chunk_window_ms = 30;                            // text deltas within this window become one chunk (0 = off)
    int chunk_max_bytes = 4096;                          // ... up to this size
    std::vector<std::string> approval_required_tools{};  // tool calls that wait for a person's approval
    int approval_timeout_ms = 600000;                    // ... at most this long, then they expire
    int max_parked_per_user = 20;                        // runs of one user waiting for approvals
    int pace_max_ms = 30000;              // text deltas wait for a reader that is behind, at most this long each time
    int64_t user_daily_token_budget = 0;  // tokens per user per UTC day, all nodes; 0 = none
    std::vector<McpServer> mcp_servers;
    std::vector<AgentDef> defs;
    std::string process_command;  // when set, agent "process" runs this under /bin/sh -c
    std::string llm_base_url;     // when set, agent "llm" talks to this OpenAI-compatible endpoint
    std::string llm_api_key;
    std::string llm_model = "gpt-4o-mini";
    int llm_idle_timeout_ms = 30000;
  } agents;
  struct SelfCheck {
    bool enabled = true;
    int timeout_ms = 2000;
  } selfcheck;
  struct Status {
    int trend_step_ms = 5000;  // one point of the status page's charts per step
    int trend_points = 120;    // kept: ten minutes at the default step
  } status;

  // True when server.host is a loopback address (127.0.0.0/8, ::1, localhost).
  bool boundToLoopback() const;
  // Dev mode after resolving "auto".
  bool devModeEnabled() const;
  // SQLite at ":memory:" (tests, benchmarks): nothing of the store outlives the process.
  bool storeInMemory() const;
  // Where agentwire keeps its local files (dev secret, startup history): the store's directory,
  // "." when the store path has none, "" when the store is in memory (then nothing is written:
  // the dev secret lives in memory, the startup history is not kept).
  std::string dataDir() const;
};

// A setting as the user spells it: "server.port".
struct ConfigOverride {
  std::string key;
  std::string value;
};

// Loads the layers described above. `environ` is the process environment (name -> value).
// Throws ConfigError naming the key for unknown keys, wrong types and invalid values.
Config loadConfig(const std::string& toml_path, const std::map<std::string, std::string>& environ,
                  const std::vector<ConfigOverride>& overrides);

// The same from TOML text alone (no file, environment or overrides): for tests and the fuzzer.
Config loadConfigText(std::string_view toml_text);

// The process environment as a map.
std::map<std::string, std::string> processEnvironment();

// The effective configuration as TOML, secrets masked. Used by `agentwire check-config`.
std::string renderConfig(const Config& config);

// Every known key ("server.port", ...), for help texts and tests.
std::vector<std::string> configKeys();

// The environment variable that sets a key: server.port -> AGENTWIRE_SERVER_PORT.
std::string envNameFor(const std::string& key);

}  // namespace agentwire::core
