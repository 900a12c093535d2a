#pragma once

#include <string>
#include <utility>
#include <variant>

namespace agentwire::core {

// An error on the hot path: a stable code from docs/protocol.md and a human message.
struct Error {
  std::string code;  // invalid_json, missing_field, thread_not_found, forbidden, internal, ...
  std::string message;
};

// Value or Error; nothing on the connection and delivery paths throws.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace agentwire::core
