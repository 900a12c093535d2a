#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace agentwire::core {

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool validUtf8(std::string_view s);

// The longest prefix of `s` that has at most `max_chars` code points and ends on a code point
// boundary (`s` must be valid UTF-8). Never cuts a multi-byte sequence in half.
std::string truncateUtf8(std::string_view s, std::size_t max_chars);

// A title made from a message: its first line, surrounding spaces removed, at most `max_chars`
// code points; "…" marks a cut.
std::string titleFrom(std::string_view content, std::size_t max_chars);

}  // namespace agentwire::core
