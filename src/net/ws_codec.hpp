#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentwire::net::wsproto {

// RFC 6455 framing for the server side, without extensions: what agentwire's WebSocket sessions
// speak once Beast has done the HTTP upgrade. Written for this server (rather than Beast's
// websocket::stream) so that a connection owns no read buffer while idle (reads land in a buffer
// of the I/O thread; only an unfinished frame or fragmented message is kept per connection) and
// so that every frame queued on a connection goes out in one gathered write.

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes the decoder answers protocol violations with.
inline constexpr int kProtocolError = 1002;
inline constexpr int kInvalidPayload = 1007;  // a text message (or close reason) that is not UTF-8
inline constexpr int kTooBig = 1009;
inline constexpr int kNoStatus = 1005;  // a close frame without a code (never sent on the wire)

inline constexpr std::size_t kMaxHeader = 10;  // a server frame's header: no mask
inline constexpr std::size_t kMaxControlPayload = 125;

// Writes the header of an unmasked frame with FIN set carrying `payload` bytes; returns its length
// (2, 4 or 10 bytes, always the shortest form).
std::size_t encodeHeader(Opcode op, std::size_t payload, uint8_t* out);

// The payload of a close frame: the code, then the reason cut at a UTF-8 boundary to fit in a
// control frame.
std::string closePayload(int code, std::string_view reason);

// Whether a peer may send this close code (RFC 6455 7.4, IANA registry): 1000-1003, 1007-1014,
// 3000-4999.
bool validCloseCode(int code);

class Decoder {
 public:
  // What complete frames become. Views are valid only during the call.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onMessage(std::string_view payload, bool text) = 0;
    virtual void onPing(std::string_view payload) = 0;
    virtual void onPong(std::string_view payload) = 0;
    // code kNoStatus when the frame had none. Nothing is decoded after it.
    virtual void onClose(int code, std::string_view reason) = 0;
  };

  explicit Decoder(std::size_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Decodes every frame `data` completes (with what earlier calls left), unmasking in place.
  // Returns 0, or the close code to fail the connection with: kProtocolError (unmasked, reserved
  // bits, unknown opcode, bad fragmentation, bad control frame, non-minimal length), kInvalidPayload
  // (text that is not UTF-8), kTooBig (a message over the limit, known from the header: its payload
  // is never buffered). After an error or a close frame it decodes nothing more.
  int feed(char* data, std::size_t size, Handler& handler);

  // Bytes held between calls: an unfinished frame and the fragments of an unfinished message.
  // Heap bytes only: an empty string's inline capacity costs nothing beyond the object.
  std::size_t bufferedBytes() const { return heapBytes(partial_) + heapBytes(message_); }
  bool done() const { return done_; }

 private:
  // Decodes whole frames from buf; sets `consumed` to the bytes used.
  int decode(char* buf, std::size_t size, std::size_t& consumed, Handler& handler);
  static std::size_t heapBytes(const std::string& s) {
    return s.capacity() > std::string().capacity() ? s.capacity() : 0;
  }
  int frame(uint8_t opcode, bool fin, std::string_view payload, Handler& handler);

  std::size_t max_message_;
  std::string partial_;  // an unfinished frame, carried to the next feed
  std::string message_;  // the fragments of an unfinished message
  bool in_message_ = false;
  bool message_text_ = false;
  bool done_ = false;
};

}  // namespace agentwire::net::wsproto
