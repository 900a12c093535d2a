#include "agents/run_journal.hpp"

#include <gtest/gtest.h>

namespace agentwire::agents {
namespace {

namespace json = boost::json;

TEST(RunJournalTest, ALiveRunRecordsItsStepsAndNeverReplays) {
  RunJournal j;
  EXPECT_FALSE(j.replaying());
  EXPECT_EQ(*j.next("tool"), nullptr) << "nothing recorded: the step is taken live";
  j.record({{"kind", "tool"}, {"ok", true}, {"value", 3}});
  j.record({{"kind", "step"}, {"value", "completion"}});
  EXPECT_FALSE(j.replaying()) << "a step recorded live is not replayed in the same execution";
  EXPECT_EQ(j.entries().size(), 2u);
  EXPECT_FALSE(j.takeDecision().has_value());
}

TEST(RunJournalTest, ARewoundRunReplaysItsStepsInOrderThenTakesTheDecision) {
  RunJournal j;
  j.record({{"kind", "step"}, {"value", "completion"}});
  j.record({{"kind", "tool"}, {"ok", true}, {"value", 3}});
  j.rewind(ApprovalDecision{"apr_1", "call_2", "calculator", "approved", ""});
  EXPECT_TRUE(j.replaying());
  auto first = j.next("step");
  ASSERT_TRUE(first.ok());
  ASSERT_NE(*first, nullptr);
  EXPECT_EQ((*first)->at("value"), "completion");
  EXPECT_FALSE(j.takeDecision().has_value()) << "the decision waits until the record is used up";
  auto second = j.next("tool");
  ASSERT_NE(*second, nullptr);
  EXPECT_EQ((*second)->at("value"), 3);
  EXPECT_TRUE(j.replaying()) << "still before the parked call";
  EXPECT_EQ(*j.next("tool"), nullptr);
  auto d = j.takeDecision();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->tool_call_id, "call_2");
  EXPECT_EQ(d->status, "approved");
  EXPECT_FALSE(j.replaying()) << "events from the parked call on are new";
  EXPECT_FALSE(j.takeDecision().has_value()) << "taken once";
}

TEST(RunJournalTest, AnAgentThatTakesAnotherPathIsInterrupted) {
  RunJournal j(json::array{json::object{{"kind", "tool"}, {"ok", true}, {"value", 1}}}, std::nullopt);
  auto wrong = j.next("step");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, "interrupted");
}

}  // namespace
}  // namespace agentwire::agents
