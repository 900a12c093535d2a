#include "agents/llm_agent.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <boost/json.hpp>

#include <chrono>
#include <map>

namespace agentwire::agents {
namespace json = boost::json;

namespace {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // streamed in pieces
};

// One streamed completion: SSE lines parsed as they arrive.
struct Stream {
  RunContext* ctx = nullptr;
  std::string message_id;
  std::string pending;  // bytes not yet forming a full line
  std::string content;
  std::map<int64_t, ToolCall> calls;
  std::string raw;  // body, for error messages when the status is not 200
  std::string protocol_error;
  bool done = false;
  bool stalled = false;
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::steady_clock::time_point last_byte = std::chrono::steady_clock::now();

  void line(std::string_view l) {
    if (l.empty() || l.front() == ':' || l.rfind("data:", 0) != 0) return;  // comments, events, ids
    l.remove_prefix(5);
    while (!l.empty() && l.front() == ' ') l.remove_prefix(1);
    if (l == "[DONE]") {
      done = true;
      return;
    }
    boost::system::error_code ec;
    auto v = json::parse(l, ec);
    if (ec || !v.is_object()) {
      protocol_error = fmt::format("malformed stream chunk: {}", std::string(l.substr(0, 200)));
      return;
    }
    auto* choices = v.as_object().if_contains("choices");
    if (choices == nullptr || !choices->is_array() || choices->as_array().empty()) return;
    auto* delta = choices->as_array()[0].as_object().if_contains("delta");
    if (delta == nullptr || !delta->is_object()) return;
    auto& d = delta->as_object();
    if (auto* c = d.if_contains("content"); c != nullptr && c->is_string() && !c->as_string().empty()) {
      std::string piece(c->as_string());
      content += piece;
      ctx->emitter.emit("agent_response_chunk", {{"message_id", message_id}, {"delta", piece}});
    }
    if (auto* tc = d.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
      for (const auto& item : tc->as_array()) {
        if (!item.is_object()) continue;
        const auto& o = item.as_object();
        int64_t index = o.contains("index") && o.at("index").is_int64() ? o.at("index").as_int64() : 0;
        auto& call = calls[index];
        if (auto* id = o.if_contains("id"); id != nullptr && id->is_string()) call.id = std::string(id->as_string());
        if (auto* fn = o.if_contains("function"); fn != nullptr && fn->is_object()) {
          if (auto* n = fn->as_object().if_contains("name"); n != nullptr && n->is_string()) {
            call.name += std::string(n->as_string());
          }
          if (auto* a = fn->as_object().if_contains("arguments"); a != nullptr && a->is_string()) {
            call.arguments += std::string(a->as_string());
          }
        }
      }
    }
  }
};

size_t onData(char* ptr, size_t size, size_t n, void* user) {
  auto& s = *static_cast<Stream*>(user);
  s.last_byte = std::chrono::steady_clock::now();
  std::string_view chunk(ptr, size * n);
  if (s.raw.size() < 4096) s.raw.append(chunk.substr(0, 4096 - s.raw.size()));
  s.pending.append(chunk);
  std::size_t nl;
  while ((nl = s.pending.find('\n')) != std::string::npos) {
    std::string line = s.pending.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    s.pending.erase(0, nl + 1);
    s.line(line);
    if (!s.protocol_error.empty()) return 0;  // aborts the transfer
  }
  return size * n;
}

// Called by libcurl about once a second, and more often while data flows. Non-zero aborts.
int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& s = *static_cast<Stream*>(user);
  if (s.ctx->cancel.cancelled()) return 1;
  // Our own idle check: libcurl's low-speed limit averages over ~5 s, too coarse for a stall.
  if (std::chrono::steady_clock::now() - s.last_byte > s.idle_timeout) {
    s.stalled = true;
    return 1;
  }
  return 0;
}

}  // namespace

LlmAgent::LlmAgent(Options options) : options_(std::move(options)) {}

const std::string& LlmAgent::name() const {
  static const std::string kName = "llm";
  return kName;
}

std::string LlmAgent::run(const RunInput& input, RunContext& ctx) {
  json::array messages{json::object{{"role", "system"}, {"content", options_.system_prompt}},
                       json::object{{"role", "user"}, {"content", input.content}}};
  const std::string url = options_.base_url + "/chat/completions";
  const std::string message_id = ctx.emitter.context().run_id + "_answer";

  for (int step = 1; step <= options_.max_steps; ++step) {
    // One completion is one step of the run: when the run takes up again after a tool approval, the
    // model is not asked again (RunJournal); its answer, content and tool calls, is recorded.
    json::value completion = ctx.step([&]() -> json::value {
      json::object request{{"model", options_.model}, {"messages", messages}, {"stream", true}};
      auto tools = ctx.tools.openAiTools();
      if (!tools.empty()) request["tools"] = std::move(tools);
      std::string body = json::serialize(request);

      Stream s;
      s.ctx = &ctx;
      s.message_id = message_id;
      s.idle_timeout = std::chrono::milliseconds(options_.idle_timeout_ms);
      CURL* curl = curl_easy_init();
      if (curl == nullptr) throw AgentError("internal", "cannot initialise libcurl");
      curl_slist* headers = nullptr;
      headers = curl_slist_append(headers, "Content-Type: application/json");
      headers = curl_slist_append(headers, "Accept: text/event-stream");
      std::string auth = "Authorization: Bearer " + options_.api_key;
      if (!options_.api_key.empty()) headers = curl_slist_append(headers, auth.c_str());
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onProgress);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &s);
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.idle_timeout_ms));
      CURLcode rc = curl_easy_perform(curl);
      long status = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);

      if (ctx.cancel.cancelled()) return json::object{{"cancelled", true}};  // the runner reports stop or timeout
      if (!s.protocol_error.empty()) throw AgentError("upstream_protocol", s.protocol_error);
      if (s.stalled || rc == CURLE_OPERATION_TIMEDOUT) {
        throw AgentError("upstream_timeout", fmt::format("no data from {} for {} ms", url, options_.idle_timeout_ms));
      }
      if (rc != CURLE_OK) throw AgentError("upstream_error", fmt::format("{}: {}", url, curl_easy_strerror(rc)));
      if (status != 200) {
        throw AgentError("upstream_error", fmt::format("upstream answered HTTP {}: {}", status, s.raw.substr(0, 500)));
      }
      if (!s.done && s.calls.empty() && s.content.empty()) {
        throw AgentError("upstream_protocol", "the stream ended without content, tool calls or [DONE]");
      }
      json::array tool_calls;
      for (const auto& [i, c] : s.calls) {
        tool_calls.emplace_back(json::object{{"id", c.id},
                                             {"type", "function"},
                                             {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
      }
      return json::object{{"content", s.content}, {"tool_calls", std::move(tool_calls)}};
    });
    if (ctx.cancel.cancelled() || completion.as_object().contains("cancelled")) return {};
    const auto& answer = completion.as_object();
    std::string content(answer.at("content").as_string());
    const auto& tool_calls = answer.at("tool_calls").as_array();
    if (tool_calls.empty()) return content;

    // The model asked for tools: run them, give it the results, ask again.
    std::string names;
    for (const auto& c : tool_calls) {
      names += (names.empty() ? "" : ", ") + std::string(c.at("function").at("name").as_string());
    }
    ctx.emitter.emit("agent_thinking", {{"reasoning", "calling " + names}, {"step", step}});
    messages.emplace_back(json::object{{"role", "assistant"}, {"content", content}, {"tool_calls", tool_calls}});
    for (const auto& call : tool_calls) {
      std::string id(call.at("id").as_string());
      std::string name(call.at("function").at("name").as_string());
      std::string arguments(call.at("function").at("arguments").as_string());
      boost::system::error_code ec;
      auto args = json::parse(arguments.empty() ? "{}" : arguments, ec);
      json::object argo = !ec && args.is_object() ? args.as_object() : json::object{};
      auto result = ctx.callTool(name, argo, id);
      std::string result_text =
          result ? json::serialize(result.value()) : json::serialize(json::object{{"error", result.error().message}});
      messages.emplace_back(json::object{{"role", "tool"}, {"tool_call_id", id}, {"content", result_text}});
    }
    if (ctx.cancel.cancelled()) return {};
  }
  throw AgentError("too_many_steps", fmt::format("no answer after {} model calls", options_.max_steps));
}

}  // namespace agentwire::agents
