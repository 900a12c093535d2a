#include "gateway/frame.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <cmath>
#include <cstdint>

namespace agentwire::gateway {

std::string stringField(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string{};
}

std::optional<int64_t> intField(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->as_double());
  return std::nullopt;
}

core::Result<std::optional<std::string>> optionalString(const boost::json::object& data, const char* key) {
  auto* v = data.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return core::Error{"invalid_field", fmt::format("data.{} must be a string", key)};
  return std::optional<std::string>(std::string(v->as_string()));
}

core::Result<std::optional<int64_t>> optionalInt(const boost::json::object& data, const char* key) {
  auto* v = data.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (v->is_int64()) return std::optional<int64_t>(v->as_int64());
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  if (v->is_double()) {
    double d = v->as_double();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.0e18) {
      return std::optional<int64_t>(static_cast<int64_t>(d));
    }
  }
  return core::Error{"invalid_field", fmt::format("data.{} must be an integer", key)};
}

core::Result<Frame> parseFrame(std::string_view text, std::string* ref) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) return core::Error{"invalid_json", "frame is not valid JSON: " + ec.message()};
  if (!v.is_object()) return core::Error{"invalid_json", "frame must be a JSON object"};
  auto& o = v.as_object();
  Frame f;
  if (auto* id = o.if_contains("id")) {
    if (id->is_string()) {
      f.id = std::string(id->as_string());
    } else if (id->is_int64() || id->is_uint64()) {
      f.id = boost::json::serialize(*id);
    } else if (!id->is_null()) {
      return core::Error{"invalid_field", "field 'id' must be a string or an integer"};
    }
    if (ref != nullptr) *ref = f.id;
  }
  auto* type = o.if_contains("type");
  if (type == nullptr) return core::Error{"missing_field", "frame has no string field 'type'"};
  if (!type->is_string() || type->as_string().empty()) {
    return core::Error{"invalid_field", "field 'type' must be a non-empty string"};
  }
  f.type = std::string(type->as_string());
  if (f.type == "user" || f.type == "chat_message") f.type = "user_message";
  auto* data = o.if_contains("data");
  if (data == nullptr) data = o.if_contains("payload");
  if (data != nullptr && !data->is_null()) {
    if (!data->is_object()) return core::Error{"invalid_field", "field 'data' must be an object"};
    f.data = std::move(data->as_object());
  }
  return f;
}

void sendReply(delivery::Connection& conn, const std::string& type, const std::string& id, boost::json::object data) {
  boost::json::object o{{"type", type}};
  if (!id.empty()) o["id"] = id;
  o["data"] = std::move(data);
  conn.send(std::make_shared<const std::string>(boost::json::serialize(o)));
}

namespace {
ErrorObserver& errorObserver() {
  static ErrorObserver observer;
  return observer;
}
}  // namespace

void setErrorObserver(ErrorObserver observer) {
  errorObserver() = std::move(observer);
}

void sendError(delivery::Connection& conn, const std::string& code, const std::string& message,
               const std::string& ref) {
  if (const auto& observe = errorObserver()) observe(conn, code);
  boost::json::object data{{"code", code}, {"message", message}};
  if (!ref.empty()) data["ref"] = ref;
  boost::json::object o{{"type", "error"}, {"data", std::move(data)}};
  if (!ref.empty()) o["id"] = ref;
  conn.send(std::make_shared<const std::string>(boost::json::serialize(o)));
}

}  // namespace agentwire::gateway
