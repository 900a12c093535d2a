#pragma once

#include <string>

namespace agentwire::net {

// libcurl is opened on first use (core::SharedLibrary), not linked: src/net/libcurl.cpp defines
// the curl_* functions agentwire calls and forwards them to libcurl.so.4. Callers use curl's API
// as usual; when libcurl cannot be loaded, curl_easy_init() returns null (which every caller
// already handles) and this says why.
//
// Why libcurl.so.4 could not be loaded, "" when it is (loads it if it is not yet). Thread-safe.
const std::string& libcurlError();

}  // namespace agentwire::net
