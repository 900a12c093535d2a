#pragma once

#include "gateway/frame.hpp"
#include "lifecycle/component.hpp"
#include "lifecycle/startup_trace.hpp"

#include <spdlog/logger.h>

#include <functional>
#include <map>
#include <shared_mutex>

namespace agentwire::gateway {

using Handler = std::function<void(const ClientContext&, const Frame&)>;

class MessageRouter;
// Called from start(): registers the handlers. Kept separate so the router knows no handler.
using HandlerRegistrar = std::function<void(MessageRouter&)>;

// Maps frame types to handlers. A component ("message_handlers"): its start() registers every
// handler, so anything that depends on it finds them registered. A router with zero handlers
// refuses to start and never reports healthy.
//
// route() is thread-safe and never throws: every failure becomes an `error` frame on the
// connection, which stays open.
class MessageRouter final : public lifecycle::Component {
 public:
  MessageRouter(lifecycle::StartupTrace& trace, HandlerRegistrar registrar, std::vector<std::string> dependencies);

  void start() override;
  void stop() override;

  void addHandler(const std::string& type, Handler handler);
  std::size_t handlerCount() const;
  std::vector<std::string> handlerTypes() const;

  void route(const ClientContext& ctx, std::string_view text) const;
  void dispatch(const ClientContext& ctx, const Frame& frame) const;

 private:
  lifecycle::StartupTrace& trace_;
  HandlerRegistrar registrar_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, Handler> handlers_;
};

}  // namespace agentwire::gateway
