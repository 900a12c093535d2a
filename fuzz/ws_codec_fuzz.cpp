// libFuzzer: the bytes a WebSocket client sends after the upgrade. The decoder must answer every
// input with messages or one of its close codes, never crash, never hold more than one frame's
// header plus the message limit, and decode the same whatever way the bytes are split into reads.
#include "core/text.hpp"
#include "net/ws_codec.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using agentwire::net::wsproto::Decoder;
constexpr std::size_t kMax = 4096;

struct Collect : Decoder::Handler {
  std::vector<std::string> events;
  void onMessage(std::string_view p, bool text) override {
    if (p.size() > kMax) std::abort();
    if (text && !agentwire::core::validUtf8(p)) std::abort();
    events.push_back((text ? "T" : "B") + std::string(p));
  }
  void onPing(std::string_view p) override { events.push_back("i" + std::string(p)); }
  void onPong(std::string_view p) override { events.push_back("o" + std::string(p)); }
  void onClose(int code, std::string_view reason) override {
    events.push_back("c" + std::to_string(code) + std::string(reason));
  }
};

int run(const uint8_t* data, std::size_t size, std::size_t step, Collect& c) {
  Decoder d(kMax);
  int rc = 0;
  for (std::size_t i = 0; i < size && rc == 0; i += step) {
    std::string chunk(reinterpret_cast<const char*>(data) + i, std::min(step, size - i));
    rc = d.feed(chunk.data(), chunk.size(), c);
    if (d.bufferedBytes() > 2 * kMax + 64) std::abort();
  }
  if (rc != 0 && rc != 1002 && rc != 1007 && rc != 1009) std::abort();
  return rc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::size_t step = 1 + data[0] % 32;
  Collect whole, split;
  int a = run(data + 1, size - 1, size, whole);
  int b = run(data + 1, size - 1, step, split);
  // Split reads see a prefix of what one read sees (an error may be found before later frames).
  if (a != b || whole.events != split.events) std::abort();
  return 0;
}
