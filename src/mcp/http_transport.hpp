#pragma once

#include "core/result.hpp"
#include "mcp/stdio_process.hpp"

#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace agentwire::mcp {

// Where a tool server on MCP's Streamable HTTP transport listens.
struct HttpSpec {
  std::string url;                             // the MCP endpoint, e.g. http://127.0.0.1:3001/mcp
  std::map<std::string, std::string> headers;  // sent with every request (e.g. Authorization)
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds max_transfer{60000};  // a POST's answer (JSON or SSE) ends by then
};

// The Streamable HTTP transport with the same shape as StdioProcess, so that a Session runs on
// either: each message the session sends is POSTed on a thread of its own, and every JSON-RPC
// message in the answer (a JSON body, or the events of an SSE body) goes to on_line. The
// Mcp-Session-Id the server gives at initialize is sent back on every request, with
// MCP-Protocol-Version once negotiated. After notifications/initialized a GET stream is opened for
// messages the server sends on its own (notifications/tools/list_changed); a server that does not
// offer one (405) is fine.
// A request the server refuses (HTTP status other than 2xx) gets a JSON-RPC error answer with the
// status and body, so its call fails at once. The server unreachable, or a 404 for the session
// (the server restarted and forgot it), ends the transport: on_exit once, as a process exiting.
class HttpTransport final : public Transport {
 public:
  HttpTransport(HttpSpec spec, StdioProcess::Callbacks callbacks);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  core::Result<bool> start() override { return true; }  // nothing to start: initialize is the first contact
  bool writeLine(const std::string& line) override;     // false once ended or stopped
  void stop() override;

  struct Answer;  // one transfer's answer, read as it arrives
  void adoptSession(const std::string& id);

 private:
  void deliver(std::string line);
  void spawn(std::function<void()> fn);  // under mutex_
  // `sent`: `body` parsed (null when it is not JSON), for its id and method.
  void post(const std::string& body, const boost::json::value& sent);
  void listen();
  void ended(const std::string& how);
  // One transfer; returns the curl result and fills `answer`. Aborts when the transport stops.
  int transfer(const char* method, const std::string& body, Answer& answer);

  HttpSpec spec_;
  StdioProcess::Callbacks cb_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string session_id_;
  std::string protocol_version_;
  bool listening_ = false;
  bool session_deleted_ = false;  // stop() sent its DELETE
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers_;  // POSTs in flight, and the GET stream; joined once done
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ended_{false};
};

}  // namespace agentwire::mcp
