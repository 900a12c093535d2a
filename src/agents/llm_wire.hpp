#pragma once

#include "agents/tools.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The two dialects the LLM agent speaks: OpenAI's Chat Completions and Anthropic's Messages API.
// LlmAgent owns the loop (ask, run the tools asked for, ask again) and the HTTP transfer; a Wire
// builds its requests and reads its event stream.
namespace agentwire::agents::llm {

// Fields of a streamed JSON object, read leniently: absent or of another type is nullptr, "" or 0.
inline const boost::json::object* objectAt(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

inline std::string stringAt(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

inline int64_t intAt(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

struct ToolCall {
  std::string id;
  std::string name;       // the function name the model used
  std::string arguments;  // JSON text, streamed in pieces
};

// What one model call produced. Recorded in the run's journal (toJson/fromJson) so that a run
// taken up after an approval does not ask the model again.
struct Completion {
  std::string content;
  std::vector<ToolCall> calls;
  std::string finish_reason;  // normalised: stop, length, tool_calls, content_filter, or the upstream's own word
  bool usage_known = false;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;

  boost::json::value toJson() const;
  // Also reads what earlier versions recorded ({content, tool_calls} in OpenAI's shape).
  static Completion fromJson(const boost::json::value& v);
};

struct ToolResult {
  std::string call_id;
  std::string text;  // the result, or {"error": ...}, as JSON text
  bool is_error = false;
};

// Reads one completion's server-sent events, one `data:` payload at a time.
class StreamParser {
 public:
  explicit StreamParser(std::function<void(const std::string&)> on_text) : on_text_(std::move(on_text)) {}
  virtual ~StreamParser() = default;
  virtual void data(std::string_view payload) = 0;

  bool done() const { return done_; }
  // Set when the stream cannot be read (upstream_protocol) or reports an error (upstream_error).
  const std::string& errorCode() const { return error_code_; }
  const std::string& errorMessage() const { return error_message_; }
  Completion take();

 protected:
  void text(const std::string& piece);
  void fail(std::string code, std::string message);

  Completion c_;
  std::map<int64_t, ToolCall> calls_;  // by the stream's index
  bool done_ = false;

 private:
  std::function<void(const std::string&)> on_text_;
  std::string error_code_;
  std::string error_message_;
};

struct Settings {
  std::string model;
  std::string system_prompt;
  std::optional<double> temperature;
  int max_tokens = 0;  // 0: the upstream's default (Anthropic requires one: 4096 then)
};

class Wire {
 public:
  virtual ~Wire() = default;
  virtual std::string url(const std::string& base_url) const = 0;
  virtual std::vector<std::string> headers(const std::string& api_key) const = 0;
  // The conversation so far starts with the user's message.
  virtual boost::json::array start(const Settings& s, const std::string& user_message) const = 0;
  // After a completion that asked for tools: the model's turn and the tools' results.
  virtual void append(boost::json::array& messages, const Completion& c,
                      const std::vector<ToolResult>& results) const = 0;
  virtual boost::json::object request(const Settings& s, const boost::json::array& messages,
                                      const std::vector<ToolRegistry::ModelTool>& tools) const = 0;
  virtual std::unique_ptr<StreamParser> parser(std::function<void(const std::string&)> on_text) const = 0;
};

std::unique_ptr<Wire> openAiWire();
std::unique_ptr<Wire> anthropicWire();

}  // namespace agentwire::agents::llm
