#pragma once

#include <optional>
#include <string>

namespace agentwire::testing {

// The PostgreSQL the test services started (AW_TEST_PG_URL, set by scripts/run-tests). nullopt
// when there is none; then requireServices() tells whether that is a failure (under
// scripts/run-tests, AW_REQUIRE_SERVICES=1) or a skip (a developer running one test binary).
std::optional<std::string> postgresUrl();
bool requireServices();

// A fresh database on that server, dropped when the object goes (tests that need one to
// themselves: migrations, several stores).
class ScratchDatabase {
 public:
  explicit ScratchDatabase(const std::string& server_url);
  ~ScratchDatabase();
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;
  const std::string& url() const { return url_; }

 private:
  std::string server_url_;
  std::string name_;
  std::string url_;
};

}  // namespace agentwire::testing
