#include "net/ws_client.hpp"

#include "net/beast.hpp"

#include <fmt/format.h>

namespace agentwire::net {
namespace {

// Runs the io_context until `done` or the timeout; on timeout the stream is closed, which
// completes the pending operation with an error.
template <typename Stream>
bool runFor(asio::io_context& ioc, Stream& lowest, bool& done, std::chrono::milliseconds timeout) {
  ioc.restart();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_for(deadline - std::chrono::steady_clock::now());
  }
  if (!done) {
    beast::error_code ec;
    lowest.socket().close(ec);
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(100));
    return false;
  }
  return true;
}

}  // namespace

struct WsClient::Impl {
  asio::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
};

WsClient::WsClient() : impl_(std::make_unique<Impl>()) {}
WsClient::~WsClient() = default;

core::Result<std::string> WsClient::httpGet(const std::string& host, const std::string& port, const std::string& target,
                                            std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto results = resolver.resolve(host, port, ec);
  if (ec) return core::Error{"connect", fmt::format("cannot resolve {}: {}", host, ec.message())};
  stream.expires_after(timeout);
  stream.connect(results, ec);
  if (ec) return core::Error{"connect", fmt::format("cannot connect to {}:{}: {}", host, port, ec.message())};
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  http::write(stream, req, ec);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  if (!ec) http::read(stream, buf, res, ec);
  if (ec) return core::Error{"http", fmt::format("GET {}: {}", target, ec.message())};
  if (res.result_int() != 200) {
    return core::Error{"http", fmt::format("GET {} answered {}: {}", target, res.result_int(), res.body())};
  }
  return res.body();
}

core::Result<bool> WsClient::connect(const std::string& host, const std::string& port, const std::string& target,
                                     const std::map<std::string, std::string>& headers,
                                     std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  tcp::resolver resolver(im.ioc);
  beast::error_code ec;
  auto results = resolver.resolve(host, port, ec);
  if (ec) return core::Error{"connect", fmt::format("cannot resolve {}: {}", host, ec.message())};
  auto& lowest = beast::get_lowest_layer(im.ws);
  lowest.expires_after(timeout);
  lowest.connect(results, ec);
  if (ec) return core::Error{"connect", fmt::format("cannot connect to {}:{}: {}", host, port, ec.message())};
  lowest.expires_never();
  lowest.socket().set_option(tcp::no_delay(true), ec);
  im.ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  bool done = false;
  im.ws.async_handshake(host, target, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (!runFor(im.ioc, lowest, done, timeout)) return core::Error{"handshake", "WebSocket handshake timed out"};
  if (ec) return core::Error{"handshake", fmt::format("WebSocket handshake failed: {}", ec.message())};
  return true;
}

core::Result<bool> WsClient::send(const std::string& text, std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  bool done = false;
  beast::error_code ec;
  im.ws.text(true);
  im.ws.async_write(asio::buffer(text), [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!runFor(im.ioc, beast::get_lowest_layer(im.ws), done, timeout)) return core::Error{"send", "send timed out"};
  if (ec) return core::Error{"send", ec.message()};
  return true;
}

core::Result<std::string> WsClient::receive(std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  bool done = false;
  beast::error_code ec;
  im.buffer.clear();
  im.ws.async_read(im.buffer, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!runFor(im.ioc, beast::get_lowest_layer(im.ws), done, timeout)) {
    return core::Error{"timeout", "no frame within the timeout"};
  }
  if (ec) {
    auto reason = im.ws.reason();
    return core::Error{"closed", fmt::format("{} (close code {} {})", ec.message(), static_cast<int>(reason.code),
                                             std::string(reason.reason.c_str()))};
  }
  return beast::buffers_to_string(im.buffer.cdata());
}

void WsClient::close() {
  auto& im = *impl_;
  if (!im.ws.is_open()) return;
  bool done = false;
  im.ws.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
  runFor(im.ioc, beast::get_lowest_layer(im.ws), done, std::chrono::seconds(2));
}

}  // namespace agentwire::net
