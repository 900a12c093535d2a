#include "lifecycle/startup_trace.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace agentwire::lifecycle {

StartupTrace::StartupTrace(Clock::time_point origin) : origin_(origin) {}

double StartupTrace::sinceOriginMs() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - origin_).count();
}

StartupTrace::Span* StartupTrace::findLocked(const std::string& component) {
  for (auto& s : spans_) {
    if (s.component == component) return &s;
  }
  return nullptr;
}

void StartupTrace::declare(const std::string& component, std::vector<std::string> dependencies, bool critical) {
  std::lock_guard lock(mutex_);
  Span* s = findLocked(component);
  if (s == nullptr) {
    Span s0;
    s0.component = component;
    s0.critical = critical;
    spans_.push_back(std::move(s0));
    s = &spans_.back();
  }
  s->dependencies = std::move(dependencies);
  s->critical = critical;
}

void StartupTrace::beginSpan(const std::string& component, std::vector<std::string> dependencies, bool critical) {
  declare(component, std::move(dependencies), critical);
  double now = sinceOriginMs();
  std::lock_guard lock(mutex_);
  Span* s = findLocked(component);
  s->start_ms = now;
  s->outcome = "starting";
}

void StartupTrace::endSpan(const std::string& component, std::string outcome, std::string error) {
  double now = sinceOriginMs();
  std::lock_guard lock(mutex_);
  Span* s = findLocked(component);
  if (s == nullptr) return;
  s->end_ms = now;
  s->outcome = std::move(outcome);
  s->error = std::move(error);
}

void StartupTrace::recordEvent(const std::string& component, std::string what) {
  double now = sinceOriginMs();
  std::lock_guard lock(mutex_);
  events_.push_back(Event{now, component, std::move(what)});
}

void StartupTrace::finish(bool ok) {
  double now = sinceOriginMs();
  std::lock_guard lock(mutex_);
  finished_ = true;
  ok_ = ok;
  total_ms_ = now;
}

std::vector<StartupTrace::Span> StartupTrace::spans() const {
  std::lock_guard lock(mutex_);
  return spans_;
}

std::vector<StartupTrace::Event> StartupTrace::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

boost::json::value StartupTrace::toJson() const {
  std::lock_guard lock(mutex_);
  boost::json::array comps;
  for (const auto& s : spans_) {
    boost::json::array deps;
    for (const auto& d : s.dependencies) deps.emplace_back(d);
    boost::json::object o{
        {"name", s.component}, {"critical", s.critical}, {"dependencies", std::move(deps)}, {"outcome", s.outcome}};
    // Integer microseconds: exact, and readable where Boost.JSON would print doubles as 5.17E1.
    auto us = [](double ms) { return static_cast<int64_t>(ms * 1000.0); };
    if (s.start_ms >= 0) o["start_us"] = us(s.start_ms);
    if (s.end_ms >= 0) {
      o["end_us"] = us(s.end_ms);
      o["duration_us"] = us(s.end_ms) - us(s.start_ms);
    }
    if (!s.error.empty()) o["error"] = s.error;
    comps.emplace_back(std::move(o));
  }
  boost::json::array evs;
  for (const auto& e : events_) {
    evs.emplace_back(boost::json::object{
        {"at_us", static_cast<int64_t>(e.at_ms * 1000.0)}, {"component", e.component}, {"event", e.what}});
  }
  boost::json::object root{{"finished", finished_}, {"components", std::move(comps)}, {"events", std::move(evs)}};
  if (finished_) {
    root["ok"] = ok_;
    root["total_us"] = static_cast<int64_t>(total_ms_ * 1000.0);
  }
  return root;
}

std::string StartupTrace::toTable() const {
  std::lock_guard lock(mutex_);
  std::string out = fmt::format("{:<16} {:>9} {:>9} {:>9}  {:<9} {}\n", "component", "start_ms", "end_ms", "took_ms",
                                "outcome", "depends on");
  for (const auto& s : spans_) {
    std::string deps;
    for (const auto& d : s.dependencies) deps += (deps.empty() ? "" : ",") + d;
    out += fmt::format("{:<16} {:>9.2f} {:>9.2f} {:>9.2f}  {:<9} {}{}\n", s.component, s.start_ms, s.end_ms,
                       s.end_ms >= 0 ? s.end_ms - s.start_ms : 0.0, s.outcome, deps.empty() ? "-" : deps,
                       s.error.empty() ? "" : "  (" + s.error + ")");
  }
  if (finished_) out += fmt::format("startup {} in {:.2f} ms", ok_ ? "ready" : "FAILED", total_ms_);
  return out;
}

}  // namespace agentwire::lifecycle
