#include "app/probe.hpp"

#include "gateway/auth.hpp"
#include "net/ws_client.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <chrono>
#include <cstdio>

namespace agentwire::app {
namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "probe FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int runProbe(const ProbeOptions& o) {
  auto url = boost::urls::parse_uri(o.url);
  if (!url || (url->scheme() != "ws" && url->scheme() != "http")) return fail("expected ws://host:port, got " + o.url);
  std::string host(url->host());
  std::string port = url->has_port() ? std::string(url->port()) : "80";
  std::string path = url->path().empty() || url->path() == "/" ? "/ws" : std::string(url->path());
  auto timeout = std::chrono::milliseconds(o.timeout_ms);
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };

  std::string token = o.token;
  if (token.empty() && !o.secret.empty()) {
    token = gateway::TokenAuthority(o.secret).issue(o.user, std::chrono::minutes(5));
  }
  if (token.empty()) {
    auto body = net::WsClient::httpGet(host, port, "/auth/dev-token?user=" + o.user, timeout);
    if (!body) return fail("no token given and no dev token: " + body.error().message);
    token = std::string(boost::json::parse(*body).at("token").as_string());
  }

  net::WsClient ws;
  auto c = ws.connect(host, port, path, {{"Authorization", "Bearer " + token}}, timeout);
  if (!c) return fail("hop listener: " + c.error().message);
  auto first = ws.receive(timeout);
  if (!first) return fail("hop auth: " + first.error().message);
  if (boost::json::parse(*first).at("type").as_string() != "connection_established") {
    return fail("hop auth: first frame is not connection_established: " + *first);
  }
  boost::json::object msg{{"type", "user_message"},
                          {"id", "probe"},
                          {"data", boost::json::object{{"content", "agentwire probe"}, {"agent", "echo"}}}};
  if (auto s = ws.send(boost::json::serialize(msg), timeout); !s) return fail("hop send: " + s.error().message);

  const std::vector<std::string> expected = {
      "ack", "agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"};
  std::size_t want = 0;
  std::string run_id;
  std::vector<std::string> timings;
  while (want < expected.size()) {
    auto f = ws.receive(timeout);
    if (!f) return fail(fmt::format("no '{}' ({})", expected[want], f.error().message));
    auto v = boost::json::parse(*f).as_object();
    std::string type(v.at("type").as_string());
    if (type == "error" || type == "agent_error") return fail("got " + *f);
    if (type == "ack") run_id = std::string(v.at("data").at("run_id").as_string());
    if (type != "ack" && type != "connection_established") {
      auto* rid = v.if_contains("run_id");
      if (rid == nullptr || rid->as_string() != run_id) continue;  // another run of this user
    }
    if (type == expected[want]) {
      timings.push_back(fmt::format("{} {:.1f}ms", type, ms()));
      ++want;
    } else if (type != "agent_response_chunk") {
      return fail(fmt::format("expected '{}', got '{}'", expected[want], type));
    }
  }
  ws.close();
  std::printf("probe OK: %s\n", fmt::format("{}", fmt::join(timings, ", ")).c_str());
  return 0;
}

}  // namespace agentwire::app
