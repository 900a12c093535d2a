#include "health/probes.hpp"

#include "core/version.hpp"

#include <boost/json.hpp>

namespace agentwire::health {
namespace {

using lifecycle::HealthState;

boost::json::object componentJson(const lifecycle::Component& c) {
  auto h = c.health();
  boost::json::object o{{"name", c.name()}, {"state", std::string(toString(h.state))}, {"critical", c.critical()}};
  if (!h.reason.empty()) o["reason"] = h.reason;
  if (auto d = c.details(); !d.empty()) o["details"] = std::move(d);
  return o;
}

}  // namespace

Probes::Probes(lifecycle::Registry& registry) : registry_(registry) {}

bool Probes::isReady() const {
  if (registry_.phase() != lifecycle::Phase::Running || registry_.shuttingDown()) return false;
  for (const auto& c : registry_.components()) {
    if (c->critical() && c->health().state != HealthState::Healthy) return false;
  }
  return true;
}

net::HttpReply Probes::live() const {
  return net::jsonReply(200, boost::json::object{{"status", "alive"}, {"version", core::kVersion}});
}

net::HttpReply Probes::ready() const {
  boost::json::array not_ready;
  boost::json::array degraded;
  for (const auto& c : registry_.components()) {
    auto h = c->health();
    if (c->critical() && h.state != HealthState::Healthy) {
      not_ready.emplace_back(componentJson(*c));
    } else if (!c->critical() && h.state != HealthState::Healthy) {
      degraded.emplace_back(componentJson(*c));
    }
  }
  bool ready = isReady();
  boost::json::object body{{"ready", ready},
                           {"phase", std::string(toString(registry_.phase()))},
                           {"shutting_down", registry_.shuttingDown()},
                           {"not_ready", std::move(not_ready)},
                           {"degraded", std::move(degraded)}};
  auto reply = net::jsonReply(ready ? 200 : 503, body);
  if (!ready) reply.headers.emplace_back("Retry-After", "1");
  return reply;
}

net::HttpReply Probes::startup() const {
  return net::jsonReply(200, registry_.trace().toJson());
}

net::HttpReply Probes::overall() const {
  boost::json::array comps;
  bool any_degraded = false;
  for (const auto& c : registry_.components()) {
    if (c->health().state != HealthState::Healthy) any_degraded = true;
    comps.emplace_back(componentJson(*c));
  }
  bool ready = isReady();
  std::string status = !ready ? "unavailable" : any_degraded ? "degraded" : "healthy";
  boost::json::object body{{"status", status},
                           {"ready", ready},
                           {"phase", std::string(toString(registry_.phase()))},
                           {"version", core::kVersion},
                           {"components", std::move(comps)}};
  return net::jsonReply(ready ? 200 : 503, body);
}

}  // namespace agentwire::health
