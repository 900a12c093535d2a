#include "net/request_parse.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <iterator>

namespace agentwire::net {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::optional<std::string> framingProblem(const BeastRequest& msg) {
  auto te = msg.find(http::field::transfer_encoding);
  if (te == msg.end()) return std::nullopt;
  if (msg.find(http::field::content_length) != msg.end()) return "Transfer-Encoding and Content-Length together";
  auto range = msg.equal_range(http::field::transfer_encoding);
  if (std::distance(range.first, range.second) > 1) return "more than one Transfer-Encoding";
  std::string v = lower(std::string(te->value()));
  v.erase(0, v.find_first_not_of(" \t"));
  v.erase(v.find_last_not_of(" \t") + 1);
  if (v != "chunked") return "Transfer-Encoding other than chunked: '" + std::string(te->value()) + "'";
  return std::nullopt;
}

core::Result<HttpRequest> toHttpRequest(BeastRequest& msg) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& f : msg) req.headers[lower(std::string(f.name_string()))] = std::string(f.value());
  auto url = boost::urls::parse_origin_form(req.target);
  if (!url) return core::Error{"bad_request", "malformed request target"};
  req.path = std::string(url->path());
  for (auto p : url->params()) req.query[std::string(p.key)] = std::string(p.value);
  req.body = std::move(msg.body());
  return req;
}

core::Result<HttpRequest> parseHttpRequest(std::string_view raw, std::size_t body_limit) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
  while (!ec && !parser.is_done() && used < raw.size()) {
    raw.remove_prefix(used);
    used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
  }
  if (ec == http::error::body_limit) return core::Error{"too_large", "request body too large"};
  if (ec == http::error::need_more || (!ec && !parser.is_done())) {
    return core::Error{"incomplete", "the request is not complete"};
  }
  if (ec) return core::Error{"bad_request", ec.message()};
  auto& msg = parser.get();
  if (auto problem = framingProblem(msg)) return core::Error{"bad_request", "ambiguous message framing: " + *problem};
  return toHttpRequest(msg);
}

}  // namespace agentwire::net
