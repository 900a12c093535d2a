#include "core/shared_library.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace agentwire::core {

SharedLibrary::SharedLibrary(const char* soname) : handle_(dlopen(soname, RTLD_NOW | RTLD_LOCAL)) {
  if (handle_ == nullptr) {
    const char* why = dlerror();
    error_ = why != nullptr ? why : std::string("cannot open ") + soname;
  }
}

void* SharedLibrary::address(const char* name) {
  if (handle_ == nullptr) return nullptr;
  dlerror();  // clear a stale error, so a null below is this lookup's
  void* a = dlsym(handle_, name);
  if (a == nullptr && error_.empty()) {
    const char* why = dlerror();
    error_ = why != nullptr ? why : std::string("no symbol ") + name;
  }
  return a;
}

void abortWithoutLibrary(const char* library, const std::string& error) {
  std::fprintf(stderr, "agentwire: a %s call without %s: %s\n", library, library, error.c_str());
  std::abort();
}

}  // namespace agentwire::core
