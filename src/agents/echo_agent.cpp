#include "agents/echo_agent.hpp"

#include "core/ids.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <sstream>

namespace agentwire::agents {
namespace {

int64_t wordCount(const std::string& s) {
  std::istringstream in(s);
  int64_t n = 0;
  std::string w;
  while (in >> w) ++n;
  return n;
}

}  // namespace

const std::string& EchoAgent::name() const {
  static const std::string kName = "echo";
  return kName;
}

std::string EchoAgent::run(const RunInput& input, UserEmitter& emitter, const CancelToken& cancel) {
  emitter.emit("agent_thinking", {{"reasoning", "I will count the words, then echo the message."}, {"step", 1}});
  if (cancel.cancelled()) return {};

  std::string call_id = core::newId("call");
  emitter.emit(
      "tool_executing",
      {{"tool_call_id", call_id}, {"tool_name", "word_count"}, {"args", boost::json::object{{"text", input.content}}}});
  auto t0 = std::chrono::steady_clock::now();
  int64_t words = wordCount(input.content);
  double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  emitter.emit("tool_completed", {{"tool_call_id", call_id},
                                  {"tool_name", "word_count"},
                                  {"result", boost::json::object{{"words", words}}},
                                  {"duration_ms", took}});
  if (cancel.cancelled()) return {};

  std::string answer = "Echo (" + std::to_string(words) + (words == 1 ? " word" : " words") + "): " + input.content;
  // Stream in chunks of up to 16 bytes, never splitting a UTF-8 sequence.
  std::string message_id = emitter.context().run_id + "_answer";
  std::size_t pos = 0;
  while (pos < answer.size()) {
    std::size_t end = std::min(answer.size(), pos + 16);
    while (end < answer.size() && (static_cast<unsigned char>(answer[end]) & 0xC0) == 0x80) ++end;
    emitter.emit("agent_response_chunk", {{"message_id", message_id}, {"delta", answer.substr(pos, end - pos)}});
    pos = end;
    if (cancel.cancelled()) return {};
  }
  return answer;
}

}  // namespace agentwire::agents
