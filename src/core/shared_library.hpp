#pragma once

#include <string>

namespace agentwire::core {

// A shared library opened when first needed (dlopen), for dependencies that only optional
// features use: libcurl (ClickHouse, LLM agents, MCP over HTTP) and libpq (the PostgreSQL store)
// pull in 30 more libraries whose loading and relocation took 11 ms of every start, features on
// or not (docs/performance.md). The library is never unloaded, so resolved addresses stay valid for
// the life of the process. Not thread-safe: build one inside a function-local static.
class SharedLibrary {
 public:
  // Opens `soname` (RTLD_NOW | RTLD_LOCAL: its symbols are for this loader alone).
  explicit SharedLibrary(const char* soname);

  // Stores the address of `name` in `fn`; on failure leaves it null and records the error.
  template <typename F>
  void resolve(const char* name, F*& fn) {
    fn = reinterpret_cast<F*>(address(name));
  }

  bool ok() const { return error_.empty(); }
  // Why the library or one of its symbols could not be loaded ("" when ok()).
  const std::string& error() const { return error_; }

 private:
  void* address(const char* name);

  void* handle_ = nullptr;
  std::string error_;
};

// For a call that takes a handle only the library can have made, reached while the library could
// not be loaded: a bug, not a missing package. Prints which library and why, and aborts.
[[noreturn]] void abortWithoutLibrary(const char* library, const std::string& error);

}  // namespace agentwire::core
