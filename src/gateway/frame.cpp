#include "gateway/frame.hpp"

#include <boost/json.hpp>

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

core::Result<Frame> parseFrame(std::string_view text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) return core::Error{"invalid_json", "frame is not valid JSON: " + ec.message()};
  if (!v.is_object()) return core::Error{"invalid_json", "frame must be a JSON object"};
  auto& o = v.as_object();
  Frame f;
  auto* type = o.if_contains("type");
  if (type == nullptr || !type->is_string() || type->as_string().empty()) {
    return core::Error{"missing_field", "frame has no string field 'type'"};
  }
  f.type = std::string(type->as_string());
  if (f.type == "user" || f.type == "chat_message") f.type = "user_message";
  if (auto* id = o.if_contains("id")) {
    if (id->is_string()) {
      f.id = std::string(id->as_string());
    } else if (id->is_int64() || id->is_uint64()) {
      f.id = boost::json::serialize(*id);
    }
  }
  auto* data = o.if_contains("data");
  if (data == nullptr) data = o.if_contains("payload");
  if (data != nullptr) {
    if (!data->is_object()) return core::Error{"invalid_json", "field 'data' must be an object"};
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
