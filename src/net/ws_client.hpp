#pragma once

#include "core/result.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace agentwire::net {

// A small blocking WebSocket/HTTP client over Beast, for `agentwire probe` and tests.
// Every call takes a timeout. Not thread-safe; one per thread.
class WsClient {
 public:
  WsClient();
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // One HTTP GET; returns the body when the status is 200.
  static core::Result<std::string> httpGet(const std::string& host, const std::string& port, const std::string& target,
                                           std::chrono::milliseconds timeout);

  core::Result<bool> connect(const std::string& host, const std::string& port, const std::string& target,
                             const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout);
  core::Result<bool> send(const std::string& text, std::chrono::milliseconds timeout);
  core::Result<std::string> receive(std::chrono::milliseconds timeout);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentwire::net
