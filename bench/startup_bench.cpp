// Startup to ready on embedded defaults: the wall time from fork() of `agentwire serve` to its
// `READY=1` (sd_notify, sent when the last critical component is up, as systemd's Type=notify
// sees it), beside the time to exec() `agentwire --version` (process start, dynamic linking, exit)
// measured in the same run as the baseline. Each iteration then checks that /health/ready says 200.
//
// The server runs on core $AW_SERVER_CPU (default 0) and this process where it was started (run it
// with `taskset -c 1`), and it waits on the notify socket instead of polling: a poller on the
// server's core took CPU from the start it measured (82 ms polled every 100 us on one core against
// 48 ms this way, 2026-11-30).
//
//   taskset -c 1 build/startup_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
//   AW_STARTUP_BIN=/tmp/agentwire-before taskset -c 1 build/startup_bench ...   (another binary)
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The child runs on `cpu` (-1: wherever this process may run) with NOTIFY_SOCKET=`notify` if given.
pid_t spawn(const std::vector<std::string>& args, int cpu = -1, const std::string& notify = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
    }
    if (!notify.empty()) setenv("NOTIFY_SOCKET", notify.c_str(), 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int readPort(const std::string& path) {
  std::ifstream f(path);
  int port = 0;
  f >> port;
  return port;
}

// One GET over a fresh loopback connection; returns the status code or 0.
int httpStatus(int port, const char* path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[64] = {};
      if (read(fd, buf, sizeof buf - 1) > 12) status = std::atoi(buf + 9);
    }
  }
  close(fd);
  return status;
}

// The binary measured: this build's, or $AW_STARTUP_BIN (an A/B against another build).
std::string binary() {
  const char* v = std::getenv("AW_STARTUP_BIN");
  return v != nullptr ? v : AGENTWIRE_BIN;
}

int serverCpu() {
  const char* v = std::getenv("AW_SERVER_CPU");
  return v != nullptr ? std::atoi(v) : 0;
}

// A datagram socket bound at `path`, as systemd's NOTIFY_SOCKET is.
int notifySocket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot bind the notify socket " + path);
  }
  timeval timeout{10, 0};  // a server that dies before READY=1 fails the run instead of hanging it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Blocks until a datagram carrying READY=1 arrives; false on a timeout or a failed socket.
bool waitReady(int fd) {
  char buf[512];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) return false;
    buf[n] = '\0';
    if (std::strstr(buf, "READY=1") != nullptr) return true;
  }
}

void BM_ExecVersion(benchmark::State& state) {
  for (auto _ : state) {
    pid_t pid = spawn({binary(), "--version"}, serverCpu());
    int st = 0;
    waitpid(pid, &st, 0);
  }
}

void BM_StartupToReady(benchmark::State& state) {
  auto base = std::filesystem::temp_directory_path() / ("agentwire-bench-" + std::to_string(getpid()));
  auto dir = base / "data";
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  std::string notify_path = (base / "notify").string();
  int notify = notifySocket(notify_path);
  for (auto _ : state) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string port_file = (dir / "port").string();
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = spawn({binary(), "serve", "--port", "0", "--port-file", port_file, "--log-level", "warn", "--set",
                       "store.path=" + (dir / "agentwire.db").string()},
                      serverCpu(), notify_path);
    bool ready = waitReady(notify);
    auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!ready || httpStatus(readPort(port_file), "/health/ready") != 200) {
      state.SkipWithError("READY=1 was sent but /health/ready did not answer 200");
    }
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
  }
  close(notify);
  std::filesystem::remove_all(base);
}

}  // namespace

BENCHMARK(BM_ExecVersion)->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_StartupToReady)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK_MAIN();
