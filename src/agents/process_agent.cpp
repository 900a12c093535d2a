#include "agents/process_agent.hpp"

#include "agents/agent_lines.hpp"
#include "core/ids.hpp"
#include "core/logging.hpp"

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
  Child(const std::string& command, int& stdin_fd, int& stdout_fd, int& stderr_fd) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      throw AgentError("agent_exited", "pipe failed");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
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
    close(err[1]);
    if (rc != 0) {
      close(in[1]);
      close(out[0]);
      close(err[0]);
      pid_ = -1;
      throw AgentError("agent_exited", fmt::format("cannot start '{}': {}", command,
                                                   std::error_code(rc, std::generic_category()).message()));
    }
    stdin_fd = in[1];
    stdout_fd = out[0];
    stderr_fd = err[0];
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

// What the program writes to stderr goes to agentwire's log, a line at a time under the agent's
// logger with the run's id: not into the server's own stderr, unattributed and interleaved with
// its log lines. At most kMaxStderr per run (a chatty program cannot fill the disk).
class StderrLog {
 public:
  StderrLog(std::shared_ptr<spdlog::logger> log, std::string run_id)
      : log_(std::move(log)), run_id_(std::move(run_id)) {}
  ~StderrLog() { flush(); }
  StderrLog(const StderrLog&) = delete;
  StderrLog& operator=(const StderrLog&) = delete;

  void add(const char* data, std::size_t n) {
    pending_.append(data, n);
    std::size_t nl;
    while ((nl = pending_.find('\n')) != std::string::npos) {
      line(pending_.substr(0, nl));
      pending_.erase(0, nl + 1);
    }
    if (pending_.size() > 4096) flush();  // a long line without its end: logged in pieces
  }
  void flush() {
    if (!pending_.empty()) line(pending_);
    pending_.clear();
  }

 private:
  static constexpr std::size_t kMaxStderr = 64 * 1024;
  void line(const std::string& l) {
    if (logged_ > kMaxStderr) return;
    logged_ += l.size();
    if (logged_ > kMaxStderr) {
      log_->warn("run '{}' stderr: more than {} bytes; the rest of this run's is left out", run_id_, kMaxStderr);
      return;
    }
    log_->warn("run '{}' stderr: {}", run_id_, l);
  }
  std::shared_ptr<spdlog::logger> log_;
  std::string run_id_;
  std::string pending_;
  std::size_t logged_ = 0;
};

}  // namespace

ProcessAgent::ProcessAgent(std::string name, std::string command, std::vector<std::string> tools)
    : name_(std::move(name)),
      command_(std::move(command)),
      tools_(std::move(tools)),
      log_(core::logger("agent." + name_)) {
  // Writing to a program that already exited must fail with EPIPE, not kill the gateway.
  signal(SIGPIPE, SIG_IGN);
}

std::string ProcessAgent::run(const RunInput& input, RunContext& ctx) {
  if (!tools_.empty()) ctx.allowed_tools = &tools_;
  Fd in, out, err;
  Child child(command_, in.fd, out.fd, err.fd);
  fcntl(err.fd, F_SETFL, fcntl(err.fd, F_GETFL) | O_NONBLOCK);
  StderrLog stderr_log(log_, ctx.emitter.context().run_id);
  // Non-blocking: lines for the program wait in `to_program` until its stdin has room, so a program
  // that does not read them never blocks this worker.
  fcntl(in.fd, F_SETFL, fcntl(in.fd, F_GETFL) | O_NONBLOCK);
  const auto& uc = ctx.emitter.context();
  json::array tools;
  for (auto& t : ctx.tools.modelTools(tools_)) {
    tools.emplace_back(json::object{{"name", std::move(t.name)},
                                    {"description", std::move(t.description)},
                                    {"parameters", std::move(t.parameters)}});
  }
  std::string hello = json::serialize(json::object{{"type", "run"},
                                                   {"run_id", uc.run_id},
                                                   {"thread_id", uc.thread_id},
                                                   {"user_id", uc.user_id},
                                                   {"input", input.content},
                                                   {"tools", std::move(tools)}}) +
                      "\n";
  // stdin stays open: tool results are written to it.
  std::string to_program = std::move(hello);

  const std::string message_id = uc.run_id + "_answer";
  std::string buffer;
  int line_no = 0;
  char chunk[8192];
  // What is in the stderr pipe now (a crashing program's last words come with its exit).
  auto drainStderr = [&] {
    while (err.fd >= 0) {
      ssize_t n = read(err.fd, chunk, sizeof chunk);
      if (n <= 0) break;
      stderr_log.add(chunk, static_cast<std::size_t>(n));
    }
  };
  for (;;) {
    if (ctx.cancel.cancelled()) return {};  // stop or deadline: the child is killed on return
    pollfd p[3] = {{out.fd, POLLIN, 0},
                   {err.fd, POLLIN, 0},  // -1 once the program closed it: ignored by poll
                   {to_program.empty() ? -1 : in.fd, POLLOUT, 0}};
    int ready = poll(p, 3, 50);
    if (ready < 0 && errno != EINTR) throw AgentError("agent_exited", "poll failed");
    if (ready <= 0) continue;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      ssize_t n = read(err.fd, chunk, sizeof chunk);
      if (n > 0) {
        stderr_log.add(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(err.fd);
        err.fd = -1;
      }
    }
    if (!to_program.empty() && in.fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = write(in.fd, to_program.data(), to_program.size());
      if (w > 0) {
        to_program.erase(0, static_cast<std::size_t>(w));
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        // The program closed its stdin (EPIPE: SIGPIPE is ignored process-wide): it reads no more.
        close(in.fd);
        in.fd = -1;
        to_program.clear();
      }
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    ssize_t n = read(out.fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string how = child.reap();
      drainStderr();
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
      if (l.kind == AgentLine::Kind::Final || l.kind == AgentLine::Kind::Failed) drainStderr();
      if (l.kind == AgentLine::Kind::Final) return l.content;
      if (l.kind == AgentLine::Kind::Failed) throw AgentError(l.code, l.message);
      if (l.kind == AgentLine::Kind::ToolCall) {
        // Run by us, with approval and events, like an LLM agent's call. A call that needs approval
        // parks the run (RunParked ends this process); when the person answers, the program runs
        // again from its start and its calls up to this one get their recorded results.
        std::string call_id = l.tool_call_id.empty() ? core::newId("call") : l.tool_call_id;
        auto result = ctx.callTool(l.tool_name, l.args, call_id);
        json::object reply{{"type", "tool_result"}, {"tool_call_id", call_id}};
        if (result) {
          reply["result"] = result.value();
        } else {
          reply["error"] = json::object{{"code", result.error().code}, {"message", result.error().message}};
        }
        if (in.fd >= 0) to_program += json::serialize(reply) + "\n";
        continue;
      }
      if (l.type == "agent_response_chunk") l.data["message_id"] = message_id;
      ctx.emitter.emit(l.type, std::move(l.data));
    }
    if (buffer.size() > kMaxLine) throw AgentError("agent_protocol", "a line is longer than 1 MiB");
  }
}

}  // namespace agentwire::agents
