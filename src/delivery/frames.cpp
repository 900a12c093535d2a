#include "delivery/frames.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace agentwire::delivery {
namespace {

void appendJsonString(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::shared_ptr<const std::string> serialized(const boost::json::object& o) {
  return std::make_shared<const std::string>(boost::json::serialize(o));
}

}  // namespace

std::shared_ptr<const std::string> eventFrame(const store::StoredEvent& ev) {
  // Concatenated rather than built as a JSON value: `data` is already serialized JSON, and
  // parsing it back only to serialize it again would double the cost of every event.
  std::string f;
  f.reserve(112 + ev.type.size() + ev.thread_id.size() + ev.run_id.size() + ev.data_json.size());
  f += R"({"type":)";
  appendJsonString(f, ev.type);
  f += R"(,"seq":)";
  f += std::to_string(ev.seq);
  f += R"(,"thread_id":)";
  appendJsonString(f, ev.thread_id);
  if (!ev.run_id.empty()) {
    f += R"(,"run_id":)";
    appendJsonString(f, ev.run_id);
  }
  f += R"(,"ts":)";
  f += std::to_string(ev.ts_ms);
  f += R"(,"data":)";
  f += ev.data_json.empty() ? std::string_view("{}") : std::string_view(ev.data_json);
  f += '}';
  return std::make_shared<const std::string>(std::move(f));
}

std::shared_ptr<const std::string> resumeCompleteFrame(int64_t from_seq, int64_t to_seq, const std::string& ref) {
  boost::json::object o{{"type", "resume_complete"},
                        {"data", boost::json::object{{"from_seq", from_seq}, {"to_seq", to_seq}}}};
  if (!ref.empty()) o["id"] = ref;
  return serialized(o);
}

std::shared_ptr<const std::string> resyncFrame(const store::StreamInfo& info, const std::string& reason,
                                               const std::string& ref) {
  boost::json::object o{
      {"type", "resync_required"},
      {"data", boost::json::object{{"epoch", info.epoch}, {"last_seq", info.last_seq}, {"reason", reason}}}};
  if (!ref.empty()) o["id"] = ref;
  return serialized(o);
}

}  // namespace agentwire::delivery
