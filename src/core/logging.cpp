#include "core/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace agentwire::core {
namespace {

struct LogState {
  std::mutex mutex;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::info;
};

LogState& state() {
  static LogState s;
  return s;
}

spdlog::sink_ptr stderrSink() {
  static auto sink = [] {
    auto s = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ [%n] %v",
                                                                 spdlog::pattern_time_type::utc));
    return s;
  }();
  return sink;
}

void applySinks(const std::shared_ptr<spdlog::logger>& l, const std::vector<spdlog::sink_ptr>& sinks) {
  l->sinks().clear();
  l->sinks().push_back(stderrSink());
  for (const auto& s : sinks) l->sinks().push_back(s);
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto l = std::make_shared<spdlog::logger>(name);
  applySinks(l, st.sinks);
  l->set_level(st.level);
  l->flush_on(spdlog::level::warn);
  spdlog::register_logger(l);
  return l;
}

bool setLogLevel(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.level = lvl;
  spdlog::apply_all([lvl](const std::shared_ptr<spdlog::logger>& l) { l->set_level(lvl); });
  return true;
}

void addLogSink(spdlog::sink_ptr sink) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.sinks.push_back(std::move(sink));
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { applySinks(l, st.sinks); });
}

void removeLogSink(const spdlog::sink_ptr& sink) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.sinks.erase(std::remove(st.sinks.begin(), st.sinks.end(), sink), st.sinks.end());
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { applySinks(l, st.sinks); });
}

}  // namespace agentwire::core
