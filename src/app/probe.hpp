#pragma once

#include <string>

namespace agentwire::app {

struct ProbeOptions {
  std::string url;     // ws://host:port (path /ws is added when missing)
  std::string token;   // a JWT to use as is
  std::string secret;  // or: sign a token for `user` with this HS256 secret
  std::string user = "agentwire-probe";
  int timeout_ms = 5000;
};

// `agentwire probe ws://host:port`: the routing self-check from outside, over a real socket.
// Connects, sends a user_message, checks the ack and every agent event in order. Prints one
// line (OK with timings, or the failed hop) and returns the exit status: 0 ok, 1 failed.
int runProbe(const ProbeOptions& options);

}  // namespace agentwire::app
