#include "analytics/analytics_component.hpp"

#include "core/logging.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <stdexcept>

namespace agentwire::analytics {
namespace {

size_t collect(char* ptr, size_t size, size_t nmemb, void* userdata) {
  static_cast<std::string*>(userdata)->append(ptr, size * nmemb);
  return size * nmemb;
}

}  // namespace

AnalyticsComponent::AnalyticsComponent(core::Config::Analytics config, std::vector<std::string> dependencies)
    : Component("analytics", std::move(dependencies),
                config.required ? lifecycle::Criticality::Critical : lifecycle::Criticality::Optional),
      config_(std::move(config)),
      log_(core::logger("analytics")) {}

void AnalyticsComponent::start() {
  if (!config_.enabled) {
    setHealth(lifecycle::HealthState::Healthy, "disabled by configuration");
    return;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw std::runtime_error("cannot initialise libcurl");
  std::string body;
  std::string url = config_.url + "/ping";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms) * 2);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    throw std::runtime_error(fmt::format("ClickHouse at {} is unreachable: {}", config_.url, curl_easy_strerror(rc)));
  }
  if (status != 200) throw std::runtime_error(fmt::format("ClickHouse at {} answered HTTP {}", config_.url, status));
  log_->info("ClickHouse at {} is reachable", config_.url);
}

}  // namespace agentwire::analytics
