#include "testing/postgres.hpp"
#include "testing/redis.hpp"

#include "core/ids.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <stdexcept>

namespace agentwire::testing {
namespace {

void run(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot connect to " + url + ": " + e);
  }
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string e = PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql + ": " + e);
}

}  // namespace

std::optional<std::string> postgresUrl() {
  const char* url = std::getenv("AW_TEST_PG_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

std::optional<std::string> redisUrl() {
  const char* url = std::getenv("AW_TEST_REDIS_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

bool requireServices() {
  const char* v = std::getenv("AW_REQUIRE_SERVICES");
  return v != nullptr && std::string(v) == "1";
}

ScratchDatabase::ScratchDatabase(const std::string& server_url) : server_url_(server_url) {
  name_ = "aw_" + core::newId("db").substr(3);
  run(server_url_, "CREATE DATABASE " + name_);
  auto slash = server_url_.rfind('/');
  url_ = server_url_.substr(0, slash + 1) + name_;
}

ScratchDatabase::~ScratchDatabase() {
  try {
    run(server_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception&) {
  }
}

}  // namespace agentwire::testing
