#include "net/libcurl.hpp"

#include "core/shared_library.hpp"

// The typecheck macros of curl.h (gcc) would rewrite the definitions below.
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <cstdarg>

namespace agentwire::net {
namespace {

struct Libcurl {
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_easy_escape) easy_escape = nullptr;
  decltype(&::curl_free) free = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  std::string error;
};

Libcurl load() {
  Libcurl c;
  core::SharedLibrary so("libcurl.so.4");
  so.resolve("curl_easy_init", c.easy_init);
  so.resolve("curl_easy_cleanup", c.easy_cleanup);
  so.resolve("curl_easy_reset", c.easy_reset);
  so.resolve("curl_easy_perform", c.easy_perform);
  so.resolve("curl_easy_setopt", c.easy_setopt);
  so.resolve("curl_easy_getinfo", c.easy_getinfo);
  so.resolve("curl_easy_strerror", c.easy_strerror);
  so.resolve("curl_easy_escape", c.easy_escape);
  so.resolve("curl_free", c.free);
  so.resolve("curl_slist_append", c.slist_append);
  so.resolve("curl_slist_free_all", c.slist_free_all);
  if (!so.ok()) c.error = "libcurl.so.4 cannot be loaded: " + so.error();
  return c;
}

const Libcurl& libcurl() {
  static const Libcurl c = load();
  return c;
}

// For the calls that take a handle or a list only libcurl can have made.
const Libcurl& loaded() {
  const Libcurl& c = libcurl();
  if (!c.error.empty()) core::abortWithoutLibrary("libcurl", c.error);
  return c;
}

}  // namespace

const std::string& libcurlError() {
  return libcurl().error;
}

}  // namespace agentwire::net

using agentwire::net::libcurl;
using agentwire::net::loaded;

extern "C" {

CURL* curl_easy_init() {
  const auto& c = libcurl();
  return c.error.empty() ? c.easy_init() : nullptr;
}

void curl_easy_cleanup(CURL* curl) {
  if (curl != nullptr) loaded().easy_cleanup(curl);
}

void curl_easy_reset(CURL* curl) {
  loaded().easy_reset(curl);
}

CURLcode curl_easy_perform(CURL* curl) {
  return loaded().easy_perform(curl);
}

// Variadic: the one argument is read with the type its option number says (curl.h: long below
// 10000, then object pointer, function pointer, curl_off_t, blob pointer), as libcurl itself reads
// it, and passed on with that type; pointers of every kind travel as void* / void(*)(), which the
// ABI passes exactly as the typed pointer they were.
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  va_list ap;
  va_start(ap, option);
  CURLcode rc = CURLE_OK;
  const int kind = option / 10000 * 10000;
  if (kind == CURLOPTTYPE_LONG) {
    rc = loaded().easy_setopt(curl, option, va_arg(ap, long));
  } else if (kind == CURLOPTTYPE_FUNCTIONPOINT) {
    using Fn = void (*)();
    rc = loaded().easy_setopt(curl, option, va_arg(ap, Fn));
  } else if (kind == CURLOPTTYPE_OFF_T) {
    rc = loaded().easy_setopt(curl, option, va_arg(ap, curl_off_t));
  } else {  // CURLOPTTYPE_OBJECTPOINT (strings, lists, callback data) and CURLOPTTYPE_BLOB
    rc = loaded().easy_setopt(curl, option, va_arg(ap, void*));
  }
  va_end(ap);
  return rc;
}

// Every CURLINFO_* takes a pointer to where the answer goes.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  CURLcode rc = loaded().easy_getinfo(curl, info, va_arg(ap, void*));
  va_end(ap);
  return rc;
}

const char* curl_easy_strerror(CURLcode code) {
  const auto& c = libcurl();
  return c.error.empty() ? c.easy_strerror(code) : c.error.c_str();
}

char* curl_easy_escape(CURL* curl, const char* string, int length) {
  return loaded().easy_escape(curl, string, length);
}

void curl_free(void* p) {
  if (p != nullptr) loaded().free(p);
}

curl_slist* curl_slist_append(curl_slist* list, const char* string) {
  const auto& c = libcurl();
  return c.error.empty() ? c.slist_append(list, string) : nullptr;
}

void curl_slist_free_all(curl_slist* list) {
  if (list != nullptr) loaded().slist_free_all(list);
}

}  // extern "C"
