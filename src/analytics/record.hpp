#pragma once

#include <cstdint>
#include <string>

namespace agentwire::analytics {

// One analytics row. Every kind uses the same wide row so one table (and one insert per
// batch) holds them all; fields a kind does not use stay empty or zero.
struct Record {
  std::string kind;   // connection_opened, connection_closed, message_received, event_delivered,
                      // run_started, run_finished, delivery_failed, client_error
  int64_t ts_ms = 0;  // filled in by record() when 0
  std::string user_id;
  std::string thread_id;
  std::string run_id;
  std::string connection_id;
  std::string agent;
  std::string outcome;     // run_finished: completed, error, stopped, timeout
  std::string event_type;  // event_delivered: the stream event's type
  std::string reason;      // error code, close reason, failure reason
  int64_t seq = 0;
  int64_t latency_us = 0;     // event_delivered: deliver() call to the frame queued on every live connection
  int64_t duration_ms = 0;    // run_finished, connection_closed
  int64_t count = 0;          // event_delivered: live connections reached; run_finished: tool calls
  int64_t code = 0;           // connection_closed: WebSocket close code
  int64_t input_tokens = 0;   // run_finished: summed over the run's model calls
  int64_t output_tokens = 0;  // run_finished
};

// Where components hand their analytics rows. record() never blocks and never fails the
// caller: a row it cannot keep is counted as dropped. Thread-safe.
class Recorder {
 public:
  virtual ~Recorder() = default;
  virtual void record(Record&& r) = 0;
  // False when analytics is disabled: callers may skip building the row.
  virtual bool enabled() const = 0;
};

// The recorder used when analytics is not wired (unit tests, tools).
class NullRecorder final : public Recorder {
 public:
  void record(Record&&) override {}
  bool enabled() const override { return false; }
  static NullRecorder& instance() {
    static NullRecorder r;
    return r;
  }
};

}  // namespace agentwire::analytics
