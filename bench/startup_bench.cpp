// Startup to ready on embedded defaults: the wall time from exec() of `agentwire serve` to the
// first 200 from /health/ready, beside the time to exec() `agentwire --version` (process start,
// dynamic linking, exit) measured in the same run as the baseline.
//
//   build/startup_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

pid_t spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
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

void BM_ExecVersion(benchmark::State& state) {
  for (auto _ : state) {
    pid_t pid = spawn({AGENTWIRE_BIN, "--version"});
    int st = 0;
    waitpid(pid, &st, 0);
  }
}

void BM_StartupToReady(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("agentwire-bench-" + std::to_string(getpid()));
  for (auto _ : state) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string port_file = (dir / "port").string();
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = spawn({AGENTWIRE_BIN, "serve", "--port", "0", "--port-file", port_file, "--log-level", "warn", "--set",
                       "store.path=" + (dir / "agentwire.db").string()});
    int port = 0;
    while ((port = readPort(port_file)) == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
    while (httpStatus(port, "/health/ready") != 200) std::this_thread::sleep_for(std::chrono::microseconds(100));
    auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace

BENCHMARK(BM_ExecVersion)->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_StartupToReady)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK_MAIN();
