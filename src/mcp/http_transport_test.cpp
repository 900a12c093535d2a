#include "mcp/http_transport.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::mcp {
namespace {

// A loopback HTTP/1.1 server that answers each request with what `answer` returns (a whole response,
// status line to body) and closes the connection. Requests are recorded. For the transport's unit
// tests only: the transport is tested against real MCP servers through the binary as well.
class ScriptedServer {
 public:
  struct Request {
    std::string method;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
  };
  using Answer = std::function<std::string(const Request&)>;

  explicit ScriptedServer(Answer answer) : answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stopping_ = true;
    thread_.join();
    close(fd_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/mcp"; }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // Waits until `pred(requests)` holds (at most 10 s: a test that waits longer fails on its check).
  bool waitFor(const std::function<bool(const std::vector<Request>&)>& pred) const {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return pred(requests_); });
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handle(c);
      close(c);
    }
  }
  void handle(int c) {
    std::string in;
    char buf[4096];
    std::size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) return;
      in.append(buf, static_cast<std::size_t>(n));
      head_end = in.find("\r\n\r\n");
    }
    Request r;
    std::size_t line_end = in.find("\r\n");
    r.method = in.substr(0, in.find(' '));
    for (std::size_t pos = line_end + 2; pos < head_end;) {
      std::size_t eol = in.find("\r\n", pos);
      std::string line = in.substr(pos, eol - pos);
      auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
      pos = eol + 2;
    }
    std::size_t length = r.headers.count("content-length") > 0 ? std::stoul(r.headers["content-length"]) : 0;
    r.body = in.substr(head_end + 4);
    while (r.body.size() < length) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) return;
      r.body.append(buf, static_cast<std::size_t>(n));
    }
    std::string out = answer_(r);
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(r);
    }
    cv_.notify_all();
    for (std::size_t sent = 0; sent < out.size();) {
      ssize_t n = write(c, out.data() + sent, out.size() - sent);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }

  Answer answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::vector<Request> requests_;
};

std::string response(int status, const std::string& type, const std::string& body,
                     const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra_headers + "\r\n" +
         body;
}

// What the transport hands to its session, and how it ended.
struct Received {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> lines;
  std::string exit;

  StdioProcess::Callbacks callbacks() {
    return {[this](std::string line) {
              std::lock_guard lock(mutex);
              lines.push_back(std::move(line));
              cv.notify_all();
            },
            [](const std::string&) {},
            [this](const std::string& how) {
              std::lock_guard lock(mutex);
              exit = how;
              cv.notify_all();
            }};
  }
  bool waitLines(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return lines.size() >= n; });
  }
  bool waitExit() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return !exit.empty(); });
  }
};

TEST(HttpTransportTest, JsonAndSseAnswersReachTheSessionAndTheSessionIdGoesBack) {
  ScriptedServer server([](const ScriptedServer::Request& r) {
    if (r.method == "GET") return response(405, "text/plain", "no stream");
    if (r.method == "DELETE") return response(200, "text/plain", "");
    if (r.body.find("\"initialize\"") != std::string::npos) {
      return response(200, "application/json", R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}})",
                      "Mcp-Session-Id: s-42\r\n");
    }
    if (r.body.find("notifications/") != std::string::npos) return response(202, "text/plain", "");
    // A call answered as an SSE stream: a progress notification, then the result.
    return response(200, "text/event-stream",
                    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
                    "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"ok\":true}}\n\n");
  });
  Received got;
  {
    HttpTransport t(HttpSpec{server.url(), {{"X-Test", "yes"}}}, got.callbacks());
    ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})"));
    ASSERT_TRUE(got.waitLines(1));
    ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
    ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}})"));
    ASSERT_TRUE(got.waitLines(3));
    {
      std::lock_guard lock(got.mutex);
      EXPECT_NE(got.lines[1].find("notifications/progress"), std::string::npos) << "in the stream's order";
      EXPECT_NE(got.lines[2].find(R"("ok":true)"), std::string::npos);
    }
    auto reqs = server.requests();
    ASSERT_GE(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].headers.count("mcp-session-id"), 0u);
    EXPECT_EQ(reqs[0].headers["x-test"], "yes");
    EXPECT_EQ(reqs[0].headers["accept"], "application/json, text/event-stream");
    for (std::size_t i = 1; i < reqs.size(); ++i) {
      EXPECT_EQ(reqs[i].headers["mcp-session-id"], "s-42") << i;
      EXPECT_EQ(reqs[i].headers["mcp-protocol-version"], "2025-06-18") << i;
    }
  }  // destroyed: stopped, and the session ended with a DELETE
  ASSERT_TRUE(server.waitFor([](const auto& reqs) {
    return !reqs.empty() && reqs.back().method == "DELETE" && reqs.back().headers.count("mcp-session-id") > 0;
  }));
  std::lock_guard lock(got.mutex);
  EXPECT_TRUE(got.exit.empty()) << "a stop is not an exit: " << got.exit;
}

TEST(HttpTransportTest, ARefusedRequestFailsThatCallAndALostSessionEndsTheTransport) {
  std::atomic<int> calls{0};
  ScriptedServer server([&](const ScriptedServer::Request& r) {
    if (r.method != "POST") return response(405, "text/plain", "");
    if (r.body.find("\"initialize\"") != std::string::npos) {
      return response(200, "application/json", R"({"jsonrpc":"2.0","id":1,"result":{}})", "Mcp-Session-Id: s-1\r\n");
    }
    // The first call is refused; the second finds the session forgotten (the server restarted).
    return ++calls == 1 ? response(500, "text/plain", "overloaded") : response(404, "text/plain", "no session");
  });
  Received got;
  HttpTransport t(HttpSpec{server.url(), {}}, got.callbacks());
  ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})"));
  ASSERT_TRUE(got.waitLines(1));
  ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}})"));
  ASSERT_TRUE(got.waitLines(2));
  {
    std::lock_guard lock(got.mutex);
    EXPECT_NE(got.lines[1].find(R"("id":2)"), std::string::npos) << got.lines[1];
    EXPECT_NE(got.lines[1].find("HTTP 500: overloaded"), std::string::npos) << got.lines[1];
    EXPECT_TRUE(got.exit.empty()) << "a refused request ends only its call";
  }
  ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}})"));
  ASSERT_TRUE(got.waitExit());
  ASSERT_TRUE(got.waitLines(3));
  std::lock_guard lock(got.mutex);
  EXPECT_NE(got.exit.find("forgot the session (HTTP 404)"), std::string::npos) << got.exit;
  EXPECT_NE(got.lines[2].find(R"("id":3)"), std::string::npos) << "the call still gets an answer";
  EXPECT_FALSE(t.writeLine(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}})")) << "ended";
}

TEST(HttpTransportTest, AnUnreachableServerAnswersTheCallAndEndsTheTransport) {
  // A port bound but not listening: connecting is refused, and no other process can take the port.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  Received got;
  HttpTransport t(HttpSpec{"http://127.0.0.1:" + std::to_string(port) + "/mcp", {}}, got.callbacks());
  ASSERT_TRUE(t.writeLine(R"({"jsonrpc":"2.0","id":7,"method":"initialize","params":{}})"));
  ASSERT_TRUE(got.waitExit());
  ASSERT_TRUE(got.waitLines(1));
  std::lock_guard lock(got.mutex);
  EXPECT_NE(got.lines[0].find(R"("id":7)"), std::string::npos);
  EXPECT_NE(got.lines[0].find("error"), std::string::npos);
  EXPECT_NE(got.exit.find("cannot reach"), std::string::npos) << got.exit;
  close(fd);
}

}  // namespace
}  // namespace agentwire::mcp
