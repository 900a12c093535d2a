#pragma once

// Internal to src/net: included only by the Beast translation units.
#include "net/beast.hpp"
#include "net/websocket.hpp"

namespace agentwire::net {

// Takes over an accepted TCP stream whose upgrade request has been read.
void startWsSession(beast::tcp_stream&& stream, http::request<http::string_body>&& req, WsAdmission admission,
                    WsHandler& handler, const WsLimits& limits);

}  // namespace agentwire::net
