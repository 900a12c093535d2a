#pragma once

#include "analytics/sink.hpp"

#include <chrono>
#include <string>
#include <vector>

typedef void CURL;

namespace agentwire::analytics {

// Stores analytics batches in ClickHouse over its HTTP interface: `INSERT … FORMAT JSONEachRow`
// with a gzip-compressed body, one keep-alive connection, libcurl. Only the stable parts of the
// HTTP interface are used, so it works from Debian's 18.16 to current releases.
//
// Table `agentwire_events` (ReplacingMergeTree, by month, ordered by user and time) holds every
// row; the view `agentwire_runs` reads its finished runs.
// ensureSchema() creates both when missing. Not thread-safe: one pipeline thread uses it.
class ClickHouseSink final : public AnalyticsSink {
 public:
  struct Options {
    std::string url = "http://127.0.0.1:8123";
    std::string database = "default";
    std::string user;
    std::string password;
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds request_timeout{10000};
  };

  explicit ClickHouseSink(Options options);
  ~ClickHouseSink() override;
  ClickHouseSink(const ClickHouseSink&) = delete;
  ClickHouseSink& operator=(const ClickHouseSink&) = delete;

  SendResult ensureSchema() override;
  SendResult insert(const Batch& batch) override;
  SendResult contains(const Batch& batch, bool& found) override;
  std::string describe() const override;

  // The DDL run by ensureSchema(), for docs and tests.
  static std::vector<std::string> schemaStatements(const std::string& database);
  static constexpr std::size_t kFirstView = 2;  // schemaStatements(): database, table, then views

 private:
  SendResult addTokenColumns();
  // POSTs `body` to the HTTP interface with `query` in the URL (empty: the body is the query).
  SendResult post(const std::string& query, const std::string& body, bool gzip, std::string* response,
                  std::chrono::milliseconds timeout);

  Options options_;
  CURL* curl_ = nullptr;
};

// gzip (RFC 1952) of `data`; exposed for tests.
std::string gzipCompress(const std::string& data);

}  // namespace agentwire::analytics
