// agentwire's load tool: N authenticated WebSocket connections over the same Beast stack.
//
//   loadgen --mode chat --url ws://127.0.0.1:PORT --secret-file DIR/dev-secret -c 1000 -d 20
//       each connection (one user each) loops user_message -> agent_completed; reports runs/s,
//       events/s and the latency from sending user_message to each of the agent events.
//   loadgen --mode echo --url ws://127.0.0.1:PORT -c 100 -d 20 --message-bytes 200
//       against bench/echo_server: echoes/s and round-trip percentiles (the baseline).
//   loadgen --mode idle --url ws://127.0.0.1:PORT --secret-file ... -c 10000 -d 10 --server-pid PID
//       opens N connections and holds them; reports the server's RSS per connection.
//   loadgen --mode chat --url ws://A --url ws://B --url ws://C --watch ...
//       several nodes: connection i goes to url i mod N; with --watch each user also has a second
//       connection on the next node, and the latency to agent_completed there (cross-node delivery)
//       is reported too; a user sends its next message once both connections saw the run end.
// With --server-pid it also reads the server's CPU time (utime+stime) over the measured window
// and reports CPU per delivered event (chat) or per echoed frame (echo).
#include "gateway/auth.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/url/parse.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string mode = "chat";
  std::vector<std::string> urls;
  bool watch = false;
  std::string secret_file;
  int connections = 100;
  double duration_s = 10;
  double warmup_s = 2;
  int message_bytes = 200;
  int think_ms = 0;
  std::string arrivals = "lockstep";  // lockstep: think_ms after each answer; poisson: exponential think time
  int sources = 1;
  std::vector<int> server_pids;
  std::string json_out;
  std::string timeline_out;
};

const std::array<const char*, 7> kEvents = {"ack",
                                            "agent_started",
                                            "agent_thinking",
                                            "tool_executing",
                                            "tool_completed",
                                            "agent_response_chunk",
                                            "agent_completed"};

struct Stats {
  std::array<std::vector<double>, kEvents.size()> latency_us;
  std::vector<double> rtt_us;
  std::vector<double> cross_us;  // user_message -> agent_completed on the user's other node (--watch)
  // Per run: send time on CLOCK_MONOTONIC (as `perf record -k CLOCK_MONOTONIC` stamps samples),
  // then the latency to each of kEvents, in µs (--timeline)
  std::vector<std::array<double, 8>> completed;
  uint64_t events = 0;  // frames with a seq received inside the window
  uint64_t runs = 0;
  uint64_t echoes = 0;
  uint64_t errors = 0;
  int connected = 0;
  int failed = 0;
};

struct Target {
  tcp::resolver::results_type endpoints;
  std::string host;
  std::string path;
};

struct Shared {
  Options opt;
  asio::io_context& ioc;
  std::vector<Target> targets;
  std::unique_ptr<agentwire::gateway::TokenAuthority> authority;
  Stats stats;
  bool measuring = false;
  bool stopping = false;
};

// Reads {"type":"X" at the start of a frame without a JSON parse (the client must stay cheap).
std::string_view frameType(std::string_view f) {
  constexpr std::string_view kPrefix = R"({"type":")";
  if (f.substr(0, kPrefix.size()) != kPrefix) return {};
  auto end = f.find('"', kPrefix.size());
  return end == std::string_view::npos ? std::string_view{} : f.substr(kPrefix.size(), end - kPrefix.size());
}

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  // One io_context thread runs every handler, so a watcher may call into its primary directly.
  Conn(Shared& s, int index, std::size_t target, std::shared_ptr<Conn> primary = nullptr)
      : s_(s),
        index_(index),
        target_(target % s.targets.size()),
        primary_(std::move(primary)),
        ws_(asio::make_strand(s.ioc)),
        timer_(ws_.get_executor()) {}

  void start() {
    auto& sock = beast::get_lowest_layer(ws_).socket();
    beast::error_code ec;
    if (s_.opt.sources > 1) {
      // Spread connections over 127.0.0.x source addresses: one address has ~28k ephemeral ports.
      auto src = asio::ip::make_address_v4("127.0.0." + std::to_string(1 + index_ % s_.opt.sources));
      sock.open(tcp::v4(), ec);
      sock.bind(tcp::endpoint(src, 0), ec);
    }
    beast::get_lowest_layer(ws_).async_connect(
        s_.targets[target_].endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->fail("connect", ec);
          beast::error_code e2;
          beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true), e2);
          self->handshake();
        });
  }

 private:
  void handshake() {
    if (s_.authority) {
      std::string token = s_.authority->issue(fmt::format("load{}", index_), std::chrono::hours(2));
      ws_.set_option(websocket::stream_base::decorator(
          [token](websocket::request_type& r) { r.set(beast::http::field::authorization, "Bearer " + token); }));
    }
    ws_.async_handshake(s_.targets[target_].host, s_.targets[target_].path,
                        [self = shared_from_this()](beast::error_code ec) {
                          if (ec) return self->fail("handshake", ec);
                          ++self->s_.stats.connected;
                          if (self->s_.opt.mode == "echo") {
                            self->first();
                          } else {
                            self->established_ = false;
                          }
                          self->doRead();
                        });
  }

  void doRead() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail("read", ec);
      self->onFrame();
      self->buf_.consume(self->buf_.size());
      if (!self->s_.stopping) self->doRead();
    });
  }

  void onFrame() {
    auto data = buf_.cdata();
    std::string_view f(static_cast<const char*>(data.data()), data.size());
    auto now = Clock::now();
    if (s_.opt.mode == "echo") {
      if (s_.measuring) {
        s_.stats.rtt_us.push_back(std::chrono::duration<double, std::micro>(now - sent_).count());
        ++s_.stats.echoes;
      }
      return next();
    }
    auto type = frameType(f);
    if (primary_) {  // the user's watcher on another node
      if (type == "connection_established") return sendPing();
      if (type == "pong") return primary_->watcherLive();
      if (s_.measuring && f.find(R"("seq":)") != std::string_view::npos) ++s_.stats.events;
      if (type == "agent_completed" || type == "agent_error") primary_->peerSawEnd(now);
      return;
    }
    if (type == "connection_established") {
      established_ = true;
      if (s_.opt.mode == "chat" && (!s_.opt.watch || watcher_live_)) first();
      if (s_.opt.mode == "idle") sendPing();  // first frame: live, not held
      return;
    }
    if (type == "error") {
      ++s_.stats.errors;
      // A refused message (rate_limited, unavailable) has no run: the user goes on with the next.
      if (s_.opt.mode == "chat" && f.find(fmt::format(R"("ref":"m{}")", seq_)) != std::string_view::npos) next();
      return;
    }
    if (s_.opt.mode != "chat") return;
    if (s_.measuring && f.find(R"("seq":)") != std::string_view::npos) ++s_.stats.events;
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      if (type == kEvents[i] && !seen_[i]) {
        seen_[i] = true;
        if (s_.measuring && run_in_window_) {
          s_.stats.latency_us[i].push_back(std::chrono::duration<double, std::micro>(now - sent_).count());
          run_[i + 1] = s_.stats.latency_us[i].back();
          if (i + 1 == kEvents.size() && !s_.opt.timeline_out.empty()) {
            run_[0] = std::chrono::duration<double, std::micro>(sent_.time_since_epoch()).count();
            s_.stats.completed.push_back(run_);
          }
        }
      }
    }
    if (type == "ack" && thread_id_.empty()) {
      auto p = f.find(R"("thread_id":")");
      if (p != std::string_view::npos) {
        p += 13;
        thread_id_ = std::string(f.substr(p, f.find('"', p) - p));
      }
    }
    if (type == "agent_completed" || type == "agent_error") {
      if (s_.measuring && run_in_window_) ++s_.stats.runs;
      if (--waiting_ends_ > 0) return;  // the watcher has not seen it yet
      next();
    }
  }

 public:
  // The watcher is live: runs from now on reach it, so the user may start.
  void watcherLive() {
    watcher_live_ = true;
    if (established_ && seq_ == 0) first();
  }
  void peerSawEnd(Clock::time_point now) {
    if (s_.measuring && run_in_window_) {
      s_.stats.cross_us.push_back(std::chrono::duration<double, std::micro>(now - sent_).count());
    }
    if (--waiting_ends_ == 0) next();
  }

 private:
  bool poisson() const { return s_.opt.arrivals == "poisson" && s_.opt.think_ms > 0; }

  // The first message (echo mode: frame): at once in lockstep (all users in step: bursts), after a
  // random offset within one mean think time with Poisson-like arrivals (users spread out: steady
  // load). Echo mode takes the same arrivals as chat mode, so that the echo's round-trip tail under
  // the same load is the baseline of the chat latency figures.
  void first() {
    if (!poisson()) return send();
    std::uniform_real_distribution<double> offset(0, s_.opt.think_ms * 1000.0);
    sendAfter(std::chrono::microseconds(static_cast<int64_t>(offset(rng_))));
  }

  void next() {
    if (poisson()) {
      // Exponential think time: the arrivals of many such users form a Poisson process.
      std::exponential_distribution<double> think(1.0 / (s_.opt.think_ms * 1000.0));
      sendAfter(std::chrono::microseconds(static_cast<int64_t>(think(rng_))));
    } else if (s_.opt.think_ms > 0) {
      sendAfter(std::chrono::milliseconds(s_.opt.think_ms));
    } else {
      send();
    }
  }

  void sendAfter(std::chrono::microseconds delay) {
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->send();
    });
  }

  void send() { s_.opt.mode == "echo" ? sendEcho() : sendMessage(); }

  void sendMessage() {
    if (s_.stopping) return;
    waiting_ends_ = s_.opt.watch ? 2 : 1;
    seen_.fill(false);
    run_in_window_ = s_.measuring;
    std::string thread = thread_id_.empty() ? "" : fmt::format(R"("thread_id":"{}",)", thread_id_);
    ++seq_;
    out_ = fmt::format(R"({{"type":"user_message","id":"m{}","data":{{{}"content":"load test message number {}"}}}})",
                       seq_, thread, seq_);
    sent_ = Clock::now();
    write();
  }

  void sendPing() {
    out_ = R"({"type":"ping","id":"p"})";
    write();
  }

  void sendEcho() {
    if (s_.stopping) return;
    if (out_.size() != static_cast<std::size_t>(s_.opt.message_bytes)) out_.assign(s_.opt.message_bytes, 'x');
    sent_ = Clock::now();
    write();
  }

  void write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(out_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) self->fail("write", ec);
    });
  }

  void fail(const char* what, beast::error_code ec) {
    if (s_.stopping) return;
    if (ec == asio::error::operation_aborted) return;
    if (++s_.stats.failed <= 5) std::fprintf(stderr, "connection %d: %s: %s\n", index_, what, ec.message().c_str());
  }

  Shared& s_;
  int index_;
  std::size_t target_;
  std::shared_ptr<Conn> primary_;  // set on a watcher
  int waiting_ends_ = 0;           // ends of the current run still to see (own, watcher's)
  bool watcher_live_ = false;
  websocket::stream<beast::tcp_stream> ws_;
  asio::steady_timer timer_;
  std::mt19937_64 rng_{0x5eed0000ULL + static_cast<uint64_t>(index_)};
  beast::flat_buffer buf_;
  std::string out_;
  std::string thread_id_;
  Clock::time_point sent_;
  std::array<bool, kEvents.size()> seen_{};
  std::array<double, kEvents.size() + 1> run_{};  // --timeline: this run's send time and latencies
  bool established_ = false;
  bool run_in_window_ = false;
  uint64_t seq_ = 0;
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
  return v[i];
}

// Time each CPU's hypervisor gave to other guests (the `steal` column of /proc/stat), in ms: a
// latency tail that coincides with steal is the host's, not the server's.
std::vector<double> stealMs() {
  std::ifstream f("/proc/stat");
  std::vector<double> out;
  std::string line;
  long hz = sysconf(_SC_CLK_TCK);
  while (std::getline(f, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] == ' ') continue;
    std::istringstream in(line);
    std::string name;
    unsigned long long v[8] = {};
    in >> name;
    for (auto& x : v) in >> x;
    out.push_back(static_cast<double>(v[7]) * 1000.0 / static_cast<double>(hz));
  }
  return out;
}

// utime+stime of a process in seconds, from /proc/PID/stat.
double cpuSeconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream in(s.substr(p + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long rssKb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"agentwire load tool"};
  app.add_option("--mode", o.mode, "chat, echo or idle")->check(CLI::IsMember({"chat", "echo", "idle"}));
  app.add_option("--url", o.urls, "ws://127.0.0.1:PORT[/ws]; repeat for several nodes")->required();
  app.add_flag("--watch", o.watch, "chat: a second connection per user on the next node (cross-node delivery)");
  app.add_option("--secret-file", o.secret_file, "HS256 secret (the server's dev-secret) to sign user tokens");
  app.add_option("-c,--connections", o.connections);
  app.add_option("-d,--duration", o.duration_s, "measured seconds");
  app.add_option("--warmup", o.warmup_s, "seconds before measuring");
  app.add_option("--message-bytes", o.message_bytes, "echo mode frame size");
  app.add_option("--think-ms", o.think_ms, "chat mode pause between runs (the mean with --arrivals poisson)");
  app.add_option("--arrivals", o.arrivals, "lockstep (a fixed think time keeps users in step: bursts) or poisson")
      ->check(CLI::IsMember({"lockstep", "poisson"}));
  app.add_option("--sources", o.sources, "spread over 127.0.0.1..N source addresses");
  app.add_option("--server-pid", o.server_pids, "measure this process's CPU and RSS (repeat: summed)");
  app.add_option("--json", o.json_out, "append a JSON line with the results to this file");
  app.add_option(
      "--timeline", o.timeline_out,
      "chat: one line per measured run: send time (ms, CLOCK_MONOTONIC), then the latency (ms) to each event");
  CLI11_PARSE(app, argc, argv);

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  asio::io_context ioc{1};
  Shared s{o, ioc, {}, {}, {}};
  for (const auto& u : o.urls) {
    auto url = boost::urls::parse_uri(u);
    if (!url) {
      std::fprintf(stderr, "bad --url %s\n", u.c_str());
      return 2;
    }
    s.targets.push_back(Target{tcp::resolver(ioc).resolve(std::string(url->host()), std::string(url->port())),
                               std::string(url->host()), url->path().empty() ? "/ws" : std::string(url->path())});
  }
  if (o.watch && o.mode != "chat") {
    std::fprintf(stderr, "--watch is for --mode chat\n");
    return 2;
  }
  auto cpuAll = [&] {
    double t = 0;
    for (int pid : o.server_pids) t += cpuSeconds(pid);
    return t;
  };
  auto rssAll = [&] {
    long t = 0;
    for (int pid : o.server_pids) t += rssKb(pid);
    return t;
  };
  const bool measure_server = !o.server_pids.empty();
  if (!o.secret_file.empty()) {
    std::ifstream f(o.secret_file);
    std::string secret;
    std::getline(f, secret);
    s.authority = std::make_unique<agentwire::gateway::TokenAuthority>(secret);
  }

  long rss_before = measure_server ? rssAll() : 0;
  std::vector<std::shared_ptr<Conn>> conns;
  conns.reserve(o.connections);
  // Open connections in waves so the accept backlog never overflows.
  auto t_connect = Clock::now();
  int opened = 0;
  while (opened < o.connections) {
    int wave = std::min(500, o.connections - opened);
    for (int i = 0; i < wave; ++i) {
      auto primary = std::make_shared<Conn>(s, opened + i, opened + i);
      conns.push_back(primary);
      if (o.watch) {
        conns.push_back(std::make_shared<Conn>(s, opened + i, opened + i + 1, primary));
        conns.back()->start();
      }
      primary->start();
    }
    opened += wave;
    int expected = o.watch ? 2 * opened : opened;
    while (s.stats.connected + s.stats.failed < expected) ioc.run_for(std::chrono::milliseconds(5));
  }
  double connect_s = std::chrono::duration<double>(Clock::now() - t_connect).count();
  std::fprintf(stderr, "%d connected, %d failed in %.2f s\n", s.stats.connected, s.stats.failed, connect_s);

  ioc.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(o.warmup_s)));
  double cpu0 = measure_server ? cpuAll() : 0;
  long rss_connected = measure_server ? rssAll() : 0;
  auto steal0 = stealMs();
  s.measuring = true;
  auto t0 = Clock::now();
  ioc.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(o.duration_s)));
  double window = std::chrono::duration<double>(Clock::now() - t0).count();
  s.measuring = false;
  double cpu = measure_server ? cpuAll() - cpu0 : 0;
  long rss_after = measure_server ? rssAll() : 0;
  s.stopping = true;
  auto steal = stealMs();
  std::string steal_json;
  for (std::size_t i = 0; i < steal.size() && i < steal0.size(); ++i) {
    steal_json += fmt::format("{}{:.0f}", i ? "," : "", steal[i] - steal0[i]);
  }
  std::printf("steal ms per CPU over the window: [%s]\n", steal_json.c_str());

  auto& st = s.stats;
  std::string json =
      fmt::format(R"({{"mode":"{}","connections":{},"connected":{},"failed":{},"window_s":{:.2f},"arrivals":"{}",)"
                  R"("think_ms":{})",
                  o.mode, o.connections, st.connected, st.failed, window, o.arrivals, o.think_ms);
  json += fmt::format(R"(,"steal_ms":[{}])", steal_json);
  if (o.mode == "chat") {
    std::printf("runs/s %.0f   events/s %.0f   errors %llu\n", st.runs / window, st.events / window,
                static_cast<unsigned long long>(st.errors));
    std::printf("%-22s %10s %10s %10s %10s %8s\n", "latency from send (ms)", "p50", "p95", "p99", "max", "n");
    json += fmt::format(R"(,"runs_per_s":{:.1f},"events_per_s":{:.1f},"latency_ms":{{)", st.runs / window,
                        st.events / window);
    for (std::size_t i = 0; i < kEvents.size(); ++i) {
      auto& v = st.latency_us[i];
      double p50 = pct(v, 50) / 1000, p95 = pct(v, 95) / 1000, p99 = pct(v, 99) / 1000, mx = pct(v, 100) / 1000;
      std::printf("%-22s %10.3f %10.3f %10.3f %10.3f %8zu\n", kEvents[i], p50, p95, p99, mx, v.size());
      json += fmt::format(R"({}"{}":{{"p50":{:.3f},"p95":{:.3f},"p99":{:.3f},"max":{:.3f},"n":{}}})", i ? "," : "",
                          kEvents[i], p50, p95, p99, mx, v.size());
    }
    if (o.watch) {
      auto& v = st.cross_us;
      double p50 = pct(v, 50) / 1000, p95 = pct(v, 95) / 1000, p99 = pct(v, 99) / 1000, mx = pct(v, 100) / 1000;
      std::printf("%-22s %10.3f %10.3f %10.3f %10.3f %8zu\n", "completed, other node", p50, p95, p99, mx, v.size());
      json +=
          fmt::format(R"(,"agent_completed_other_node":{{"p50":{:.3f},"p95":{:.3f},"p99":{:.3f},"max":{:.3f},"n":{}}})",
                      p50, p95, p99, mx, v.size());
    }
    json += "}";
    if (measure_server && st.events) {
      std::printf("server CPU %.2f s over the window = %.2f us per delivered event\n", cpu, cpu * 1e6 / st.events);
      json += fmt::format(R"(,"server_cpu_s":{:.3f},"cpu_us_per_event":{:.3f})", cpu, cpu * 1e6 / st.events);
    }
  } else if (o.mode == "echo") {
    auto& v = st.rtt_us;
    double p50 = pct(v, 50) / 1000, p95 = pct(v, 95) / 1000, p99 = pct(v, 99) / 1000, mx = pct(v, 100) / 1000;
    std::printf("echoes/s %.0f   rtt p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  max %.3f ms\n", st.echoes / window, p50,
                p95, p99, mx);
    json += fmt::format(R"(,"echoes_per_s":{:.1f},"rtt_ms":{{"p50":{:.3f},"p95":{:.3f},"p99":{:.3f},"max":{:.3f}}})",
                        st.echoes / window, p50, p95, p99, mx);
    if (measure_server && st.echoes) {
      std::printf("server CPU %.2f s over the window = %.2f us per echoed frame\n", cpu, cpu * 1e6 / st.echoes);
      json += fmt::format(R"(,"server_cpu_s":{:.3f},"cpu_us_per_echo":{:.3f})", cpu, cpu * 1e6 / st.echoes);
    }
  } else if (measure_server) {
    double per = st.connected ? (rss_connected - rss_before) * 1024.0 / st.connected : 0;
    std::printf("server RSS %ld KB before, %ld KB with %d connections, %ld KB after %.0f s idle: %.0f bytes/conn\n",
                rss_before, rss_connected, st.connected, rss_after, window, per);
    json += fmt::format(R"(,"rss_before_kb":{},"rss_connected_kb":{},"rss_after_kb":{},"bytes_per_connection":{:.0f})",
                        rss_before, rss_connected, rss_after, per);
  }
  json += "}";
  std::printf("%s\n", json.c_str());
  if (!o.json_out.empty()) std::ofstream(o.json_out, std::ios::app) << json << "\n";
  if (!o.timeline_out.empty()) {
    std::ofstream out(o.timeline_out);
    for (const auto& run : st.completed) {
      for (std::size_t i = 0; i < run.size(); ++i)
        out << fmt::format("{:.3f}{}", run[i] / 1000, i + 1 < run.size() ? " " : "\n");
    }
  }
  std::fflush(stdout);
  std::_Exit(0);  // do not spend time tearing down many connections
}
