#include "gateway/message_router.hpp"

#include "core/logging.hpp"

#include <fmt/format.h>

#include <mutex>
#include <stdexcept>

namespace agentwire::gateway {

MessageRouter::MessageRouter(lifecycle::StartupTrace& trace, HandlerRegistrar registrar,
                             std::vector<std::string> dependencies)
    : Component("message_handlers", std::move(dependencies)),
      trace_(trace),
      registrar_(std::move(registrar)),
      log_(core::logger("router")) {}

void MessageRouter::start() {
  if (registrar_) registrar_(*this);
  auto n = handlerCount();
  trace_.recordEvent(name(), fmt::format("handlers_registered count={}", n));
  if (n == 0) throw std::runtime_error("no message handlers were registered");
  std::string types;
  for (const auto& t : handlerTypes()) types += (types.empty() ? "" : ", ") + t;
  log_->info("registered {} message handlers: {}", n, types);
}

void MessageRouter::stop() {}

void MessageRouter::addHandler(const std::string& type, Handler handler) {
  std::unique_lock lock(mutex_);
  handlers_[type] = std::move(handler);
}

std::size_t MessageRouter::handlerCount() const {
  std::shared_lock lock(mutex_);
  return handlers_.size();
}

std::vector<std::string> MessageRouter::handlerTypes() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [t, h] : handlers_) out.push_back(t);
  return out;
}

void MessageRouter::route(const ClientContext& ctx, std::string_view text) const {
  auto frame = parseFrame(text);
  if (!frame) {
    sendError(*ctx.conn, frame.error().code, frame.error().message, "");
    return;
  }
  dispatch(ctx, frame.value());
}

void MessageRouter::dispatch(const ClientContext& ctx, const Frame& frame) const {
  Handler h;
  {
    std::shared_lock lock(mutex_);
    auto it = handlers_.find(frame.type);
    if (it != handlers_.end()) h = it->second;
  }
  if (!h) {
    sendError(*ctx.conn, "unknown_type", fmt::format("unknown message type '{}'", frame.type), frame.id);
    return;
  }
  try {
    h(ctx, frame);
  } catch (const std::exception& e) {
    log_->error("handler '{}' failed for user '{}' connection '{}': {}", frame.type, ctx.user_id, ctx.conn->id(),
                e.what());
    sendError(*ctx.conn, "internal", "internal error", frame.id);
  }
}

}  // namespace agentwire::gateway
