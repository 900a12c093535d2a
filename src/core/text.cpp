#include "core/text.hpp"

#include <cstdint>

namespace agentwire::core {

bool validUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

std::string truncateUtf8(std::string_view s, std::size_t max_chars) {
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    if (chars == max_chars) break;
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++chars;
  }
  return std::string(s.substr(0, i));
}

std::string titleFrom(std::string_view content, std::size_t max_chars) {
  auto nl = content.find_first_of("\r\n");
  std::string_view line = content.substr(0, nl);
  auto b = line.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  auto e = line.find_last_not_of(" \t");
  line = line.substr(b, e - b + 1);
  std::string t = truncateUtf8(line, max_chars);
  if (t.size() < line.size() && max_chars > 0) {
    t = truncateUtf8(line, max_chars - 1) + "\u2026";
  }
  return t;
}

}  // namespace agentwire::core
