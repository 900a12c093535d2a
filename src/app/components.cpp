#include "app/components.hpp"

#include "core/logging.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace agentwire::app {

ConfigComponent::ConfigComponent(const core::Config& config) : Component("config", {}), config_(config) {}

void ConfigComponent::start() {
  std::filesystem::path dir = config_.dataDir();
  if (dir.empty()) {  // the store is in memory: no local files
    core::logger("config")->debug("effective configuration:\n{}", core::renderConfig(config_));
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create data directory '{}': {}", dir.string(), ec.message()));
  auto probe = dir / ".agentwire-write-test";
  {
    std::ofstream f(probe);
    if (!f) throw std::runtime_error(fmt::format("data directory '{}' is not writable", dir.string()));
  }
  std::filesystem::remove(probe, ec);
  core::logger("config")->debug("effective configuration:\n{}", core::renderConfig(config_));
}

}  // namespace agentwire::app
