#include "net/http_server.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"
#include "net/beast.hpp"
#include "net/request_parse.hpp"
#include "net/ws_session.hpp"

#include <boost/url/parse.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <deque>
#include <map>
#include <mutex>
#include <set>

namespace agentwire::net {
namespace {

struct Route {
  std::string method;
  std::string path;
  bool prefix;
  HttpHandler handler;
};

}  // namespace

class Session;

// Logs a repeated condition at most once per interval, with how many were left out.
class Throttled {
 public:
  template <typename... Args>
  void warn(spdlog::logger& log, fmt::format_string<Args...> f, Args&&... args) {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    if (now < next_) {
      ++suppressed_;
      return;
    }
    std::string text = fmt::format(f, std::forward<Args>(args)...);
    if (suppressed_ > 0) text += fmt::format(" ({} more like this since the last report)", suppressed_);
    log.warn("{}", text);
    suppressed_ = 0;
    next_ = now + std::chrono::seconds(10);
  }

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point next_{};
  uint64_t suppressed_ = 0;
};

struct HttpServer::Impl {
  Options options;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  asio::steady_timer accept_timer{ioc};
  std::chrono::milliseconds accept_backoff{0};
  std::vector<Route> routes;
  UpgradeGate upgrade_gate;
  WsHandler* ws_handler = nullptr;
  WsLimits ws_limits;
  std::vector<std::thread> threads;
  std::shared_ptr<spdlog::logger> log = core::logger("http");
  Counters counters;
  Throttled accept_warnings;
  Throttled cap_warnings;
  mutable std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;  // closed on stop()

  // Open HTTP connections, in all and per address. Shared with the connections' slots: a session
  // destroyed with the io_context's pending handlers may outlive the rest of Impl.
  struct Caps {
    std::mutex mutex;
    std::size_t total = 0;
    std::map<asio::ip::address, std::size_t> per_ip;
  };
  std::shared_ptr<Caps> caps = std::make_shared<Caps>();

  explicit Impl(Options o) : options(std::move(o)) {}

  HttpReply dispatch(const HttpRequest& req) const;
  void doAccept();
  // Takes a slot for an HTTP connection from `ip`; false over either cap.
  bool takeSlot(const asio::ip::address& ip);
};

// An HTTP connection's place under the caps, given back when the connection ends or upgrades.
class Slot {
 public:
  Slot(std::shared_ptr<HttpServer::Impl::Caps> caps, asio::ip::address ip)
      : caps_(std::move(caps)), ip_(std::move(ip)) {}
  ~Slot() { release(); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  void release() {
    if (!caps_) return;
    std::lock_guard lock(caps_->mutex);
    --caps_->total;
    auto it = caps_->per_ip.find(ip_);
    if (it != caps_->per_ip.end() && --it->second == 0) caps_->per_ip.erase(it);
    caps_.reset();
  }

 private:
  std::shared_ptr<HttpServer::Impl::Caps> caps_;
  asio::ip::address ip_;
};

bool HttpServer::Impl::takeSlot(const asio::ip::address& ip) {
  std::lock_guard lock(caps->mutex);
  auto& n = caps->per_ip[ip];
  if (caps->total >= options.max_http_connections || n >= options.max_http_connections_per_ip) {
    if (n == 0) caps->per_ip.erase(ip);
    return false;
  }
  ++n;
  ++caps->total;
  return true;
}

// A streamed response body after the headers: raw writes, one in flight, closed by the producer.
// Close-delimited (no Content-Length), which HTTP/1.1 allows and SSE clients expect. Everything but
// the producer's calls runs on the connection's strand.
class StreamSession final : public StreamWriter, public std::enable_shared_from_this<StreamSession> {
 public:
  explicit StreamSession(beast::tcp_stream&& s) : stream_(std::move(s)), keepalive_timer_(stream_.get_executor()) {}

  // Watches the socket for the peer going away (a client of a stream sends nothing after its
  // request), so that an idle stream ends when its client leaves, not at its next write.
  void start() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->watchPeer(); });
  }

  bool write(std::shared_ptr<const std::string> data) override {
    if (closed_.load()) return false;
    queued_chunks_.fetch_add(1, std::memory_order_relaxed);
    queued_bytes_.fetch_add(data->size(), std::memory_order_relaxed);
    asio::post(stream_.get_executor(), [self = shared_from_this(), d = std::move(data)]() mutable {
      if (self->done_) return;
      self->queue_.push_back(std::move(d));
      if (self->queue_.size() == 1) {
        self->progress_ = std::chrono::steady_clock::now();
        self->doWrite();
      }
    });
    return true;
  }
  void close() override {
    if (closed_.exchange(true)) return;
    // Ordered on the strand behind the writes posted before it: the end is decided there, not
    // from closed_, which the producer sets while its last writes may still be waiting to queue.
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      if (self->queue_.empty()) self->finish();
    });
  }
  void abort() override {
    closed_ = true;
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->finish(); });
  }
  void onClosed(std::function<void()> fn) override { on_closed_ = std::move(fn); }
  std::size_t queuedChunks() const override { return queued_chunks_.load(std::memory_order_relaxed); }
  std::size_t queuedBytes() const override { return queued_bytes_.load(std::memory_order_relaxed); }
  void whenDrained(std::function<void()> fn) override {
    // Behind the writes posted before it, like close().
    asio::post(stream_.get_executor(), [self = shared_from_this(), fn = std::move(fn)]() mutable {
      if (self->done_) return;
      if (self->queue_.empty()) return fn();
      self->drained_.push_back(std::move(fn));
    });
  }
  void keepAlive(std::chrono::milliseconds every, std::string text, std::chrono::milliseconds stall) override {
    asio::post(stream_.get_executor(), [self = shared_from_this(), every, stall, t = std::move(text)]() mutable {
      self->keepalive_every_ = every;
      self->stall_ = stall;
      self->keepalive_text_ = std::make_shared<const std::string>(std::move(t));
      self->armKeepAlive();
    });
  }

 private:
  void doWrite() {
    asio::async_write(stream_, asio::buffer(*queue_.front()),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        // Ended meanwhile (the peer left, a stall, abort()): the queue is gone, even
                        // when this write itself completed.
                        if (self->done_) return;
                        if (ec) {
                          self->closed_ = true;
                          return self->finish();
                        }
                        self->queued_chunks_.fetch_sub(1, std::memory_order_relaxed);
                        self->queued_bytes_.fetch_sub(self->queue_.front()->size(), std::memory_order_relaxed);
                        self->queue_.pop_front();
                        self->last_write_ = self->progress_ = std::chrono::steady_clock::now();
                        if (!self->queue_.empty()) return self->doWrite();
                        if (self->closing_) return self->finish();
                        auto drained = std::move(self->drained_);
                        self->drained_.clear();
                        for (auto& fn : drained) fn();
                      });
  }
  void watchPeer() {
    if (done_) return;
    stream_.socket().async_read_some(asio::buffer(peer_buf_),
                                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                       if (self->done_) return;
                                       if (ec) {  // EOF or reset: the client is gone
                                         self->closed_ = true;
                                         return self->finish();
                                       }
                                       self->watchPeer();  // whatever it sent is ignored
                                     });
  }
  void armKeepAlive() {
    if (done_ || keepalive_every_.count() <= 0) return;
    keepalive_timer_.expires_after(std::max(std::chrono::milliseconds(10), std::min(keepalive_every_, stall_ / 2)));
    keepalive_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      auto now = std::chrono::steady_clock::now();
      if (!self->queue_.empty() && now - self->progress_ >= self->stall_) {
        core::logger("http")->warn(
            "a streamed response made no progress for {} ms (the client stopped reading); "
            "closing it",
            self->stall_.count());
        self->closed_ = true;
        return self->finish();
      }
      // Only a stream idle for the whole interval gets one.
      if (self->queue_.empty() && now - self->last_write_ >= self->keepalive_every_) {
        self->queue_.push_back(self->keepalive_text_);
        self->queued_chunks_.fetch_add(1, std::memory_order_relaxed);
        self->queued_bytes_.fetch_add(self->keepalive_text_->size(), std::memory_order_relaxed);
        self->doWrite();
      }
      self->armKeepAlive();
    });
  }
  void finish() {
    if (done_) return;
    done_ = true;
    queue_.clear();
    drained_.clear();
    keepalive_timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    if (auto fn = std::move(on_closed_)) fn();
  }

  beast::tcp_stream stream_;
  asio::steady_timer keepalive_timer_;
  std::chrono::milliseconds keepalive_every_{0};
  std::chrono::milliseconds stall_{30000};
  std::chrono::steady_clock::time_point progress_;  // last write completed, or the queue's first write
  std::shared_ptr<const std::string> keepalive_text_;
  std::chrono::steady_clock::time_point last_write_ = std::chrono::steady_clock::now();
  std::function<void()> on_closed_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::vector<std::function<void()>> drained_;
  std::array<char, 512> peer_buf_{};
  std::atomic<std::size_t> queued_chunks_{0};
  std::atomic<std::size_t> queued_bytes_{0};
  std::atomic<bool> closed_{false};  // no more writes are taken (any thread)
  bool closing_ = false;             // on the strand: finish once the queue is written
  bool done_ = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server, asio::ip::address ip)
      : stream_(std::move(socket)), server_(server), slot_(server.caps, std::move(ip)) {}

  void run() {
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::doRead, shared_from_this()));
  }

  void close() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    });
  }

 private:
  void doRead() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    stream_.expires_after(server_.options.request_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::onRead, shared_from_this()));
  }

  void onRead(beast::error_code ec, std::size_t) {
    if (ec == beast::error::timeout) {
      // Started a request and did not finish it in time (slowloris), or idle past the keep-alive.
      if (buffer_.size() > 0 || parser_->got_some()) ++server_.counters.request_timeouts;
      return finish();
    }
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return finish();
    }
    if (ec) {
      // A malformed request gets a 400 rather than a silent close.
      ++server_.counters.bad_requests;
      if (ec == http::error::body_limit) {
        return writeReply(jsonError(413, "too_large", "request body too large"), false);
      }
      server_.log->debug("http read error: {}", ec.message());
      return writeReply(jsonError(400, "bad_request", ec.message()), false);
    }
    auto& msg = parser_->get();
    if (auto problem = framingProblem(msg)) {
      ++server_.counters.bad_requests;
      buffer_.clear();  // whatever followed is not read as a request
      return writeReply(jsonError(400, "bad_request", "ambiguous message framing: " + *problem), false);
    }
    bool keep_alive = msg.keep_alive();
    bool upgrade = websocket::is_upgrade(msg);
    auto parsed = toHttpRequest(msg);
    if (!parsed) return writeReply(jsonError(400, "bad_request", parsed.error().message), false);
    HttpRequest& req = *parsed;

    if (upgrade) {
      HttpReply refusal =
          server_.upgrade_gate ? server_.upgrade_gate(req) : jsonError(404, "not_found", "no WebSocket endpoint");
      if (refusal.status != 0) return writeReply(std::move(refusal), false);
      if (server_.ws_handler == nullptr) {
        return writeReply(jsonError(501, "not_implemented", "WebSocket gateway not available"), false);
      }
      WsAdmission admission = server_.ws_handler->admit(req);
      {
        std::lock_guard lock(server_.sessions_mutex);
        server_.sessions.erase(shared_from_this());
      }
      slot_.release();  // a WebSocket now, under the gateway's limits
      startWsSession(std::move(stream_), parser_->release(), std::move(admission), *server_.ws_handler,
                     server_.ws_limits);
      return;
    }
    writeReply(server_.dispatch(req), keep_alive);
  }

  void startStream(HttpReply r) {
    auto res = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(r.status), 11);
    res->set(http::field::server, "agentwire");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set(http::field::connection, "close");
    for (auto& [k, v] : r.headers) res->set(k, v);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_never();
    http::async_write_header(
        stream_, *sr,
        [self = shared_from_this(), res, sr, cb = std::move(r.stream)](beast::error_code ec, std::size_t) {
          if (ec) return self->finish();
          {
            std::lock_guard lock(self->server_.sessions_mutex);
            self->server_.sessions.erase(self);
          }
          auto writer = std::make_shared<StreamSession>(std::move(self->stream_));
          writer->start();
          cb(writer);
        });
  }

  void deferReply(HttpReply r, bool keep_alive) {
    struct Pending {
      std::atomic<bool> answered{false};
      std::unique_ptr<asio::steady_timer> timer;
    };
    auto pending = std::make_shared<Pending>();
    pending->timer = std::make_unique<asio::steady_timer>(stream_.get_executor(), server_.options.deferred_timeout);
    auto self = shared_from_this();
    pending->timer->async_wait([self, pending](beast::error_code ec) {
      if (ec || pending->answered.exchange(true)) return;
      self->writeReply(jsonError(504, "timeout", "no answer in time"), false);
    });
    stream_.expires_never();  // nothing is read while the answer is pending
    r.deferred([self, pending, keep_alive](HttpReply reply) {
      if (pending->answered.exchange(true)) return;
      asio::post(self->stream_.get_executor(), [self, pending, keep_alive, reply = std::move(reply)]() mutable {
        pending->timer->cancel();
        self->writeReply(std::move(reply), keep_alive);
      });
    });
  }

  void writeReply(HttpReply r, bool keep_alive) {
    if (r.deferred) return deferReply(std::move(r), keep_alive);
    if (r.stream) return startStream(std::move(r));
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
    res->set(http::field::server, "agentwire");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
      if (ec || !keep_alive) return self->finish();
      self->doRead();
    });
  }

  void finish() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::lock_guard lock(server_.sessions_mutex);
    server_.sessions.erase(shared_from_this());
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpServer::Impl& server_;
  Slot slot_;
};

HttpReply HttpServer::Impl::dispatch(const HttpRequest& req) const {
  const Route* best = nullptr;
  std::set<std::string> allowed;
  for (const auto& r : routes) {
    bool match = r.prefix ? req.path.rfind(r.path, 0) == 0 : req.path == r.path;
    if (!match) continue;
    allowed.insert(r.method);
    if (r.method == "GET") allowed.insert("HEAD");
    if (r.method != req.method && !(r.method == "GET" && req.method == "HEAD")) continue;
    if (best == nullptr || r.path.size() > best->path.size()) best = &r;
  }
  if (best == nullptr) {
    if (allowed.empty()) return jsonError(404, "not_found", "no such endpoint: " + req.path);
    auto reply = jsonError(405, "method_not_allowed", "method not allowed");
    reply.headers.emplace_back("Allow", fmt::format("{}", fmt::join(allowed, ", ")));
    return reply;
  }
  try {
    return best->handler(req);
  } catch (const std::exception& e) {
    log->error("handler for {} {} threw: {}", req.method, req.path, e.what());
    return jsonError(500, "internal", "internal error");
  }
}

void HttpServer::Impl::doAccept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors (or memory): accepting again at once would spin. Back off, and
      // say so once per interval, not once per attempt.
      ++counters.accept_errors;
      accept_backoff = std::clamp(accept_backoff * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
      accept_warnings.warn(*log, "accept failed: {}; retrying in {} ms", ec.message(), accept_backoff.count());
      accept_timer.expires_after(accept_backoff);
      accept_timer.async_wait([this](beast::error_code tec) {
        if (!tec && acceptor.is_open()) doAccept();
      });
      return;
    }
    accept_backoff = std::chrono::milliseconds(0);
    beast::error_code ep_ec;
    auto ip = socket.remote_endpoint(ep_ec).address();
    if (ep_ec || !takeSlot(ip)) {
      ++counters.refused_over_cap;
      cap_warnings.warn(*log,
                        "connection from {} refused: over the cap of open HTTP connections ({} per address, {} in all)",
                        ip.to_string(), options.max_http_connections_per_ip, options.max_http_connections);
      socket.close(ep_ec);
      return doAccept();
    }
    // Small frames must not wait for Nagle + delayed ACK (a 40 ms stall per burst).
    beast::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto s = std::make_shared<Session>(std::move(socket), *this, ip);
    {
      std::lock_guard lock(sessions_mutex);
      sessions.insert(s);
    }
    s->run();
    doAccept();
  });
}

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler, bool prefix) {
  impl_->routes.push_back(Route{method, path, prefix, std::move(handler)});
}

void HttpServer::setUpgradeGate(UpgradeGate gate) {
  impl_->upgrade_gate = std::move(gate);
}

void HttpServer::setWsHandler(WsHandler* handler, WsLimits limits) {
  impl_->ws_handler = handler;
  impl_->ws_limits = limits;
}

void HttpServer::start() {
  auto& im = *impl_;
  beast::error_code ec;
  auto address = asio::ip::make_address(im.options.host == "localhost" ? "127.0.0.1" : im.options.host, ec);
  if (ec) throw std::runtime_error(fmt::format("invalid listen address '{}': {}", im.options.host, ec.message()));
  tcp::endpoint ep{address, im.options.port};
  im.acceptor.open(ep.protocol(), ec);
  if (!ec) im.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor.bind(ep, ec);
  if (!ec) im.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", im.options.host, im.options.port, ec.message()));
  }
  bound_port_ = im.acceptor.local_endpoint().port();
  im.work.emplace(im.ioc.get_executor());
  im.doAccept();
  for (int i = 0; i < im.options.threads; ++i) {
    im.threads.emplace_back([&im, i] {
      core::setThreadName("aw-io-" + std::to_string(i));
      im.ioc.run();
    });
  }
}

void HttpServer::stopAccepting() {
  asio::post(impl_->ioc, [&im = *impl_] {
    beast::error_code ec;
    im.acceptor.close(ec);
    im.accept_timer.cancel();
  });
}

const HttpServer::Counters& HttpServer::counters() const {
  return impl_->counters;
}

std::size_t HttpServer::openConnections() const {
  std::lock_guard lock(impl_->sessions_mutex);
  return impl_->sessions.size();
}

void HttpServer::stop() {
  auto& im = *impl_;
  if (im.threads.empty()) return;
  stopAccepting();
  {
    std::lock_guard lock(im.sessions_mutex);
    for (const auto& s : im.sessions) s->close();
  }
  im.work.reset();
  im.ioc.stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  std::lock_guard lock(im.sessions_mutex);
  im.sessions.clear();
}

}  // namespace agentwire::net
