// Anthropic's Messages API with streaming: message_start, content_block_start / delta / stop
// (text_delta, input_json_delta), message_delta (stop_reason, usage), message_stop, ping, error.
#include "agents/llm_wire.hpp"

#include <fmt/format.h>

namespace agentwire::agents::llm {
namespace json = boost::json;

namespace {

constexpr const char* kApiVersion = "2023-06-01";
constexpr int kDefaultMaxTokens = 4096;  // the API requires max_tokens

// Anthropic's stop reasons in the words agent_completed uses for every provider.
std::string finishReason(const std::string& stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return stop_reason;
}

class AnthropicParser final : public StreamParser {
 public:
  using StreamParser::StreamParser;

  void data(std::string_view payload) override {
    boost::system::error_code ec;
    auto v = json::parse(payload, ec);
    if (ec || !v.is_object()) {
      return fail("upstream_protocol", fmt::format("malformed stream event: {}", payload.substr(0, 200)));
    }
    const auto& o = v.as_object();
    const std::string type = stringAt(o, "type");
    if (type == "message_start") {
      const auto* message = objectAt(o, "message");
      if (const auto* usage = message != nullptr ? objectAt(*message, "usage") : nullptr) {
        c_.usage_known = true;
        // Cached input is input too: what the budget counts is what the model read.
        c_.input_tokens = intAt(*usage, "input_tokens") + intAt(*usage, "cache_creation_input_tokens") +
                          intAt(*usage, "cache_read_input_tokens");
        c_.output_tokens = intAt(*usage, "output_tokens");
      }
    } else if (type == "content_block_start") {
      const auto* block = objectAt(o, "content_block");
      if (block == nullptr) return fail("upstream_protocol", "content_block_start without a content_block");
      if (stringAt(*block, "type") == "tool_use") {
        auto& call = calls_[intAt(o, "index")];
        call.id = stringAt(*block, "id");
        call.name = stringAt(*block, "name");
      } else if (auto t = stringAt(*block, "text"); !t.empty()) {
        text(t);
      }
    } else if (type == "content_block_delta") {
      const auto* delta = objectAt(o, "delta");
      if (delta == nullptr) return fail("upstream_protocol", "content_block_delta without a delta");
      const std::string kind = stringAt(*delta, "type");
      if (kind == "text_delta") {
        if (auto t = stringAt(*delta, "text"); !t.empty()) text(t);
      } else if (kind == "input_json_delta") {
        auto it = calls_.find(intAt(o, "index"));
        if (it == calls_.end()) return fail("upstream_protocol", "input_json_delta for a block that is not a tool_use");
        it->second.arguments += stringAt(*delta, "partial_json");
      }
      // thinking_delta, signature_delta, citations_delta: not shown.
    } else if (type == "message_delta") {
      if (const auto* delta = objectAt(o, "delta")) {
        if (auto r = stringAt(*delta, "stop_reason"); !r.empty()) c_.finish_reason = finishReason(r);
      }
      if (const auto* usage = objectAt(o, "usage")) {
        c_.usage_known = true;
        c_.output_tokens = intAt(*usage, "output_tokens");  // cumulative
      }
    } else if (type == "message_stop") {
      done_ = true;
    } else if (type == "error") {
      const auto* err = objectAt(o, "error");
      std::string kind = err != nullptr ? stringAt(*err, "type") : "";
      std::string message = err != nullptr ? stringAt(*err, "message") : "";
      fail("upstream_error", fmt::format("upstream error {}: {}", kind.empty() ? "unknown" : kind, message));
    }
    // ping, content_block_stop: nothing to do.
  }
};

class AnthropicWire final : public Wire {
 public:
  std::string url(const std::string& base_url) const override { return base_url + "/messages"; }

  std::vector<std::string> headers(const std::string& api_key) const override {
    std::vector<std::string> h{"Content-Type: application/json", "Accept: text/event-stream",
                               std::string("anthropic-version: ") + kApiVersion};
    if (!api_key.empty()) h.push_back("x-api-key: " + api_key);
    return h;
  }

  json::array start(const Settings&, const std::string& user_message) const override {
    return {json::object{{"role", "user"}, {"content", user_message}}};  // the system prompt is a field
  }

  void append(json::array& messages, const Completion& c, const std::vector<ToolResult>& results) const override {
    json::array blocks;
    if (!c.content.empty()) blocks.emplace_back(json::object{{"type", "text"}, {"text", c.content}});
    for (const auto& call : c.calls) {
      boost::system::error_code ec;
      auto input = json::parse(call.arguments.empty() ? "{}" : call.arguments, ec);
      blocks.emplace_back(json::object{{"type", "tool_use"},
                                       {"id", call.id},
                                       {"name", call.name},
                                       {"input", !ec && input.is_object() ? input : json::object{}}});
    }
    messages.emplace_back(json::object{{"role", "assistant"}, {"content", std::move(blocks)}});
    json::array out;
    for (const auto& r : results) {
      out.emplace_back(json::object{
          {"type", "tool_result"}, {"tool_use_id", r.call_id}, {"content", r.text}, {"is_error", r.is_error}});
    }
    messages.emplace_back(json::object{{"role", "user"}, {"content", std::move(out)}});
  }

  json::object request(const Settings& s, const json::array& messages,
                       const std::vector<ToolRegistry::ModelTool>& tools) const override {
    json::object r{{"model", s.model},
                   {"max_tokens", s.max_tokens > 0 ? s.max_tokens : kDefaultMaxTokens},
                   {"messages", messages},
                   {"stream", true}};
    if (!s.system_prompt.empty()) r["system"] = s.system_prompt;
    if (s.temperature) r["temperature"] = *s.temperature;
    if (!tools.empty()) {
      json::array t;
      for (const auto& tool : tools) {
        json::object schema = tool.parameters;
        if (!schema.contains("type")) schema["type"] = "object";  // the API insists on an object schema
        t.emplace_back(json::object{
            {"name", tool.function_name}, {"description", tool.description}, {"input_schema", std::move(schema)}});
      }
      r["tools"] = std::move(t);
    }
    return r;
  }

  std::unique_ptr<StreamParser> parser(std::function<void(const std::string&)> on_text) const override {
    return std::make_unique<AnthropicParser>(std::move(on_text));
  }
};

}  // namespace

std::unique_ptr<Wire> anthropicWire() {
  return std::make_unique<AnthropicWire>();
}

}  // namespace agentwire::agents::llm
