#pragma once

#include "net/http_server.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace agentwire::app {

// A file of web/ compiled into the binary (cmake/embed_web.cmake).
struct WebAsset {
  const char* name;  // "index.html"
  const char* content_type;
  std::string_view data;
};

const std::vector<WebAsset>& webAssets();

// Routes the pages: GET / (chat), GET /status (operators), GET /web/<file>, GET /api/openapi.json. Files come from the
// binary, or from `web_dir` when it is set (edit and reload without rebuilding).
void registerWebRoutes(net::HttpServer& server, const std::string& web_dir);

}  // namespace agentwire::app
