#include "agents/llm_agent.hpp"

#include "agents/llm_wire.hpp"
#include "net/libcurl.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <boost/json.hpp>

#include <chrono>
#include <stdexcept>

namespace agentwire::agents {
namespace json = boost::json;

namespace llm {

json::value Completion::toJson() const {
  json::array tool_calls;
  for (const auto& c : calls) {
    tool_calls.emplace_back(json::object{
        {"id", c.id}, {"type", "function"}, {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
  }
  json::object o{{"content", content}, {"tool_calls", std::move(tool_calls)}, {"finish_reason", finish_reason}};
  if (usage_known) o["usage"] = json::object{{"input_tokens", input_tokens}, {"output_tokens", output_tokens}};
  return o;
}

Completion Completion::fromJson(const json::value& v) {
  Completion c;
  const auto& o = v.as_object();
  c.content = std::string(o.at("content").as_string());
  for (const auto& t : o.at("tool_calls").as_array()) {
    const auto& fn = t.at("function").as_object();
    c.calls.push_back(ToolCall{std::string(t.at("id").as_string()), std::string(fn.at("name").as_string()),
                               std::string(fn.at("arguments").as_string())});
  }
  if (auto* f = o.if_contains("finish_reason"); f != nullptr && f->is_string()) c.finish_reason = f->as_string();
  if (auto* u = o.if_contains("usage"); u != nullptr && u->is_object()) {
    c.usage_known = true;
    c.input_tokens = u->as_object().at("input_tokens").as_int64();
    c.output_tokens = u->as_object().at("output_tokens").as_int64();
  }
  return c;
}

void StreamParser::text(const std::string& piece) {
  c_.content += piece;
  on_text_(piece);
}

void StreamParser::fail(std::string code, std::string message) {
  if (!error_code_.empty()) return;  // the first failure is the one to report
  error_code_ = std::move(code);
  error_message_ = std::move(message);
}

Completion StreamParser::take() {
  for (auto& [index, call] : calls_) c_.calls.push_back(std::move(call));
  calls_.clear();
  if (c_.finish_reason.empty()) c_.finish_reason = c_.calls.empty() ? "stop" : "tool_calls";
  return std::move(c_);
}

}  // namespace llm

namespace {

// One transfer: SSE lines handed to the parser as they arrive.
struct Transfer {
  llm::StreamParser* parser = nullptr;
  const CancelToken* cancel = nullptr;
  std::string pending;  // bytes not yet forming a full line
  std::string raw;      // the body's start, for error messages when the status is not 200
  bool stalled = false;
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::steady_clock::time_point last_byte = std::chrono::steady_clock::now();

  void line(std::string_view l) {
    // Comments, `event:` and `id:` lines carry nothing the payload does not (Anthropic repeats the type).
    if (l.rfind("data:", 0) != 0) return;
    l.remove_prefix(5);
    while (!l.empty() && l.front() == ' ') l.remove_prefix(1);
    parser->data(l);
  }
};

size_t onData(char* ptr, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  t.last_byte = std::chrono::steady_clock::now();
  std::string_view chunk(ptr, size * n);
  if (t.raw.size() < 4096) t.raw.append(chunk.substr(0, 4096 - t.raw.size()));
  t.pending.append(chunk);
  std::size_t nl;
  while ((nl = t.pending.find('\n')) != std::string::npos) {
    std::string line = t.pending.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    t.pending.erase(0, nl + 1);
    t.line(line);
    if (!t.parser->errorCode().empty()) return 0;  // aborts the transfer
  }
  return size * n;
}

// Called by libcurl about once a second, and more often while data flows. Non-zero aborts.
int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.cancel->cancelled()) return 1;
  // Our own idle check: libcurl's low-speed limit averages over ~5 s, too coarse for a stall.
  if (std::chrono::steady_clock::now() - t.last_byte > t.idle_timeout) {
    t.stalled = true;
    return 1;
  }
  return 0;
}

std::unique_ptr<llm::Wire> wireFor(const std::string& provider) {
  if (provider == "openai") return llm::openAiWire();
  if (provider == "anthropic") return llm::anthropicWire();
  throw std::invalid_argument(fmt::format("unknown LLM provider '{}' (openai or anthropic)", provider));
}

}  // namespace

LlmAgent::LlmAgent(Options options) : options_(std::move(options)), wire_(wireFor(options_.provider)) {}

LlmAgent::~LlmAgent() = default;

std::string LlmAgent::run(const RunInput& input, RunContext& ctx) {
  if (!options_.tools.empty()) ctx.allowed_tools = &options_.tools;
  const llm::Settings settings{options_.model, options_.system_prompt, options_.temperature, options_.max_tokens};
  json::array messages = wire_->start(settings, input.content);
  const std::string url = wire_->url(options_.base_url);
  const std::string message_id = ctx.emitter.context().run_id + "_answer";
  ctx.usage = RunUsage{};

  for (int step = 1; step <= options_.max_steps; ++step) {
    // One completion is one step of the run: when the run takes up again after a tool approval, the
    // model is not asked again (RunJournal); its answer, content and tool calls, is recorded.
    json::value recorded = ctx.step([&]() -> json::value {
      std::string body = json::serialize(wire_->request(settings, messages, ctx.tools.modelTools(options_.tools)));
      auto parser = wire_->parser([&](const std::string& piece) {
        ctx.emitter.emit("agent_response_chunk", {{"message_id", message_id}, {"delta", piece}});
      });
      Transfer t;
      t.parser = parser.get();
      t.cancel = &ctx.cancel;
      t.idle_timeout = std::chrono::milliseconds(options_.idle_timeout_ms);
      CURL* curl = curl_easy_init();
      if (curl == nullptr) throw AgentError("internal", "cannot initialise libcurl: " + net::libcurlError());
      curl_slist* headers = nullptr;
      const auto header_lines = wire_->headers(options_.api_key);
      for (const auto& h : header_lines) headers = curl_slist_append(headers, h.c_str());
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onProgress);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.idle_timeout_ms));
      CURLcode rc = curl_easy_perform(curl);
      long status = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);

      if (ctx.cancel.cancelled()) return json::object{{"cancelled", true}};  // the runner reports stop or timeout
      if (status != 200 && status != 0) {
        throw AgentError("upstream_error", fmt::format("upstream answered HTTP {}: {}", status, t.raw.substr(0, 500)));
      }
      if (!parser->errorCode().empty()) throw AgentError(parser->errorCode(), parser->errorMessage());
      if (t.stalled || rc == CURLE_OPERATION_TIMEDOUT) {
        throw AgentError("upstream_timeout", fmt::format("no data from {} for {} ms", url, options_.idle_timeout_ms));
      }
      if (rc != CURLE_OK) throw AgentError("upstream_error", fmt::format("{}: {}", url, curl_easy_strerror(rc)));
      auto c = parser->take();
      if (!parser->done() && c.calls.empty() && c.content.empty()) {
        throw AgentError("upstream_protocol", "the stream ended without content, tool calls or its end marker");
      }
      return c.toJson();
    });
    if (ctx.cancel.cancelled() || recorded.as_object().contains("cancelled")) return {};
    const auto completion = llm::Completion::fromJson(recorded);
    if (completion.usage_known) {
      ctx.usage.known = true;
      ctx.usage.input_tokens += completion.input_tokens;
      ctx.usage.output_tokens += completion.output_tokens;
    }
    ctx.usage.finish_reason = completion.finish_reason;
    if (completion.calls.empty()) return completion.content;

    // The model asked for tools: run them, give it the results, ask again.
    std::string names;
    for (const auto& c : completion.calls) names += (names.empty() ? "" : ", ") + c.name;
    ctx.emitter.emit("agent_thinking", {{"reasoning", "calling " + names}, {"step", step}});
    std::vector<llm::ToolResult> results;
    for (const auto& call : completion.calls) {
      boost::system::error_code ec;
      auto args = json::parse(call.arguments.empty() ? "{}" : call.arguments, ec);
      json::object argo = !ec && args.is_object() ? args.as_object() : json::object{};
      auto result = ctx.callTool(call.name, argo, call.id);
      results.push_back(llm::ToolResult{
          call.id,
          result ? json::serialize(result.value()) : json::serialize(json::object{{"error", result.error().message}}),
          !result});
    }
    wire_->append(messages, completion, results);
    if (ctx.cancel.cancelled()) return {};
  }
  throw AgentError("too_many_steps", fmt::format("no answer after {} model calls", options_.max_steps));
}

}  // namespace agentwire::agents
