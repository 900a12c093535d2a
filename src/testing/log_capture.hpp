#pragma once

#include "core/logging.hpp"

#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>
#include <string>

namespace agentwire::testing {

// Everything the named loggers write while this object lives. For unit tests only.
class LogCapture {
 public:
  LogCapture() { core::addLogSink(sink_); }
  ~LogCapture() { core::removeLogSink(sink_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() {
    sink_->flush();
    return out_.str();
  }
  // How many times `what` occurs in the captured text.
  std::size_t count(const std::string& what) {
    std::string t = text();
    std::size_t n = 0;
    for (auto p = t.find(what); p != std::string::npos; p = t.find(what, p + 1)) ++n;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
};

}  // namespace agentwire::testing
