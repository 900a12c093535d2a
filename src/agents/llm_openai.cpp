// OpenAI's Chat Completions with streaming, as served by OpenAI and most compatible servers
// (vLLM, Ollama, llama.cpp, LiteLLM).
#include "agents/llm_wire.hpp"

#include <fmt/format.h>

namespace agentwire::agents::llm {
namespace json = boost::json;

namespace {

class OpenAiParser final : public StreamParser {
 public:
  using StreamParser::StreamParser;

  void data(std::string_view payload) override {
    if (payload == "[DONE]") {
      done_ = true;
      return;
    }
    boost::system::error_code ec;
    auto v = json::parse(payload, ec);
    if (ec || !v.is_object()) {
      return fail("upstream_protocol", fmt::format("malformed stream chunk: {}", payload.substr(0, 200)));
    }
    const auto& o = v.as_object();
    if (const auto* err = objectAt(o, "error")) {  // some servers report a failure inside the stream
      std::string m = stringAt(*err, "message");
      return fail("upstream_error", fmt::format("upstream error: {}", m.empty() ? "unknown" : m));
    }
    // With stream_options.include_usage the last chunk carries the usage and no choice.
    if (const auto* usage = objectAt(o, "usage")) {
      c_.usage_known = true;
      c_.input_tokens = intAt(*usage, "prompt_tokens");
      c_.output_tokens = intAt(*usage, "completion_tokens");
    }
    auto* choices = o.if_contains("choices");
    if (choices == nullptr || !choices->is_array() || choices->as_array().empty()) return;
    if (!choices->as_array()[0].is_object()) return;
    const auto& choice = choices->as_array()[0].as_object();
    if (auto f = stringAt(choice, "finish_reason"); !f.empty()) c_.finish_reason = std::move(f);
    const auto* d = objectAt(choice, "delta");
    if (d == nullptr) return;
    if (auto c = stringAt(*d, "content"); !c.empty()) text(c);
    auto* tc = d->if_contains("tool_calls");
    if (tc == nullptr || !tc->is_array()) return;
    for (const auto& item : tc->as_array()) {
      if (!item.is_object()) continue;
      const auto& call_o = item.as_object();
      auto& call = calls_[intAt(call_o, "index")];
      if (auto id = stringAt(call_o, "id"); !id.empty()) call.id = std::move(id);
      if (const auto* fn = objectAt(call_o, "function")) {
        call.name += stringAt(*fn, "name");
        call.arguments += stringAt(*fn, "arguments");
      }
    }
  }
};

class OpenAiWire final : public Wire {
 public:
  std::string url(const std::string& base_url) const override { return base_url + "/chat/completions"; }

  std::vector<std::string> headers(const std::string& api_key) const override {
    std::vector<std::string> h{"Content-Type: application/json", "Accept: text/event-stream"};
    if (!api_key.empty()) h.push_back("Authorization: Bearer " + api_key);
    return h;
  }

  json::array start(const Settings& s, const std::string& user_message) const override {
    return {json::object{{"role", "system"}, {"content", s.system_prompt}},
            json::object{{"role", "user"}, {"content", user_message}}};
  }

  void append(json::array& messages, const Completion& c, const std::vector<ToolResult>& results) const override {
    json::array tool_calls;
    for (const auto& call : c.calls) {
      tool_calls.emplace_back(
          json::object{{"id", call.id},
                       {"type", "function"},
                       {"function", json::object{{"name", call.name}, {"arguments", call.arguments}}}});
    }
    messages.emplace_back(
        json::object{{"role", "assistant"}, {"content", c.content}, {"tool_calls", std::move(tool_calls)}});
    for (const auto& r : results) {
      messages.emplace_back(json::object{{"role", "tool"}, {"tool_call_id", r.call_id}, {"content", r.text}});
    }
  }

  json::object request(const Settings& s, const json::array& messages,
                       const std::vector<ToolRegistry::ModelTool>& tools) const override {
    json::object r{{"model", s.model},
                   {"messages", messages},
                   {"stream", true},
                   {"stream_options", json::object{{"include_usage", true}}}};
    if (s.temperature) r["temperature"] = *s.temperature;
    if (s.max_tokens > 0) r["max_tokens"] = s.max_tokens;
    if (!tools.empty()) {
      json::array t;
      for (const auto& tool : tools) {
        t.emplace_back(json::object{{"type", "function"},
                                    {"function", json::object{{"name", tool.function_name},
                                                              {"description", tool.description},
                                                              {"parameters", tool.parameters}}}});
      }
      r["tools"] = std::move(t);
    }
    return r;
  }

  std::unique_ptr<StreamParser> parser(std::function<void(const std::string&)> on_text) const override {
    return std::make_unique<OpenAiParser>(std::move(on_text));
  }
};

}  // namespace

std::unique_ptr<Wire> openAiWire() {
  return std::make_unique<OpenAiWire>();
}

}  // namespace agentwire::agents::llm
