#include "gateway/ws_gateway.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"
#include "core/version.hpp"
#include "delivery/delivery.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <optional>
#include <unordered_map>

namespace agentwire::gateway {

// Open connections per user, shared by the gateway and every connection's reservation.
struct WsGateway::UserSlots {
  std::mutex mutex;
  std::unordered_map<std::string, int> open;

  // Check and take in one step: parallel upgrades with one token cannot pass the limit together.
  bool take(const std::string& user, int limit) {
    std::lock_guard lock(mutex);
    int& n = open[user];
    if (n >= limit) {
      if (n == 0) open.erase(user);
      return false;
    }
    ++n;
    return true;
  }
  void give(const std::string& user) {
    std::lock_guard lock(mutex);
    auto it = open.find(user);
    if (it != open.end() && --it->second <= 0) open.erase(it);
  }
};

// Per-connection state, touched on the connection's strand (rate bucket) or atomically (held).
// It holds the connection's place under the per-user limit from admission (before the handshake)
// until the session is gone, whatever ends it.
struct WsGateway::ConnState {
  ConnState(std::shared_ptr<void> s, std::string user, double rate)
      : slot(std::move(s)), user_id(std::move(user)), bucket(rate) {}
  ConnState(const ConnState&) = delete;
  ConnState& operator=(const ConnState&) = delete;

  std::shared_ptr<void> slot;  // from holdConnectionSlot()
  std::string user_id;
  std::optional<int64_t> resume_from;  // from /ws?last_seq=N&epoch=E
  std::string resume_epoch;
  std::atomic<bool> held{true};
  TokenBucket bucket;
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
  // Frames handed to the store pool and not finished yet; while any are, the connection's later
  // frames follow them there, so its frames are handled in the order they came.
  std::shared_ptr<core::SerialPool::Lane> lane = core::SerialPool::lane();
  std::atomic<int> offloaded{0};
  // open() (on the store pool) and onClose() (on the connection's strand) may run in either order;
  // whichever sees both flags set undoes the registration, once.
  std::atomic<bool> attached{false};
  std::atomic<bool> closed{false};
  std::atomic<bool> forgotten{false};
};

WsGateway::WsGateway(const core::Config& config, MessageRouter& router, delivery::Delivery& delivery,
                     std::vector<std::string> dependencies)
    : Component("ws_gateway", std::move(dependencies)),
      config_(config),
      router_(router),
      delivery_(delivery),
      log_(core::logger("ws")),
      slots_(std::make_shared<UserSlots>()),
      api_limiter_(config.ws.max_messages_per_second),
      // PostgreSQL: as many as its connections, so that a slow query does not queue the others.
      store_work_(
          config.store.backend == "postgres" ? static_cast<std::size_t>(std::max(2, config.store.pool_size)) : 2,
          "aw-store") {}

WsGateway::~WsGateway() {
  stop();
}

net::WsLimits WsGateway::limits() const {
  return net::WsLimits{
      static_cast<std::size_t>(config_.ws.max_message_bytes), static_cast<std::size_t>(config_.ws.max_queue_messages),
      static_cast<std::size_t>(config_.ws.max_queue_bytes), config_.ws.idle_timeout_ms, config_.ws.send_timeout_ms};
}

void WsGateway::start() {
  std::string secret = config_.auth.secret;
  if (secret.empty()) {
    // Config validation guarantees we are on loopback here.
    if (config_.dataDir().empty()) {
      secret = newDevSecret();
      log_->warn(
          "auth.secret is not set: using a development secret kept in memory (loopback only; the store is "
          "in memory too)");
    } else {
      secret = loadOrCreateDevSecret((std::filesystem::path(config_.dataDir()) / "dev-secret").string());
      log_->warn("auth.secret is not set: using a development secret kept beside the store (loopback only)");
    }
  }
  authority_ = std::make_unique<TokenAuthority>(secret);
  store_work_.start();
  {
    std::lock_guard lock(mutex_);
    sweeping_ = true;
  }
  sweeper_ = std::thread([this] {
    core::setThreadName("aw-ws-sweep");
    sweepLoop();
  });
  accepting_ = true;
}

void WsGateway::stop() {
  if (!accepting_.exchange(false) && !sweeper_.joinable()) return;
  std::vector<std::shared_ptr<net::WsConnection>> open;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, w] : sessions_) {
      if (auto c = w.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->closeAfterFlush(net::close_code::kServiceRestart, "service restart");
  open.clear();
  std::unique_lock lock(mutex_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.server.drain_timeout_ms);
  bool drained = cv_.wait_until(lock, deadline, [&] { return sessions_.empty(); });
  if (!drained) log_->warn("{} connections still open after the drain timeout", sessions_.size());
  sweeping_ = false;
  lock.unlock();
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  store_work_.stop();  // what was handed to it runs first: no accepted frame is dropped
}

void WsGateway::countClose(int code) {
  // Codes a client chooses must not become unbounded label values: anything not of the protocol
  // is counted as 0 ("other"). No close frame at all is 1006.
  static constexpr int kKnown[] = {1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 4001, 4002};
  if (code == 0) code = 1006;
  if (std::find(std::begin(kKnown), std::end(kKnown), code) == std::end(kKnown)) code = 0;
  std::lock_guard lock(counts_mutex_);
  ++closes_[code];
}

bool WsGateway::allowApiCall(const std::string& user_id) {
  return api_limiter_.allow(user_id);
}

void WsGateway::countError(const std::string& code) {
  std::lock_guard lock(counts_mutex_);
  ++errors_[code];
}

std::map<std::string, uint64_t> WsGateway::errorsByCode() const {
  std::lock_guard lock(counts_mutex_);
  return errors_;
}

std::map<int, uint64_t> WsGateway::closesByCode() const {
  std::lock_guard lock(counts_mutex_);
  return closes_;
}

std::size_t WsGateway::openConnections() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

net::WsAdmission WsGateway::admit(const net::HttpRequest& req) {
  net::WsAdmission a = decide(req);
  if (!a.accepted) countClose(a.close_code);  // the session closes it right after the handshake
  return a;
}

net::WsAdmission WsGateway::decide(const net::HttpRequest& req) {
  net::WsAdmission a;
  if (!accepting_.load() || !authority_) {
    a.close_code = net::close_code::kServiceRestart;
    a.close_reason = "not_ready";
    return a;
  }
  auto token = extractToken(req);
  if (!token) {
    a.close_reason = "missing_token: send Authorization: Bearer <jwt> or subprotocol jwt.<jwt>";
    return a;
  }
  if (token->via_subprotocol) {
    // Browsers fail the handshake unless the answer is one of the offered protocols: answer
    // "jwt-auth" when offered (the documented way), else echo the token's own entry.
    auto offered = req.header("sec-websocket-protocol");
    a.subprotocol = offered.find("jwt-auth") != std::string::npos ? "jwt-auth" : "jwt." + token->token;
  }
  if (config_.devModeEnabled()) {
    // Dev mode trusts loopback; a page from elsewhere (DNS rebinding) must not ride on that.
    auto origin = req.header("origin");
    if (!origin.empty() && !loopbackOrigin(origin)) {
      a.close_reason = "forbidden_origin: dev mode accepts WebSocket connections from loopback pages only";
      return a;
    }
  }
  auto user = authority_->verify(token->token);
  if (!user) {
    a.close_reason = user.error().code + ": " + user.error().message;
    return a;
  }
  auto slot = holdConnectionSlot(user.value());
  if (!slot) {
    a.close_code = net::close_code::kConnectionLimit;
    a.close_reason =
        fmt::format("connection_limit: at most {} connections per user", config_.ws.max_connections_per_user);
    return a;
  }
  a.accepted = true;
  a.user_id = user.value();
  auto state = std::make_shared<ConnState>(std::move(slot), user.value(), config_.ws.max_messages_per_second);
  // Resume at connect time: /ws?last_seq=N&epoch=E
  if (auto it = req.query.find("last_seq"); it != req.query.end()) {
    int64_t v = -1;
    auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec == std::errc{} && p == it->second.data() + it->second.size()) state->resume_from = v;
    if (auto e = req.query.find("epoch"); e != req.query.end()) state->resume_epoch = e->second;
  }
  a.attachment = std::move(state);
  return a;
}

void WsGateway::onOpen(const std::shared_ptr<net::WsConnection>& conn) {
  // Attaching reads the user's stream: on the store pool, with the connection's frames queued
  // behind it (offloaded > 0), so that a slow or hung database never holds this I/O thread.
  if (!onLane(conn, [this, conn] { open(conn); })) {
    conn->closeAfterFlush(net::close_code::kServiceRestart, "service restart");
  }
}

bool WsGateway::onLane(const std::shared_ptr<net::WsConnection>& conn, std::function<void()> task) {
  auto* state = conn->attachment<ConnState>();
  ++state->offloaded;
  bool posted = store_work_.post(state->lane, [conn, task = std::move(task)] {
    task();
    --conn->attachment<ConnState>()->offloaded;
  });
  if (!posted) --state->offloaded;
  return posted;
}

boost::json::object WsGateway::establishedData(const std::string& user_id, const std::string& connection_id,
                                               const store::StreamInfo& info) const {
  return {{"user_id", user_id},
          {"connection_id", connection_id},
          {"epoch", info.epoch},
          {"last_seq", info.last_seq},
          {"server_version", core::kVersion},
          {"resume_window_ms", config_.ws.resume_window_ms}};
}

std::shared_ptr<void> WsGateway::holdConnectionSlot(const std::string& user_id) {
  struct Held {
    std::shared_ptr<UserSlots> slots;
    std::string user;
    ~Held() { slots->give(user); }
  };
  if (!slots_->take(user_id, config_.ws.max_connections_per_user)) return nullptr;
  return std::shared_ptr<Held>(new Held{slots_, user_id});  // no temporary: its destructor gives
}

void WsGateway::forget(net::WsConnection& conn) {
  auto* state = conn.attachment<ConnState>();
  if (state->forgotten.exchange(true)) return;
  delivery_.detach(conn);
  std::lock_guard lock(mutex_);
  sessions_.erase(conn.id());
  held_.erase(conn.id());
}

void WsGateway::open(const std::shared_ptr<net::WsConnection>& conn) {
  auto* state = conn->attachment<ConnState>();
  if (state->closed.load()) return;
  if (!accepting_.load()) {  // stopping: the drain has already told the open connections
    conn->closeAfterFlush(net::close_code::kServiceRestart, "service restart");
    return;
  }
  auto attached = delivery_.attach(conn, false);
  if (!attached) {
    log_->warn("connection '{}' of user '{}' refused: {}", conn->id(), conn->userId(), attached.error().message);
    conn->closeAfterFlush(net::close_code::kTryAgainLater, "unavailable: the stream cannot be read right now");
    return;
  }
  const auto& info = *attached;
  {
    std::lock_guard lock(mutex_);
    sessions_[conn->id()] = conn;
    if (!state->resume_from) {
      held_[conn->id()] = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.ws.resume_window_ms);
    }
  }
  state->attached = true;
  if (state->closed.load()) {  // closed while attaching: onClose found nothing to undo
    forget(*conn);
    cv_.notify_all();
    return;
  }
  sendReply(*conn, "connection_established", "", establishedData(conn->userId(), conn->id(), info));
  if (state->resume_from && state->held.exchange(false)) {
    // Same frames as a `resume` frame, before anything else can reach this connection.
    router_.dispatch(ClientContext{conn, state->user_id},
                     Frame{"resume", "connect", {{"last_seq", *state->resume_from}, {"epoch", state->resume_epoch}}});
  }
  log_->debug("connection '{}' of user '{}' opened (last_seq {})", conn->id(), conn->userId(), info.last_seq);
  ++opened_;
  if (recorder_->enabled()) {
    analytics::Record r;
    r.kind = "connection_opened";
    r.user_id = conn->userId();
    r.connection_id = conn->id();
    r.seq = info.last_seq;
    recorder_->record(std::move(r));
  }
}

void WsGateway::onMessage(const std::shared_ptr<net::WsConnection>& conn, std::string_view payload, bool is_text) {
  auto* state = conn->attachment<ConnState>();
  // Replies go out in the order of the frames: while earlier frames wait on the store pool, an
  // error for this one waits behind them on the same lane.
  auto refuse = [&](std::string code, std::string message, std::string ref) {
    if (state->offloaded.load() == 0) return sendError(*conn, code, message, ref);
    onLane(conn, [conn, code = std::move(code), message = std::move(message), ref = std::move(ref)] {
      sendError(*conn, code, message, ref);
    });
  };
  if (!is_text) return refuse("invalid_json", "binary frames are not supported; send JSON text", "");
  std::string ref;
  auto frame = parseFrame(payload, &ref);

  // Token bucket: max_messages_per_second, with a burst of the same size.
  if (!state->bucket.take()) {
    return refuse("rate_limited",
                  fmt::format("more than {} messages per second; this message was not processed",
                              config_.ws.max_messages_per_second),
                  std::move(ref));
  }
  if (!frame) return refuse(frame.error().code, frame.error().message, std::move(ref));

  if (state->held.exchange(false)) {
    {
      std::lock_guard lock(mutex_);
      held_.erase(conn->id());
    }
    // Catching up reads the stream: on the store pool, after the attach (same lane), and counted
    // as pending so that this frame and the next follow it: what was appended while the
    // connection was held goes out before the reply to its first frame.
    if (frame->type != "resume") onLane(conn, [this, conn] { delivery_.goLive(*conn); });
  }
  if (!mayBlock(*frame) && state->offloaded.load() == 0) {
    return router_.dispatch(ClientContext{conn, state->user_id}, frame.value());
  }
  // May wait on the store (a read, a new thread, a lookup the cache cannot answer): on the store
  // pool, so that this I/O thread goes on serving its other connections meanwhile.
  bool posted = onLane(conn, [this, conn, f = std::move(frame.value())] {
    router_.dispatch(ClientContext{conn, conn->attachment<ConnState>()->user_id}, f);
  });
  if (!posted) sendError(*conn, "not_ready", "the server is shutting down; this message was not processed", ref);
}

bool WsGateway::mayBlock(const Frame& frame) const {
  const auto& t = frame.type;
  if (t == "create_thread" || t == "list_threads" || t == "get_thread_history" || t == "resume" || t == "stop_agent" ||
      t == "get_run" || t == "approve_tool" || t == "list_approvals" || t == "list_runs" || t == "rename_thread" ||
      t == "delete_thread") {
    return true;
  }
  if (t != "user_message") return false;
  // Without a thread one is created; with one, its owner comes from the cache or the store.
  auto* thread = frame.data.if_contains("thread_id");
  if (thread == nullptr || thread->is_null()) return true;  // a new thread is created
  if (!thread->is_string()) return false;                   // refused at once: invalid_field
  if (thread->as_string().empty()) return true;
  return !delivery_.threadCached(std::string(thread->as_string()));
}

void WsGateway::onDrain(const std::shared_ptr<net::WsConnection>& conn) {
  // A replay's next step reads the stream: on the store pool. Nothing to do unless replaying.
  if (!conn->replaying.load()) return;
  store_work_.post(conn->attachment<ConnState>()->lane, [this, conn] { delivery_.pump(*conn); });
}

void WsGateway::onClose(net::WsConnection& conn, int code) {
  auto* state = conn.attachment<ConnState>();
  state->closed = true;
  if (state->attached.load()) forget(conn);  // else open() undoes its own registration, or never makes it
  cv_.notify_all();
  log_->debug("connection '{}' of user '{}' closed ({})", conn.id(), conn.userId(), code);
  countClose(code);
  if (recorder_->enabled()) {
    analytics::Record r;
    r.kind = "connection_closed";
    r.user_id = conn.userId();
    r.connection_id = conn.id();
    r.code = code;
    if (auto* state = conn.attachment<ConnState>()) {
      r.duration_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - state->opened)
              .count();
    }
    recorder_->record(std::move(r));
  }
}

void WsGateway::sweepLoop() {
  std::unique_lock lock(mutex_);
  while (sweeping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<net::WsConnection>> due;
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      auto s = sessions_.find(it->first);
      if (s != sessions_.end()) {
        if (auto c = s->second.lock()) due.push_back(std::move(c));
      }
      it = held_.erase(it);
    }
    lock.unlock();
    for (auto& c : due) {
      if (c->attachment<ConnState>()->held.exchange(false)) delivery_.goLive(*c);
    }
    lock.lock();
  }
}

}  // namespace agentwire::gateway
