#pragma once

#include <functional>
#include <map>
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

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

// A JSON error body with a stable code: {"error": {"code": ..., "message": ...}}.
HttpReply jsonError(int status, const std::string& code, const std::string& message);

}  // namespace agentwire::net
