#pragma once

#include "core/result.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace agentwire::mcp {

// How to start a tool server that speaks on its stdin/stdout (MCP's stdio transport).
struct ProcessSpec {
  std::string command;  // looked up in PATH
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to the server's own environment
  std::string cwd;                         // empty: the server's
};

// A child process read line by line on its own thread: each line of stdout goes to on_line, each
// line of stderr to on_stderr (the server's log), and on_exit is called once when stdout closes
// (the program exited or closed it), after the last line. The child gets nothing of the server's
// but its three pipes (no sockets: a tool server outliving a killed gateway must not hold its
// port), runs in its own process group, and is killed with that group by stop() or the destructor.
// What a Session talks through: a process's stdin/stdout (StdioProcess) or HTTP (HttpTransport).
// Messages the server sends go to the Callbacks given at construction, on the transport's threads.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual core::Result<bool> start() = 0;
  // One message. False once the transport ended or was stopped.
  virtual bool writeLine(const std::string& line) = 0;
  // Ends it; joins its threads (never call it from a callback).
  virtual void stop() = 0;
};

class StdioProcess final : public Transport {
 public:
  struct Callbacks {
    std::function<void(std::string line)> on_line;
    std::function<void(const std::string& line)> on_stderr;
    std::function<void(const std::string& how)> on_exit;
  };
  StdioProcess(ProcessSpec spec, Callbacks callbacks);
  ~StdioProcess();
  StdioProcess(const StdioProcess&) = delete;
  StdioProcess& operator=(const StdioProcess&) = delete;

  core::Result<bool> start() override;
  // One line (a newline is added). False once the process is gone (EPIPE) or stopped.
  // The callbacks run on the reader thread: they must not call stop().
  bool writeLine(const std::string& line) override;
  void stop() override;
  pid_t pid() const { return pid_.load(); }

 private:
  void readLoop();

  ProcessSpec spec_;
  Callbacks cb_;
  std::atomic<pid_t> pid_{-1};
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int wake_[2] = {-1, -1};  // stop() wakes the reader through this pipe
  std::mutex write_mutex_;
  std::atomic<bool> stopping_{false};
  std::thread reader_;
};

}  // namespace agentwire::mcp
