#pragma once

#include "app/wiring.hpp"
#include "health/probes.hpp"
#include "monitoring/metrics.hpp"

namespace agentwire::app {

// The gateway's metrics, read at scrape time from what the components already count.
class StartupHistory;

void registerGatewayMetrics(monitoring::MetricsEndpoint& m, const Components& c, lifecycle::Registry& registry,
                            const health::Probes& probes, const StartupHistory& history);
// The analytics pipeline's series (ClickHouse up, queue, spool, rows by kind, drops).
void addAnalyticsMetrics(std::vector<monitoring::Family>& out, const analytics::AnalyticsComponent& a);
// The Redis bus's series (live, published, failures, notices received and dropped, reconnects).
void addBusMetrics(std::vector<monitoring::Family>& out, const bus::RedisBus& b);

}  // namespace agentwire::app
