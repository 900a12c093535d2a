#include "core/config.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace agentwire::core {
namespace {

std::string writeToml(const testing::TempDir& dir, const std::string& text) {
  auto p = dir.file("agentwire.toml");
  std::ofstream(p) << text;
  return p;
}

// A configuration file that must not load, and a word its error must contain.
void expectRefused(const testing::TempDir& dir, const std::string& text, const std::string& needle) {
  try {
    loadConfig(writeToml(dir, text), {}, {});
    ADD_FAILURE() << "accepted: " << text;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ConfigTest, DefaultsAreEmbeddedAndLoopback) {
  auto c = loadConfig("", {}, {});
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.store.path, "var/agentwire.db");
  EXPECT_FALSE(c.analytics.enabled);
  EXPECT_TRUE(c.devModeEnabled());
}

TEST(ConfigTest, LayersApplyInOrderFileThenEnvThenFlags) {
  testing::TempDir dir;
  auto path = writeToml(dir, "[server]\nport = 9000\nthreads = 3\n[log]\nlevel = \"debug\"\n");
  auto c = loadConfig(path, {{"AGENTWIRE_SERVER_PORT", "9100"}, {"AGENTWIRE_LOG_LEVEL", "warn"}, {"HOME", "/root"}},
                      {{"server.port", "9200"}});
  EXPECT_EQ(c.server.port, 9200);  // flag beats env beats file
  EXPECT_EQ(c.server.threads, 3);  // file only
  EXPECT_EQ(c.log.level, "warn");  // env beats file
}

TEST(ConfigTest, UnknownKeysAreErrorsNamingTheKey) {
  testing::TempDir dir;
  try {
    loadConfig(writeToml(dir, "[server]\nprot = 1\n"), {}, {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'server.prot'"), std::string::npos) << e.what();
  }
  try {
    loadConfig("", {{"AGENTWIRE_SERVER_PROT", "1"}}, {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AGENTWIRE_SERVER_PROT"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loadConfig("", {}, {{"nope.key", "1"}}), ConfigError);
}

TEST(ConfigTest, NamedAgentsAreTablesOfTheirOwn) {
  testing::TempDir dir;
  auto c = loadConfig(writeToml(dir, R"(
[[agents.mcp_servers]]
name = "files"
command = "node"

[[agents.defs]]
name = "claude"
kind = "llm"
provider = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key = "k"
tools = ["calculator", "files.*", "files.read"]
temperature = 0.5
max_tokens = 1024

[[agents.defs]]
name = "shell_agent"
kind = "process"
command = "python3 agent.py"
)"),
                      {}, {});
  ASSERT_EQ(c.agents.defs.size(), 2u);
  const auto& d = c.agents.defs[0];
  EXPECT_EQ((std::vector<std::string>{d.name, d.kind, d.provider}),
            (std::vector<std::string>{"claude", "llm", "anthropic"}));
  EXPECT_EQ(d.tools.size(), 3u);
  EXPECT_EQ(d.temperature.value_or(-1), 0.5);
  EXPECT_EQ(d.max_tokens, 1024);
  EXPECT_EQ(d.max_steps, 8);
  EXPECT_EQ(c.agents.defs[1].command, "python3 agent.py");
  auto refused = [&](const std::string& text, const std::string& needle) { expectRefused(dir, text, needle); };
  refused("[[agents.defs]]\nname = \"a\"\nkind = \"llm\"\nbase_url = \"u\"\ntemperature = 3\n", "0 to 2");
  refused("[[agents.defs]]\nname = \"a\"\nkind = \"process\"\n", "command is required");
  refused("[[agents.defs]]\nname = \"A b\"\nkind = \"echo\"\n", "[a-z0-9_-]");
  refused("[[agents.defs]]\nname = \"a\"\nkind = \"echo\"\n[[agents.defs]]\nname = \"a\"\nkind = \"echo\"\n",
          "the name is taken");
  refused("[[agents.defs]]\nname = \"a\"\nkind = \"llm\"\nbase_url = \"u\"\ntools = [\"web.*\"]\n", "tool 'web.*'");
}

TEST(ConfigTest, McpServersAreTablesOfTheirOwn) {
  testing::TempDir dir;
  auto c = loadConfig(writeToml(dir, R"(
[[agents.mcp_servers]]
name = "files"
command = "node"
args = ["server.js", "/tmp"]
env = { A = "1" }
tools = ["read_file"]
approval_required = "*"
call_timeout_ms = 500

[[agents.mcp_servers]]
name = "second"
command = "/bin/true"
)"),
                      {}, {});
  ASSERT_EQ(c.agents.mcp_servers.size(), 2u);
  const auto& m = c.agents.mcp_servers[0];
  EXPECT_EQ(m.name, "files");
  EXPECT_EQ(m.args, (std::vector<std::string>{"server.js", "/tmp"}));
  EXPECT_EQ(m.env.at("A"), "1");
  EXPECT_EQ(m.tools, (std::vector<std::string>{"read_file"}));
  EXPECT_EQ(m.approval_required, (std::vector<std::string>{"*"}));
  EXPECT_EQ(m.call_timeout_ms, 500);
  EXPECT_EQ(c.agents.mcp_servers[1].call_timeout_ms, 30000);
  auto refused = [&](const std::string& text, const std::string& needle) { expectRefused(dir, text, needle); };
  refused("[[agents.mcp_servers]]\nname = \"Bad Name\"\ncommand = \"x\"\n", "[a-z0-9-]");
  refused("[[agents.mcp_servers]]\nname = \"a\"\n", "either command (stdio) or url");
  refused("[[agents.mcp_servers]]\nname = \"a\"\nurl = \"http://x/mcp\"\ncommand = \"x\"\n", "not both");
  refused("[[agents.mcp_servers]]\nname = \"a\"\nurl = \"ftp://x/mcp\"\n", "not an http(s) URL");
  auto web = loadConfig(
      writeToml(dir,
                "[[agents.mcp_servers]]\nname = \"web\"\nurl = \"https://h/mcp\"\nheaders = { Authorization = "
                "\"Bearer t\" }\n"),
      {}, {});
  EXPECT_EQ(web.agents.mcp_servers[0].headers.at("Authorization"), "Bearer t");
  refused("[[agents.mcp_servers]]\nname = \"a\"\ncommand = \"x\"\ncolour = 1\n", "agents.mcp_servers.colour");
  refused(
      "[[agents.mcp_servers]]\nname = \"a\"\ncommand = \"x\"\n[[agents.mcp_servers]]\nname = \"a\"\ncommand = \"y\"\n",
      "two MCP servers");
}

TEST(ConfigTest, BadValuesAreErrorsNamingTheKey) {
  testing::TempDir dir;
  auto expectError = [](auto fn, const std::string& needle) {
    try {
      fn();
      FAIL() << "accepted: " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectError([] { loadConfig("", {}, {{"server.port", "80000"}}); }, "'server.port'");
  expectError([] { loadConfig("", {}, {{"server.port", "12ab"}}); }, "'server.port'");
  expectError([] { loadConfig("", {}, {{"analytics.enabled", "maybe"}}); }, "'analytics.enabled'");
  expectError([] { loadConfig("", {}, {{"log.level", "loud"}}); }, "'log.level'");
  expectError([] { loadConfig("", {}, {{"store.sync", "sometimes"}}); }, "'store.sync'");
  EXPECT_EQ(loadConfig("", {}, {{"store.sync", "full"}}).store.sync, "full");
  expectError([&] { loadConfig(writeToml(dir, "[server]\nport = \"80\"\n"), {}, {}); }, "'server.port'");
  expectError([&] { loadConfig(writeToml(dir, "[server\n"), {}, {}); }, "cannot load configuration file");
}

TEST(ConfigTest, NonLoopbackWithoutSecretIsRefused) {
  try {
    loadConfig("", {}, {{"server.host", "0.0.0.0"}});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'auth.secret'"), std::string::npos) << e.what();
  }
  const std::string secret(32, 'k');
  auto c = loadConfig("", {}, {{"server.host", "0.0.0.0"}, {"auth.secret", secret}});
  EXPECT_FALSE(c.devModeEnabled()) << "dev mode must never be on off loopback";
  EXPECT_THROW(loadConfig("", {}, {{"server.host", "0.0.0.0"}, {"auth.secret", secret}, {"auth.dev_mode", "on"}}),
               ConfigError);
}

TEST(ConfigTest, ShortSecretIsRefusedOutsideDevMode) {
  try {
    loadConfig("", {}, {{"server.host", "0.0.0.0"}, {"auth.secret", std::string(31, 'k')}});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'auth.secret': 31 bytes is too short"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loadConfig("", {}, {{"auth.dev_mode", "off"}, {"auth.secret", "x"}}), ConfigError);
  // Dev mode on loopback: a short secret is allowed for a try.
  EXPECT_NO_THROW(loadConfig("", {}, {{"auth.secret", "x"}}));
}

TEST(ConfigTest, RenderMasksSecretsAndRoundTrips) {
  testing::TempDir dir;
  auto c = loadConfig("", {}, {{"auth.secret", "hunter2"}, {"server.port", "9001"}});
  auto text = renderConfig(c);
  EXPECT_EQ(text.find("hunter2"), std::string::npos);
  EXPECT_NE(text.find("secret = \"********\""), std::string::npos) << text;
  // The rendered file loads back to the same settings (with the mask as the secret).
  auto again = loadConfig(writeToml(dir, text), {}, {});
  EXPECT_EQ(again.server.port, 9001);
}

TEST(ConfigTest, EveryKeyHasAnEnvironmentName) {
  for (const auto& k : configKeys()) {
    auto env = envNameFor(k);
    EXPECT_EQ(env.rfind("AGENTWIRE_", 0), 0u);
  }
  EXPECT_EQ(envNameFor("server.drain_timeout_ms"), "AGENTWIRE_SERVER_DRAIN_TIMEOUT_MS");
}

}  // namespace
}  // namespace agentwire::core
