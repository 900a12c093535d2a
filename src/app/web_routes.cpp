#include "app/web_assets.hpp"

#include <fstream>
#include <sstream>

namespace agentwire::app {
namespace {

net::HttpReply serveFile(const std::string& web_dir, const std::string& name) {
  const WebAsset* found = nullptr;
  for (const auto& a : webAssets()) {
    if (name == a.name) found = &a;
  }
  // Only names that exist in the build are served, so a path can never leave web/.
  if (found == nullptr) return net::jsonError(404, "not_found", "no such file: " + name);
  net::HttpReply r{200, found->content_type, std::string(found->data), {}, {}, {}};
  if (!web_dir.empty()) {
    std::ifstream f(web_dir + "/" + name, std::ios::binary);
    if (f) {
      std::ostringstream ss;
      ss << f.rdbuf();
      r.body = ss.str();
    }
  }
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

}  // namespace

void registerWebRoutes(net::HttpServer& server, const std::string& web_dir) {
  server.route("GET", "/", [web_dir](const net::HttpRequest&) { return serveFile(web_dir, "index.html"); });
  server.route("GET", "/status", [web_dir](const net::HttpRequest&) { return serveFile(web_dir, "status.html"); });
  // docs/openapi.yaml, converted to JSON by the build.
  server.route("GET", "/api/openapi.json", [](const net::HttpRequest&) { return serveFile("", "openapi.json"); });
  server.route(
      "GET", "/web/",
      [web_dir](const net::HttpRequest& req) {
        return serveFile(web_dir, req.path.substr(std::string("/web/").size()));
      },
      true);
}

}  // namespace agentwire::app
