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

// A client that leaves in the middle of a busy stream: the stream ends (its producer's writes are
// refused from then on) and nothing is touched after the end, whatever was in flight (a write that
// completed after the end once read the cleared queue: UBSan in CI).
TEST(HttpServerStream, AClientThatLeavesMidStreamEndsIt) {
  HttpServer::Options options;
  options.port = 0;
  HttpServer server(options);
  std::mutex producers_mutex;
  std::vector<std::thread> producers;
  std::atomic<int> ended{0};
  server.route("GET", "/stream", [&](const HttpRequest&) {
    HttpReply reply{200, "text/plain", {}, {}, {}, {}};
    reply.stream = [&](const std::shared_ptr<StreamWriter>& out) {
      out->onClosed([&ended] { ++ended; });
      out->keepAlive(std::chrono::milliseconds(1), ": k\n\n", std::chrono::milliseconds(60000));
      std::lock_guard lock(producers_mutex);
      producers.emplace_back([out] {
        auto chunk = std::make_shared<const std::string>(std::string(512, 'x'));
        for (int i = 0; i < 200000 && out->write(chunk); ++i) {
        }
      });
    };
    return reply;
  });
  server.start();
  constexpr int kRounds = 50;
  for (int round = 0; round < kRounds; ++round) {
    asio::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
    asio::write(socket, asio::buffer(std::string("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")));
    char buf[4096];
    std::size_t got = 0;
    while (got < 8192) got += socket.read_some(asio::buffer(buf));
    socket.close();  // mid-stream
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ended.load() < kRounds && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ended.load(), kRounds) << "every stream ended when its client left";
  std::lock_guard lock(producers_mutex);
  for (auto& t : producers) t.join();  // each stopped once its writes were refused
  server.stop();
}

}  // namespace
}  // namespace agentwire::net
