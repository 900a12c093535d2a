#include "agents/echo_agent.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace agentwire::agents {
std::string EchoAgent::run(const RunInput& input, RunContext& ctx) {
  ctx.emitter.emit("agent_thinking", {{"reasoning", "I will count the words, then echo the message."}, {"step", 1}});
  if (ctx.cancel.cancelled()) return {};
  auto counted = ctx.callTool("word_count", {{"text", input.content}});
  int64_t words = counted ? counted->as_object().at("words").as_int64() : 0;
  if (ctx.cancel.cancelled()) return {};

  std::string answer = "Echo (" + std::to_string(words) + (words == 1 ? " word" : " words") + "): " + input.content;
  // Stream in chunks of up to 16 bytes, never splitting a UTF-8 sequence.
  std::string message_id = ctx.emitter.context().run_id + "_answer";
  std::size_t pos = 0;
  while (pos < answer.size()) {
    std::size_t end = std::min(answer.size(), pos + 16);
    while (end < answer.size() && (static_cast<unsigned char>(answer[end]) & 0xC0) == 0x80) ++end;
    ctx.emitter.emit("agent_response_chunk", {{"message_id", message_id}, {"delta", answer.substr(pos, end - pos)}});
    pos = end;
    if (ctx.cancel.cancelled()) return {};
  }
  return answer;
}

}  // namespace agentwire::agents
