// libFuzzer: frames routed through the real handlers of the default component graph (SQLite in a
// temporary directory, delivery, the agent bridge with the echo agent). Every input must leave the
// process and the connection up; replies are JSON objects.
#include "app/wiring.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"
#include "delivery/in_process_connection.hpp"
#include "gateway/frame.hpp"
#include "gateway/message_router.hpp"
#include "lifecycle/registry.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace {

struct Graph {
  agentwire::core::Config cfg;
  agentwire::lifecycle::StartupTrace trace;
  agentwire::lifecycle::Registry registry{trace};
  std::unique_ptr<agentwire::app::Components> c;

  Graph() {
    char tmpl[] = "/tmp/aw-fuzz-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    cfg.store.path = dir + "/agentwire.db";
    cfg.log.level = "off";
    cfg.agents.max_queued_per_user = 1000000;
    agentwire::core::setLogLevel("off");
    c = std::make_unique<agentwire::app::Components>(agentwire::app::buildDefaultGraph(registry, cfg));
    if (!registry.startAll().ok) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Graph g;
  auto conn = std::make_shared<agentwire::delivery::InProcessConnection>("fuzz-conn", "fuzzer");
  g.c->router.route(agentwire::gateway::ClientContext{conn, "fuzzer"},
                    std::string_view(reinterpret_cast<const char*>(data), size));
  for (const auto& f : conn->frames()) {
    if (f.at("type").as_string() == "invalid_frame") std::abort();  // a reply that is not a JSON object
  }
  return 0;
}
