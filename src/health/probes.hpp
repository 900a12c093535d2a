#pragma once

#include "lifecycle/registry.hpp"
#include "net/http_types.hpp"

namespace agentwire::health {

// The Kubernetes-style probes, computed from the registry. Thread-safe; cheap.
//
// Ready means: startup finished successfully, shutdown has not begun, and every critical
// component is healthy. Optional components that are degraded are listed but do not fail it.
class Probes {
 public:
  explicit Probes(lifecycle::Registry& registry);

  bool isReady() const;

  net::HttpReply live() const;     // GET /health/live
  net::HttpReply ready() const;    // GET /health/ready
  net::HttpReply startup() const;  // GET /health/startup
  net::HttpReply overall() const;  // GET /health

 private:
  lifecycle::Registry& registry_;
};

}  // namespace agentwire::health
