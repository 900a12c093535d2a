#pragma once

#include "core/config.hpp"
#include "lifecycle/registry.hpp"
#include "monitoring/alert_monitor.hpp"

namespace agentwire::store {
class Store;
}
namespace agentwire::delivery {
class Delivery;
}
namespace agentwire::gateway {
class MessageRouter;
class WsGateway;
}  // namespace agentwire::gateway
namespace agentwire::agents {
class AgentWebSocketBridge;
}
namespace agentwire::health {
class SelfCheck;
}
namespace agentwire::analytics {
class AnalyticsComponent;
}
namespace agentwire::monitoring {
class AlertMonitor;
}

namespace agentwire::bus {
class RedisBus;
}

namespace agentwire::mcp {
class McpServer;
}

namespace agentwire::app {

// The components of a gateway, owned by the registry; references for wiring the HTTP routes.
struct Components {
  store::Store& store;  // SqliteStore or PostgresStore (store.backend), the component named "store"
  delivery::Delivery& delivery;
  gateway::MessageRouter& router;
  agents::AgentWebSocketBridge& bridge;
  health::SelfCheck& self_check;
  gateway::WsGateway& ws_gateway;
  analytics::AnalyticsComponent& analytics;
  monitoring::AlertMonitor& alerts;
  bus::RedisBus* redis_bus = nullptr;             // the component named "bus" (bus.backend = redis), or none
  std::vector<mcp::McpServer*> mcp_servers = {};  // the components named mcp_<name>
};

// Registers the default component graph, which realises the expected working state:
//   config -> store -> delivery -> message_handlers -> analytics -> agent_bridge -> self_check -> ws_gateway
// Handlers are registered (message_handlers.start) before anything counts them (self_check).
// Also adds alert_monitor (depends on config only, so it watches startup as well).
Components buildDefaultGraph(lifecycle::Registry& registry, const core::Config& config);

// The in-process twins of deploy/prometheus/alerts.yml.
std::vector<monitoring::AlertRule> defaultAlertRules(lifecycle::Registry& registry, gateway::MessageRouter& router,
                                                     delivery::Delivery& delivery, agents::AgentWebSocketBridge& bridge,
                                                     gateway::WsGateway& ws_gateway,
                                                     analytics::AnalyticsComponent& analytics,
                                                     bus::RedisBus* redis = nullptr);

}  // namespace agentwire::app
