#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace agentwire::store {

// Which store shard holds a user's stream (and the messages and runs committed with it): the seam
// where user streams spread over several PostgreSQL primaries (docs/scaling.md). The server runs
// one shard today; Delivery routes every per-user read and write through this map, so more shards
// are a matter of configuration and of routing the thread-keyed reads, not of the event path.
//
// Jump consistent hash (Lamping and Veach, 2014) of the user id's 64-bit FNV-1a: no table to
// store, evenly spread, and going from n to n+1 shards moves only 1/(n+1) of the users. The two
// functions are part of the data format: changing them would move users away from their data.
class ShardMap {
 public:
  explicit ShardMap(std::size_t shards = 1) : shards_(shards == 0 ? 1 : shards) {}

  std::size_t size() const { return shards_; }

  std::size_t shardOf(std::string_view user_id) const {
    return shards_ == 1 ? 0 : static_cast<std::size_t>(jump(fnv1a(user_id), static_cast<int32_t>(shards_)));
  }

  static uint64_t fnv1a(std::string_view s) {
    uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    return h;
  }

  static int32_t jump(uint64_t key, int32_t buckets) {
    int64_t b = -1;
    int64_t j = 0;
    while (j < buckets) {
      b = j;
      key = key * 2862933555777941757ULL + 1;
      j = static_cast<int64_t>(static_cast<double>(b + 1) *
                               (static_cast<double>(1LL << 31) / static_cast<double>((key >> 33) + 1)));
    }
    return static_cast<int32_t>(b);
  }

 private:
  std::size_t shards_;
};

}  // namespace agentwire::store
