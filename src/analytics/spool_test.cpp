#include "analytics/spool.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace agentwire::analytics {
namespace {

Batch batch(const std::string& id, const std::string& body = "{\"a\":1}\n") {
  return Batch{id, "2026-11-28", 1, body};
}

TEST(SpoolTest, KeepsBatchesInOrderAcrossReopen) {
  testing::TempDir dir;
  {
    Spool s(dir.path() / "spool", 1 << 20);
    s.open();
    ASSERT_TRUE(s.append(batch("b1")));
    ASSERT_TRUE(s.append(batch("b2")));
    ASSERT_TRUE(s.append(batch("b3")));
    EXPECT_EQ(s.batches(), 3u);
  }
  Spool s(dir.path() / "spool", 1 << 20);
  s.open();
  EXPECT_EQ(s.batches(), 3u);
  for (const char* id : {"b1", "b2", "b3"}) {
    auto b = s.front();
    ASSERT_TRUE(b);
    EXPECT_EQ(b->id, id);
    EXPECT_EQ(b->body, "{\"a\":1}\n");
    s.popFront();
  }
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.bytes(), 0u);
  // New segments continue after the old numbering, so order holds after a restart.
  ASSERT_TRUE(s.append(batch("b4")));
  EXPECT_EQ(s.front()->id, "b4");
}

TEST(SpoolTest, RefusesPastTheCap) {
  testing::TempDir dir;
  std::string body(1000, 'x');
  auto one = Spool::encode(batch("b", body)).size();
  Spool s(dir.path(), one * 2 + 10);
  s.open();
  EXPECT_TRUE(s.append(batch("b1", body)));
  EXPECT_TRUE(s.append(batch("b2", body)));
  EXPECT_FALSE(s.append(batch("b3", body)));
  EXPECT_EQ(s.batches(), 2u);
  s.popFront();
  EXPECT_TRUE(s.append(batch("b3", body)));
}

TEST(SpoolTest, CorruptSegmentIsMovedAsideAndTheNextIsRead) {
  testing::TempDir dir;
  {
    Spool s(dir.path(), 1 << 20);
    s.open();
    s.append(batch("b1", "{\"row\":\"one\"}\n"));
    s.append(batch("b2"));
  }
  // Flip a byte in the first segment's payload.
  std::filesystem::path first;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().extension() == ".awb" && (first.empty() || e.path() < first)) first = e.path();
  }
  {
    std::fstream f(first, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('#');
  }
  Spool s(dir.path(), 1 << 20);
  s.open();
  auto b = s.front();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->id, "b2");
  EXPECT_EQ(s.corrupt(), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "rejected" / (first.filename().string() + ".corrupt")));
}

TEST(SpoolTest, InterruptedAppendLeavesNothing) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "seg-00000000000000000007.awb.tmp") << "partial";
  Spool s(dir.path(), 1 << 20);
  s.open();
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "seg-00000000000000000007.awb.tmp"));
}

TEST(SpoolTest, DecodeRefusesTruncatedData) {
  auto data = Spool::encode(batch("b1"));
  EXPECT_TRUE(Spool::decode(data));
  EXPECT_FALSE(Spool::decode(data.substr(0, data.size() - 1)));
  EXPECT_FALSE(Spool::decode("garbage"));
}

}  // namespace
}  // namespace agentwire::analytics
