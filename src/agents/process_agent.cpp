#include "agents/process_agent.hpp"

#include "agents/agent_lines.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

extern char** environ;

namespace agentwire::agents {
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxLine = 1 << 20;

// Owns a child process: killed and reaped on scope exit, whatever happened.
class Child {
 public:
  Child(const std::string& command, int& stdin_fd, int& stdout_fd) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw AgentError("agent_exited", "pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    // Nothing else of the server's: its sockets are not close-on-exec, and an agent that outlived a
    // killed server would otherwise keep its listening port and its users' connections open (the
    // clients would never notice the crash, and the restarted server could not bind).
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    // Its own process group, so that killing it also kills whatever the command started.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    int rc = posix_spawn(&pid_, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
      close(in[1]);
      close(out[0]);
      pid_ = -1;
      throw AgentError("agent_exited", fmt::format("cannot start '{}': {}", command,
                                                   std::error_code(rc, std::generic_category()).message()));
    }
    stdin_fd = in[1];
    stdout_fd = out[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Waits for the exit (the program closed stdout); returns a description of the status.
  std::string reap() {
    int status = 0;
    waitpid(pid_, &status, 0);
    kill(-pid_, SIGKILL);  // anything the program left behind in its group
    pid_ = -1;
    if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
    return "ended";
  }

 private:
  pid_t pid_ = -1;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

ProcessAgent::ProcessAgent(std::string name, std::string command)
    : name_(std::move(name)), command_(std::move(command)) {
  // Writing to a program that already exited must fail with EPIPE, not kill the gateway.
  signal(SIGPIPE, SIG_IGN);
}

std::string ProcessAgent::run(const RunInput& input, RunContext& ctx) {
  Fd in, out;
  Child child(command_, in.fd, out.fd);
  const auto& uc = ctx.emitter.context();
  std::string hello = json::serialize(json::object{{"type", "run"},
                                                   {"run_id", uc.run_id},
                                                   {"thread_id", uc.thread_id},
                                                   {"user_id", uc.user_id},
                                                   {"input", input.content}}) +
                      "\n";
  // A program that does not read its stdin must not block us: the line fits the pipe buffer.
  // (SIGPIPE is ignored process-wide, see the constructor, so a program that exited is an EPIPE.)
  (void)!write(in.fd, hello.data(), hello.size());
  close(in.fd);
  in.fd = -1;

  const std::string message_id = uc.run_id + "_answer";
  std::string buffer;
  int line_no = 0;
  char chunk[8192];
  for (;;) {
    if (ctx.cancel.cancelled()) return {};  // stop or deadline: the child is killed on return
    pollfd p{out.fd, POLLIN, 0};
    int ready = poll(&p, 1, 50);
    if (ready < 0 && errno != EINTR) throw AgentError("agent_exited", "poll failed");
    if (ready <= 0) continue;
    ssize_t n = read(out.fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string how = child.reap();
      throw AgentError("agent_exited", fmt::format("agent program ended ({}) without a final answer", how));
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      ++line_no;
      auto parsed = parseAgentLine(line, line_no);
      if (!parsed) throw AgentError(parsed.error().code, parsed.error().message);
      if (!*parsed) continue;  // blank line
      auto& l = **parsed;
      if (l.kind == AgentLine::Kind::Final) return l.content;
      if (l.kind == AgentLine::Kind::Failed) throw AgentError(l.code, l.message);
      if (l.type == "agent_response_chunk") l.data["message_id"] = message_id;
      ctx.emitter.emit(l.type, std::move(l.data));
    }
    if (buffer.size() > kMaxLine) throw AgentError("agent_protocol", "a line is longer than 1 MiB");
  }
}

}  // namespace agentwire::agents
