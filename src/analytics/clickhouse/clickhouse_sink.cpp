#include "analytics/clickhouse/clickhouse_sink.hpp"

#include "net/libcurl.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace agentwire::analytics {
namespace {

size_t collect(char* ptr, size_t size, size_t nmemb, void* userdata) {
  static_cast<std::string*>(userdata)->append(ptr, size * nmemb);
  return size * nmemb;
}

// ClickHouse exception codes that mean "the data or the statement is wrong": sending the same
// batch again cannot succeed. Anything else (overload, too many parts, memory, network) is retried.
constexpr std::array kMalformedCodes = {
    6,    // CANNOT_PARSE_TEXT
    25,   // CANNOT_PARSE_ESCAPE_SEQUENCE
    26,   // CANNOT_PARSE_QUOTED_STRING
    27,   // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   // ATTEMPT_TO_READ_AFTER_EOF
    38,   // CANNOT_PARSE_DATE
    41,   // CANNOT_PARSE_DATETIME
    53,   // TYPE_MISMATCH
    62,   // SYNTAX_ERROR
    69,   // ARGUMENT_OUT_OF_BOUND
    70,   // CANNOT_CONVERT_TYPE
    72,   // CANNOT_PARSE_NUMBER
    117,  // INCORRECT_DATA
    354,  // CANNOT_INFLATE_ZLIB / gzip data
};

int exceptionCode(const std::string& body) {
  auto pos = body.find("Code: ");
  if (pos == std::string::npos) return -1;
  try {
    return std::stoi(body.substr(pos + 6, 8));
  } catch (const std::exception&) {
    return -1;
  }
}

std::string firstLine(const std::string& s) {
  auto end = s.find('\n');
  std::string line = s.substr(0, std::min<std::size_t>(end, 300));
  return line;
}

bool safeLiteral(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

}  // namespace

std::string gzipCompress(const std::string& data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string{};
}

std::vector<std::string> ClickHouseSink::schemaStatements(const std::string& db) {
  // Kept to what ClickHouse 18.16 accepts (no DateTime64, LowCardinality, TTL or codecs):
  // milliseconds are a separate column. ReplacingMergeTree on the full key is a backstop
  // against duplicates; the pipeline's check before a retry is what prevents them.
  return {
      fmt::format("CREATE DATABASE IF NOT EXISTS {}", db),
      fmt::format("CREATE TABLE IF NOT EXISTS {}.agentwire_events ("
                  "event_date Date, ts DateTime('UTC'), ts_ms UInt64, node String, kind String, "
                  "user_id String, thread_id String, run_id String, connection_id String, agent String, "
                  "outcome String, event_type String, reason String, seq Int64, latency_us Int64, "
                  "duration_ms Int64, count Int64, code Int64, batch_id String, row_no UInt32, "
                  "input_tokens Int64, output_tokens Int64) "
                  "ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(event_date) "
                  "ORDER BY (user_id, ts, batch_id, row_no)",
                  db),
      // A plain view, not a materialized one: ClickHouse killed in the middle of an insert can
      // keep the rows in the table but not in a view fed by it (the two are not one atomic
      // write), and the duplicate check then rightly skips the retry, so a materialized copy
      // would miss those runs for good. Reading through to the table cannot diverge from it.
      fmt::format("CREATE VIEW IF NOT EXISTS {0}.agentwire_runs AS SELECT event_date, ts, ts_ms, node, agent, "
                  "outcome, user_id, thread_id, run_id, duration_ms, count AS tool_calls, reason, input_tokens, "
                  "output_tokens, batch_id, row_no FROM {0}.agentwire_events WHERE kind = 'run_finished'",
                  db),
  };
}

ClickHouseSink::ClickHouseSink(Options options) : options_(std::move(options)) {
  if (!safeLiteral(options_.database)) {
    throw std::runtime_error(
        fmt::format("analytics.database '{}' must be letters, digits, '-' or '_'", options_.database));
  }
  // Without libcurl (not installed: it is opened at need) every send fails as an outage would, so
  // analytics is degraded, spooled and says why, and chat goes on.
  curl_ = curl_easy_init();
}

ClickHouseSink::~ClickHouseSink() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

std::string ClickHouseSink::describe() const {
  return fmt::format("ClickHouse at {}", options_.url);
}

SendResult ClickHouseSink::post(const std::string& query, const std::string& body, bool gzip, std::string* response,
                                std::chrono::milliseconds timeout) {
  if (curl_ == nullptr) {
    return SendResult{SendStatus::Transient, "cannot initialise libcurl: " + net::libcurlError()};
  }
  // The database is named in every statement: the URL must work before it exists.
  std::string url = options_.url + "/?";
  if (!query.empty()) {
    char* q = curl_easy_escape(curl_, query.c_str(), static_cast<int>(query.size()));
    url += "query=";
    url += q;
    curl_free(q);
    url += "&input_format_skip_unknown_fields=1";
  }
  std::string reply;
  curl_easy_reset(curl_);
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply);
  if (!options_.user.empty()) {
    curl_easy_setopt(curl_, CURLOPT_USERNAME, options_.user.c_str());
    curl_easy_setopt(curl_, CURLOPT_PASSWORD, options_.password.c_str());
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: text/plain; charset=utf-8");
  if (gzip) headers = curl_slist_append(headers, "Content-Encoding: gzip");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(curl_);
  long status = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  if (response != nullptr) *response = reply;
  if (rc != CURLE_OK) {
    return SendResult{SendStatus::Transient, fmt::format("{} is unreachable: {}", describe(), curl_easy_strerror(rc))};
  }
  if (status == 200) return SendResult{SendStatus::Ok, {}};
  int code = exceptionCode(reply);
  bool malformed = std::find(kMalformedCodes.begin(), kMalformedCodes.end(), code) != kMalformedCodes.end();
  return SendResult{malformed ? SendStatus::Rejected : SendStatus::Transient,
                    fmt::format("{} answered HTTP {}: {}", describe(), status, firstLine(reply))};
}

SendResult ClickHouseSink::ensureSchema() {
  // Versions before 2026-11-29 created agentwire_runs as a materialized view; it is replaced by
  // the plain view (its rows are all in agentwire_events, so nothing is lost).
  std::string engine;
  SendResult found = post({},
                          fmt::format("SELECT engine FROM system.tables WHERE database = '{}' AND name = "
                                      "'agentwire_runs' FORMAT TabSeparated",
                                      options_.database),
                          false, &engine, options_.connect_timeout * 2);
  if (found.status != SendStatus::Ok) return found;
  if (engine.rfind("MaterializedView", 0) == 0) {
    SendResult dropped = post({}, fmt::format("DROP TABLE IF EXISTS {}.agentwire_runs", options_.database), false,
                              nullptr, options_.connect_timeout * 2);
    if (dropped.status != SendStatus::Ok) return dropped;
  }
  const auto statements = schemaStatements(options_.database);
  for (std::size_t i = 0; i < statements.size(); ++i) {
    // The views come after the table has every column they read.
    if (i == kFirstView) {
      SendResult migrated = addTokenColumns();
      if (migrated.status != SendStatus::Ok) return migrated;
    }
    // DDL is quick: a server that accepts but does not answer must not hold startup for long.
    SendResult r = post({}, statements[i], false, nullptr, options_.connect_timeout * 2);
    if (r.status != SendStatus::Ok) return r;
  }
  return {};
}

SendResult ClickHouseSink::addTokenColumns() {
  // Tables made before 2026-11-30 have no token columns, and their agentwire_runs view does not
  // show them: the columns are added (defaults 0 for old rows) and the view made again.
  auto hasColumn = [this](const char* table, bool& found) {
    std::string reply;
    SendResult r = post({},
                        fmt::format("SELECT count() FROM system.columns WHERE database = '{}' AND table = '{}' AND "
                                    "name = 'input_tokens' FORMAT TabSeparated",
                                    options_.database, table),
                        false, &reply, options_.connect_timeout * 2);
    found = reply.rfind("1", 0) == 0;
    return r;
  };
  bool found = false;
  SendResult r = hasColumn("agentwire_events", found);
  if (r.status != SendStatus::Ok) return r;
  if (!found) {
    r = post(
        {},
        fmt::format("ALTER TABLE {}.agentwire_events ADD COLUMN input_tokens Int64, ADD COLUMN output_tokens Int64",
                    options_.database),
        false, nullptr, options_.connect_timeout * 2);
    if (r.status != SendStatus::Ok) return r;
  }
  r = hasColumn("agentwire_runs", found);
  if (r.status != SendStatus::Ok || found) return r;
  // Absent or made by an older version (a plain view: nothing is stored in it).
  return post({}, fmt::format("DROP TABLE IF EXISTS {}.agentwire_runs", options_.database), false, nullptr,
              options_.connect_timeout * 2);
}

SendResult ClickHouseSink::insert(const Batch& batch) {
  std::string body = gzipCompress(batch.body);
  if (body.empty() && !batch.body.empty()) return SendResult{SendStatus::Transient, "gzip compression failed"};
  std::string reply;
  SendResult r = post(fmt::format("INSERT INTO {}.agentwire_events FORMAT JSONEachRow", options_.database), body, true,
                      &reply, options_.request_timeout);
  if (r.status == SendStatus::Transient && exceptionCode(reply) == 60) {  // UNKNOWN_TABLE: dropped while we ran
    if (ensureSchema().status == SendStatus::Ok) return insert(batch);
  }
  return r;
}

SendResult ClickHouseSink::contains(const Batch& batch, bool& found) {
  if (!safeLiteral(batch.id) || !safeLiteral(batch.first_date)) {
    return SendResult{SendStatus::Rejected, "batch id or date is not a safe literal"};
  }
  std::string reply;
  SendResult r = post({},
                      fmt::format("SELECT count() FROM {}.agentwire_events WHERE event_date >= '{}' AND batch_id = "
                                  "'{}' FORMAT TabSeparated",
                                  options_.database, batch.first_date, batch.id),
                      false, &reply, options_.request_timeout);
  if (r.status != SendStatus::Ok) return r;
  try {
    found = std::stoull(reply) > 0;
  } catch (const std::exception&) {
    return SendResult{SendStatus::Transient, "unexpected answer to the duplicate check: " + firstLine(reply)};
  }
  return {};
}

}  // namespace agentwire::analytics
