#pragma once

// The parts of reading an HTTP request that are ours (Beast parses the bytes): framing checks,
// the target and its query, header names. Used by the server and by the fuzzer. Includes Beast:
// for src/net and the fuzz targets only.

#include "core/result.hpp"
#include "net/beast.hpp"
#include "net/http_types.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace agentwire::net {

using BeastRequest = http::request<http::string_body>;

// RFC 9112 6.1 and 6.3: a request with Transfer-Encoding must end in chunked and must not also
// carry Content-Length; anything else is how requests get smuggled past a proxy. The reason, or
// nullopt when the framing is unambiguous.
std::optional<std::string> framingProblem(const BeastRequest& msg);

// Method, target, path, query (percent-decoded), lower-case headers and body. Error bad_request
// for a target that is not origin-form. Moves the body out of `msg`.
core::Result<HttpRequest> toHttpRequest(BeastRequest& msg);

// The whole path from bytes: Beast's parser (with `body_limit`), then the checks above.
// Errors: bad_request, too_large, incomplete (the bytes end before the request does).
core::Result<HttpRequest> parseHttpRequest(std::string_view raw, std::size_t body_limit);

}  // namespace agentwire::net
