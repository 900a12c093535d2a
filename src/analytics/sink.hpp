#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace agentwire::analytics {

// A batch of rows, already serialised as JSON lines (one object per line, JSONEachRow).
// The id is unique per batch and is written into every row, so a retried batch can be
// recognised (see AnalyticsSink::contains).
struct Batch {
  std::string id;
  std::string first_date;  // YYYY-MM-DD (UTC) of the oldest row: bounds the duplicate check
  uint64_t rows = 0;
  std::string body;
};

enum class SendStatus {
  Ok,         // stored
  Transient,  // not stored, or unknown whether stored (timeout, connection lost, 5xx): retry later
  Rejected,   // the store refused the data itself (malformed): retrying cannot help
};

struct SendResult {
  SendStatus status = SendStatus::Ok;
  std::string error;
};

// Where analytics batches are stored. Called from one thread (the pipeline's), never from I/O
// threads; calls may block up to the implementation's timeouts.
class AnalyticsSink {
 public:
  virtual ~AnalyticsSink() = default;
  // Creates the tables when missing (idempotent). Transient or Rejected on failure.
  virtual SendResult ensureSchema() = 0;
  virtual SendResult insert(const Batch& batch) = 0;
  // Whether rows of this batch are already stored (after an attempt whose outcome is unknown).
  // Transient when the store cannot be asked; `found` is set otherwise.
  virtual SendResult contains(const Batch& batch, bool& found) = 0;
  // A short description for logs and health ("ClickHouse at http://...").
  virtual std::string describe() const = 0;
};

using AnalyticsSinkPtr = std::unique_ptr<AnalyticsSink>;

}  // namespace agentwire::analytics
