#pragma once

#include "analytics/sink.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>

namespace agentwire::analytics {

// Batches waiting for the analytics store, on disk, oldest first.
//
// One append-only segment file per batch (`seg-<n>.awb`: magic, CRC-32 and length of the
// payload, then the payload), written to a temporary name, fsynced and renamed, so a crash
// leaves either the whole batch or nothing. A file that fails its checksum is moved to
// `rejected/` with a `.corrupt` suffix; batches the store refused are moved there too, for an
// operator to look at. Total size is capped: append() refuses a batch that would pass the cap.
//
// Used from one thread; bytes() and batches() may be read from any thread.
class Spool {
 public:
  Spool(std::filesystem::path dir, uint64_t max_bytes);

  // Creates the directory and indexes the segments left by a previous run. Throws on I/O errors
  // (startup only).
  void open();

  // False (nothing written) when the batch would take the spool past its cap or cannot be written.
  bool append(const Batch& batch);
  // The oldest batch, or nullopt when empty. Corrupt segments on the way are moved aside.
  std::optional<Batch> front();
  // Removes the oldest batch (after it was stored).
  void popFront();
  // Moves the oldest batch to rejected/ (the store refused it), with the reason beside it.
  void rejectFront(const std::string& reason);
  // Writes a batch that never entered the spool straight to rejected/.
  void rejectBatch(const Batch& batch, const std::string& reason);

  bool empty() const { return segments_.empty(); }  // the owning thread only; others use batches()
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t batches() const { return count_.load(std::memory_order_relaxed); }
  uint64_t corrupt() const { return corrupt_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  const std::filesystem::path& dir() const { return dir_; }

  // Encoding of one segment, exposed for tests.
  static std::string encode(const Batch& batch);
  static std::optional<Batch> decode(const std::string& data);

 private:
  struct Segment {
    std::filesystem::path path;
    uint64_t size = 0;
  };
  void moveAside(const Segment& s, const std::string& suffix, const std::string& reason);
  void dropFront();

  std::filesystem::path dir_;
  uint64_t max_bytes_;
  std::deque<Segment> segments_;
  uint64_t next_ = 1;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> corrupt_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace agentwire::analytics
