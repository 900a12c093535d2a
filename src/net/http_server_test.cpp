#include "net/http_server.hpp"

#include "net/beast.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::net {
namespace {

// Reads one response to `request` until the server closes the connection.
std::string exchange(uint16_t port, const std::string& request) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(socket, asio::buffer(request));
  std::string out;
  beast::error_code ec;
  char buf[16384];
  for (;;) {
    std::size_t n = socket.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  return out;
}

// A streamed body written from another thread and closed right after its last write: everything
// written before close() reaches the client, then the connection ends. (The close was once decided
// from a flag the producer sets at once, so a write completing on the strand could end the stream
// while the producer's last writes were still waiting to be queued: found as AG-UI streams cut
// short after their first events.)
TEST(HttpServerStream, EverythingWrittenBeforeCloseIsSent) {
  constexpr int kChunks = 8;
  HttpServer::Options options;
  options.port = 0;
  HttpServer server(options);
  std::mutex producers_mutex;
  std::vector<std::thread> producers;
  struct Joiner {  // also when an assertion returns early: no joinable thread is destroyed
    HttpServer& server;
    std::mutex& mutex;
    std::vector<std::thread>& threads;
    ~Joiner() {
      server.stop();
      std::lock_guard lock(mutex);
      for (auto& t : threads) t.join();
    }
  } joiner{server, producers_mutex, producers};
  server.route("GET", "/stream", [&](const HttpRequest&) {
    HttpReply reply{200, "text/plain", {}, {}, {}, {}};
    reply.stream = [&](const std::shared_ptr<StreamWriter>& out) {
      std::lock_guard lock(producers_mutex);
      producers.emplace_back([out] {
        // Two bursts, as a run's commits come: the second (with the close) lands at varying
        // moments of the first one's write, which is where the race was.
        static std::atomic<int> gap_us{0};
        auto gap = std::chrono::microseconds(gap_us.fetch_add(7) % 200);
        for (int i = 0; i < kChunks; ++i) {
          if (i == kChunks / 2) {
            auto until = std::chrono::steady_clock::now() + gap;
            while (std::chrono::steady_clock::now() < until) {
            }
          }
          out->write(std::make_shared<const std::string>(fmt::format("{}\n", i)));
        }
        out->close();
      });
    };
    return reply;
  });
  server.start();
  for (int round = 0; round < 3000; ++round) {
    std::string response = exchange(server.port(), "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    auto body_at = response.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    std::string expected;
    for (int i = 0; i < kChunks; ++i) expected += fmt::format("{}\n", i);
    ASSERT_EQ(response.substr(body_at + 4), expected) << "round " << round;
    std::lock_guard lock(producers_mutex);  // the producer called close(): it is done
    for (auto& t : producers) t.join();
    producers.clear();
  }
}

}  // namespace
}  // namespace agentwire::net
