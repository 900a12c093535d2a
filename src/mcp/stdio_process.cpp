#include "mcp/stdio_process.hpp"

#include "core/thread_name.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

extern char** environ;

namespace agentwire::mcp {
namespace {

constexpr std::size_t kMaxLine = 16 << 20;  // a tool result may be large; a line past this is cut off

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

StdioProcess::StdioProcess(ProcessSpec spec, Callbacks callbacks) : spec_(std::move(spec)), cb_(std::move(callbacks)) {
  // Writing to a server that exited must be EPIPE, not the end of the gateway.
  signal(SIGPIPE, SIG_IGN);
}

StdioProcess::~StdioProcess() {
  stop();
}

core::Result<bool> StdioProcess::start() {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return core::Error{"unavailable", "pipe failed"};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(wake_, O_CLOEXEC) != 0) {
    return core::Error{"unavailable", "pipe failed"};
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (!spec_.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, spec_.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos && spec_.env.count(kv.substr(0, eq)) > 0) continue;  // overridden below
    env_strings.push_back(std::move(kv));
  }
  for (const auto& [k, v] : spec_.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{spec_.command};
  argv_strings.insert(argv_strings.end(), spec_.args.begin(), spec_.args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, spec_.command.c_str(), &fa, &attr, argv.data(), envp.data());
  pid_ = pid;
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    pid_ = -1;
    return core::Error{"unavailable", fmt::format("cannot start '{}': {}", spec_.command,
                                                  std::error_code(rc, std::generic_category()).message())};
  }
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  reader_ = std::thread([this] {
    core::setThreadName("aw-mcp-read");
    readLoop();
  });
  return true;
}

bool StdioProcess::writeLine(const std::string& line) {
  std::lock_guard lock(write_mutex_);
  if (stdin_fd_ < 0) return false;
  std::string data = line + "\n";
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(stdin_fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

void StdioProcess::readLoop() {
  std::string out_buf, err_buf;
  char chunk[16384];
  bool out_open = true, err_open = true;
  auto lines = [&](std::string& buf, bool is_out) {
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (is_out) {
        if (cb_.on_line) cb_.on_line(std::move(line));
      } else if (cb_.on_stderr) {
        cb_.on_stderr(line);
      }
    }
    if (buf.size() > kMaxLine) buf.clear();  // a runaway line: dropped, the next one is read
  };
  while (out_open && !stopping_) {
    pollfd p[3] = {{stdout_fd_, POLLIN, 0}, {err_open ? stderr_fd_ : -1, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int ready = poll(p, 3, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || (p[2].revents != 0)) break;
    if (p[0].revents != 0) {
      ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        out_open = false;
      } else {
        out_buf.append(chunk, static_cast<std::size_t>(n));
        lines(out_buf, true);
      }
    }
    if (err_open && p[1].revents != 0) {
      ssize_t n = read(stderr_fd_, chunk, sizeof chunk);
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        err_open = false;
      } else if (n > 0) {
        err_buf.append(chunk, static_cast<std::size_t>(n));
        lines(err_buf, false);
      }
    }
  }
  if (stopping_) return;
  // stdout closed: the program ended (or will, once killed with its group).
  int status = 0;
  pid_t pid = pid_.exchange(-1);
  kill(-pid, SIGKILL);
  waitpid(pid, &status, 0);
  std::string how = WIFEXITED(status)     ? fmt::format("exit status {}", WEXITSTATUS(status))
                    : WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                          : std::string("ended");
  {
    std::lock_guard lock(write_mutex_);
    closeFd(stdin_fd_);
  }
  if (cb_.on_exit) cb_.on_exit(how);
}

void StdioProcess::stop() {
  if (stopping_.exchange(true)) return;
  pid_t pid = pid_.load();
  if (pid > 0) kill(-pid, SIGKILL);
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (reader_.joinable()) reader_.join();
  pid = pid_.exchange(-1);  // -1 when the reader reaped it
  if (pid > 0) waitpid(pid, nullptr, 0);
  {
    std::lock_guard lock(write_mutex_);
    closeFd(stdin_fd_);
  }
  closeFd(stdout_fd_);
  closeFd(stderr_fd_);
  closeFd(wake_[0]);
  closeFd(wake_[1]);
}

}  // namespace agentwire::mcp
