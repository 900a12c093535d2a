#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace agentwire::core {

// One named logger per component, all writing to stderr with the same pattern.
// Thread-safe; the same name returns the same logger.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Sets the level of every existing and future logger ("trace".."critical", "off").
// Returns false for an unknown level name.
bool setLogLevel(const std::string& level);

// Sends every logger's output to an additional sink as well (tests use this to record logs).
void addLogSink(spdlog::sink_ptr sink);
void removeLogSink(const spdlog::sink_ptr& sink);

}  // namespace agentwire::core
