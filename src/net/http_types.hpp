#pragma once

#include <boost/json/fwd.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace agentwire::net {

// Beast-free request/response types, so handlers outside src/net compile without Beast.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as received
  std::string path;    // target without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string{} : it->second;
  }
};

// The body of a streamed response (server-sent events): written as data arrives, the
// connection closes when the stream is closed. write() is thread-safe and never blocks.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual bool write(std::shared_ptr<const std::string> data) = 0;  // false once closed
  virtual void close() = 0;                                         // after what is queued
  virtual void abort() = 0;  // now, dropping what is queued (a peer that stopped reading)
  // Called once, on the connection's strand, when the stream is over: closed after its data, or
  // the peer went away. Set it before writing.
  virtual void onClosed(std::function<void()> fn) = 0;
  // Written but not yet sent to the peer (counted from write(), so a producer sees its own backlog).
  virtual std::size_t queuedChunks() const = 0;
  virtual std::size_t queuedBytes() const = 0;
  // Calls `fn` once (on the strand) when everything written so far has been sent, at once if it
  // has; never if the stream ends first.
  virtual void whenDrained(std::function<void()> fn) = 0;
  // While the stream is idle for `every`, writes `text` (an SSE comment keeps proxies from closing
  // it, and finds a peer that went away); ends the stream when data has waited `stall` without a
  // write completing (the peer stopped reading). Call once, before writing.
  virtual void keepAlive(std::chrono::milliseconds every, std::string text, std::chrono::milliseconds stall) = 0;
};

struct HttpReply;
// Answers a deferred request; callable once, from any thread.
using Respond = std::function<void(HttpReply)>;

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the response is streamed: the headers go out, then this is called with the writer
  // (on the connection's strand) and the body is whatever is written until close().
  std::function<void(std::shared_ptr<StreamWriter>)> stream;
  // When set, the answer comes later: this is called (on the connection's strand, right away)
  // with a Respond to call once the reply is known, from any thread. No I/O thread waits for it.
  // Without an answer within the server's deferred timeout, the server answers 504 itself.
  std::function<void(Respond)> deferred;
};

using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

// A JSON body.
HttpReply jsonReply(int status, const boost::json::value& body);
// A JSON error body with a stable code: {"error": {"code": ..., "message": ...}}.
HttpReply jsonError(int status, const std::string& code, const std::string& message);

}  // namespace agentwire::net
