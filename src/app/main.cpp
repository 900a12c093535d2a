// agentwire: the command line. `serve` runs the gateway; `check-config` validates and prints
// the effective configuration with secrets masked.
#include "app/backup_command.hpp"
#include "app/probe.hpp"
#include "app/server.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"
#include "core/version.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

using agentwire::core::ConfigOverride;

int main(int argc, char** argv) {
  CLI::App app{"agentwire: a real-time gateway between AI agents and the people who chat with them"};
  app.set_version_flag("--version", agentwire::core::kVersion);
  app.require_subcommand(1);

  std::string config_path;
  std::vector<std::string> sets;
  std::string host, log_level, port_file;
  int port = -1;
  auto addCommon = [&](CLI::App* cmd) {
    cmd->add_option("-c,--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
    cmd->add_option("--set", sets, "override a key: --set server.port=9000 (repeatable)");
    cmd->add_option("--host", host, "listen address (server.host)");
    cmd->add_option("-p,--port", port, "listen port, 0 = any free port (server.port)");
    cmd->add_option("--port-file", port_file, "write the bound port to this file (server.port_file)");
    cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error (log.level)");
  };
  auto* serve = app.add_subcommand("serve", "run the gateway");
  auto* check = app.add_subcommand("check-config", "validate and print the effective configuration");
  addCommon(serve);
  addCommon(check);
  agentwire::app::ProbeOptions probe_opts;
  auto* probe = app.add_subcommand("probe", "run the routing self-check against a running server; exit 0/1");
  probe->add_option("url", probe_opts.url, "ws://host:port")->required();
  probe->add_option("--token", probe_opts.token, "JWT to connect with");
  probe->add_option("--secret", probe_opts.secret, "HS256 secret to sign a probe token with");
  probe->add_option("--user", probe_opts.user, "user id of the probe (default agentwire-probe)");
  probe->add_option("--timeout-ms", probe_opts.timeout_ms, "per-step timeout");

  std::string backup_to, restore_from;
  auto* backup = app.add_subcommand("backup", "copy the SQLite store, consistently, while the server runs");
  backup->add_option("--to", backup_to, "the backup file to write")->required();
  auto* restore = app.add_subcommand("restore", "put a backup in place of the SQLite store (server stopped)");
  restore->add_option("--from", restore_from, "the backup file to restore")->required()->check(CLI::ExistingFile);
  for (auto* cmd : {backup, restore}) {
    cmd->add_option("-c,--config", config_path, "TOML configuration file (for store.path)")->check(CLI::ExistingFile);
    cmd->add_option("--set", sets, "override a key: --set store.path=/var/lib/agentwire/agentwire.db (repeatable)");
  }

  CLI11_PARSE(app, argc, argv);
  if (probe->parsed()) return agentwire::app::runProbe(probe_opts);

  std::vector<ConfigOverride> overrides;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "agentwire: --set expects key=value, got '%s'\n", s.c_str());
      return 2;
    }
    overrides.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }
  if (!host.empty()) overrides.push_back({"server.host", host});
  if (port >= 0) overrides.push_back({"server.port", std::to_string(port)});
  if (!port_file.empty()) overrides.push_back({"server.port_file", port_file});
  if (!log_level.empty()) overrides.push_back({"log.level", log_level});

  agentwire::core::Config config;
  try {
    config = agentwire::core::loadConfig(config_path, agentwire::core::processEnvironment(), overrides);
  } catch (const agentwire::core::ConfigError& e) {
    std::fprintf(stderr, "agentwire: invalid configuration: %s\n", e.what());
    return 2;
  }

  if (check->parsed()) {
    std::cout << agentwire::core::renderConfig(config);
    return 0;
  }
  if (backup->parsed() || restore->parsed()) return agentwire::app::runBackupCommand(config, backup_to, restore_from);
  agentwire::core::setLogLevel(config.log.level);
  return agentwire::app::runServer(config);
}
