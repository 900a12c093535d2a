#include "net/ws_codec.hpp"

#include "core/text.hpp"

#include <algorithm>
#include <cstring>

namespace agentwire::net::wsproto {
namespace {

constexpr std::size_t kShrinkAbove = 4096;  // an idle connection keeps no buffer larger than this

void unmask(char* p, std::size_t n, const uint8_t* key) {
  // Eight bytes at a time with the key repeated; the tail byte by byte.
  const uint8_t repeated[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  uint64_t k8 = 0;
  std::memcpy(&k8, repeated, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k8;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

void release(std::string& s) {
  if (s.capacity() > kShrinkAbove) std::string().swap(s);
}

}  // namespace

std::size_t encodeHeader(Opcode op, std::size_t payload, uint8_t* out) {
  out[0] = static_cast<uint8_t>(0x80 | static_cast<uint8_t>(op));
  if (payload < 126) {
    out[1] = static_cast<uint8_t>(payload);
    return 2;
  }
  if (payload <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<uint8_t>(payload >> 8);
    out[3] = static_cast<uint8_t>(payload);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(static_cast<uint64_t>(payload) >> (56 - 8 * i));
  return 10;
}

std::string closePayload(int code, std::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>((code >> 8) & 0xFF));
  out.push_back(static_cast<char>(code & 0xFF));
  std::size_t n = std::min(reason.size(), kMaxControlPayload - 2);
  // Back off to a code point boundary (never in the middle of a multi-byte sequence).
  while (n > 0 && n < reason.size() && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
  out.append(reason.substr(0, n));
  return out;
}

bool validCloseCode(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

int Decoder::feed(char* data, std::size_t size, Handler& handler) {
  if (done_) return 0;
  std::size_t consumed = 0;
  int rc = 0;
  if (partial_.empty()) {
    rc = decode(data, size, consumed, handler);
    if (rc == 0 && !done_) partial_.assign(data + consumed, size - consumed);
  } else {
    partial_.append(data, size);
    rc = decode(partial_.data(), partial_.size(), consumed, handler);
    partial_.erase(0, consumed);
  }
  if (rc != 0 || done_) {
    std::string().swap(partial_);
    std::string().swap(message_);
  } else if (partial_.empty()) {
    release(partial_);
  }
  return rc;
}

int Decoder::decode(char* buf, std::size_t size, std::size_t& consumed, Handler& handler) {
  std::size_t pos = 0;
  while (!done_ && size - pos >= 2) {
    const auto* p = reinterpret_cast<const uint8_t*>(buf + pos);
    std::size_t avail = size - pos;
    bool fin = (p[0] & 0x80) != 0;
    if ((p[0] & 0x70) != 0) return kProtocolError;  // no extension was negotiated
    uint8_t op = p[0] & 0x0F;
    bool control = (op & 0x08) != 0;
    if (op != 0x0 && op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA) return kProtocolError;
    if ((p[1] & 0x80) == 0) return kProtocolError;  // a client must mask every frame
    uint64_t len = p[1] & 0x7F;
    std::size_t header = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t{p[2]} << 8) | p[3];
      if (len < 126) return kProtocolError;  // not the shortest form
      header = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      if ((len >> 63) != 0 || len <= 0xFFFF) return kProtocolError;
      header = 10;
    }
    if (control) {
      if (!fin || len > kMaxControlPayload) return kProtocolError;
    } else {
      if (op == 0x0 && !in_message_) return kProtocolError;  // a continuation of nothing
      if (op != 0x0 && in_message_) return kProtocolError;   // a new message inside a fragmented one
      uint64_t so_far = in_message_ ? message_.size() : 0;
      if (len > max_message_ || so_far + len > max_message_) return kTooBig;
    }
    header += 4;
    if (avail < header || avail - header < len) break;  // wait for the rest of the frame
    uint8_t key[4];
    std::memcpy(key, p + header - 4, 4);
    char* payload = buf + pos + header;
    unmask(payload, static_cast<std::size_t>(len), key);
    pos += header + static_cast<std::size_t>(len);
    if (int rc = frame(op, fin, std::string_view(payload, static_cast<std::size_t>(len)), handler); rc != 0) {
      consumed = pos;
      return rc;
    }
  }
  consumed = done_ ? size : pos;
  return 0;
}

int Decoder::frame(uint8_t op, bool fin, std::string_view payload, Handler& handler) {
  switch (op) {
    case 0x8: {
      done_ = true;
      if (payload.empty()) {
        handler.onClose(kNoStatus, {});
        return 0;
      }
      if (payload.size() == 1) return kProtocolError;
      int code = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
      if (!validCloseCode(code)) return kProtocolError;
      auto reason = payload.substr(2);
      if (!core::validUtf8(reason)) return kInvalidPayload;
      handler.onClose(code, reason);
      return 0;
    }
    case 0x9: handler.onPing(payload); return 0;
    case 0xA: handler.onPong(payload); return 0;
    default: break;
  }
  if (fin && !in_message_) {  // the common case: one frame, no copy
    bool text = op == 0x1;
    if (text && !core::validUtf8(payload)) return kInvalidPayload;
    handler.onMessage(payload, text);
    return 0;
  }
  if (!in_message_) {
    in_message_ = true;
    message_text_ = op == 0x1;
    message_.assign(payload);
  } else {
    message_.append(payload);
  }
  if (!fin) return 0;
  in_message_ = false;
  if (message_text_ && !core::validUtf8(message_)) return kInvalidPayload;
  handler.onMessage(message_, message_text_);
  message_.clear();
  release(message_);
  return 0;
}

}  // namespace agentwire::net::wsproto
