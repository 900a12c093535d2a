#pragma once

#include "core/result.hpp"
#include "delivery/connection.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace agentwire::gateway {

// One client -> server frame after parsing and alias resolution.
struct Frame {
  std::string type;
  std::string id;  // client-chosen, echoed back in replies; may be empty
  boost::json::object data;
};

// Parses a text frame. Accepts the Python service's aliases: `payload` for `data`, `user` and
// `chat_message` for `user_message`. Errors: invalid_json (not JSON, not an object), missing_field
// (no `type`), invalid_field (`type`, `id` or `data` of the wrong type). `ref` receives the frame's
// id whenever the frame is a JSON object with one, so errors can name the request they answer.
core::Result<Frame> parseFrame(std::string_view text, std::string* ref = nullptr);

// A string field of a JSON object, or "" when absent or not a string.
std::string stringField(const boost::json::object& o, const char* key);
// An integer field (integral or floating JSON number), or nullopt.
std::optional<int64_t> intField(const boost::json::object& o, const char* key);

// Typed fields of a client frame's `data`: absent (or null) is nullopt; present with the wrong type
// is an `invalid_field` error naming the field as `data.<key>`, so a client never gets a silently
// ignored value (a thread_id that is a number must not create a new thread).
core::Result<std::optional<std::string>> optionalString(const boost::json::object& data, const char* key);
// An integer: a JSON integer, or a float with no fractional part.
core::Result<std::optional<int64_t>> optionalInt(const boost::json::object& data, const char* key);

// The connection a frame came from, and whose it is. Made per connection; never shared between users.
struct ClientContext {
  delivery::ConnectionPtr conn;
  std::string user_id;
};

// Server -> client frames that are replies to one connection, not part of the user's stream.
void sendReply(delivery::Connection& conn, const std::string& type, const std::string& id, boost::json::object data);
void sendError(delivery::Connection& conn, const std::string& code, const std::string& message, const std::string& ref);

// Told of every error frame sendError() sends (metrics and analytics count them by code). Set
// once while wiring, before serving; it is called on the sending thread and must not block.
using ErrorObserver = std::function<void(const delivery::Connection& conn, const std::string& code)>;
void setErrorObserver(ErrorObserver observer);

}  // namespace agentwire::gateway
