// A consumer's decisions without a broker: a partition always feeds the same queue, partitions
// pause when their queue passes the pause watermark and resume below the resume watermark, never
// before they delivered once, and the assignment follows eager and cooperative rebalances.

#include "../../../src/ingest/kafka/partition_flow.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace sluice::kafka {
namespace {

constexpr double pause_at = 0.8;
constexpr double resume_at = 0.5;

std::vector<queue_fill> fills(std::initializer_list<std::size_t> sizes, std::size_t capacity = 100) {
    std::vector<queue_fill> out;
    for (auto s : sizes) out.push_back({s, capacity, false});
    return out;
}

bool contains(const std::vector<topic_partition>& list, const std::string& topic, std::int32_t partition) {
    return std::find(list.begin(), list.end(), topic_partition{topic, partition}) != list.end();
}

TEST(PartitionFlow, RoutingIsStableAndSpreadsPartitions) {
    partition_flow flow(4, pause_at, resume_at);
    std::set<std::size_t> used;
    for (std::int32_t p = 0; p < 16; ++p) {
        const auto q = flow.route("events", p);
        EXPECT_LT(q, 4u);
        EXPECT_EQ(q, flow.route("events", p));  // the same queue every time: the partition stays in order
        used.insert(q);
    }
    EXPECT_EQ(used.size(), 4u);  // consecutive partitions of a topic go to every queue
}

TEST(PartitionFlow, OneQueueTakesEverything) {
    partition_flow flow(1, pause_at, resume_at);
    EXPECT_EQ(flow.route("a", 0), 0u);
    EXPECT_EQ(flow.route("b", 7), 0u);
}

TEST(PartitionFlow, PausesAboveTheWatermarkAndResumesOnlyBelowTheLowOne) {
    partition_flow flow(1, pause_at, resume_at);
    flow.assign({{"t", 0}, {"t", 1}}, /*incremental=*/false);
    ASSERT_TRUE(flow.first_delivery("t", 0));
    ASSERT_TRUE(flow.first_delivery("t", 1));

    auto c = flow.update(fills({79}), false);
    EXPECT_TRUE(c.pause.empty());
    c = flow.update(fills({80}), false);
    EXPECT_EQ(c.pause.size(), 2u);
    EXPECT_TRUE(contains(c.pause, "t", 0) && contains(c.pause, "t", 1));
    c = flow.update(fills({90}), false);  // already paused: no second pause call
    EXPECT_TRUE(c.pause.empty() && c.resume.empty());
    c = flow.update(fills({60}), false);  // between the watermarks: stays paused
    EXPECT_TRUE(c.pause.empty() && c.resume.empty());
    c = flow.update(fills({50}), false);
    EXPECT_EQ(c.resume.size(), 2u);
    c = flow.update(fills({60}), false);  // between the watermarks again: stays running
    EXPECT_TRUE(c.pause.empty() && c.resume.empty());
}

TEST(PartitionFlow, OnlyThePartitionsOfTheFullQueuePause) {
    partition_flow flow(2, pause_at, resume_at);
    std::vector<topic_partition> all;
    for (std::int32_t p = 0; p < 8; ++p) all.emplace_back("t", p);
    flow.assign(all, false);
    for (const auto& [t, p] : all) flow.first_delivery(t, p);
    const auto c = flow.update(fills({95, 10}), false);
    ASSERT_FALSE(c.pause.empty());
    for (const auto& [t, p] : c.pause) EXPECT_EQ(flow.route(t, p), 0u);
    EXPECT_EQ(c.pause.size(), 4u);
}

TEST(PartitionFlow, HeldBackMessagesAndStoppingThrottleAnEmptyQueue) {
    partition_flow flow(1, pause_at, resume_at);
    flow.assign({{"t", 0}}, false);
    flow.first_delivery("t", 0);
    auto c = flow.update({{0, 100, /*held_back=*/true}}, false);
    EXPECT_EQ(c.pause.size(), 1u);
    c = flow.update(fills({0}), false);
    EXPECT_EQ(c.resume.size(), 1u);
    c = flow.update(fills({0}), /*stopping=*/true);
    EXPECT_EQ(c.pause.size(), 1u);
}

// Pausing right after assign() makes librdkafka 2.0.2 drop the assigned offset: a partition is
// paused only once it has delivered a message.
TEST(PartitionFlow, APartitionThatHasNotDeliveredIsNotPaused) {
    partition_flow flow(1, pause_at, resume_at);
    flow.assign({{"t", 0}, {"t", 1}}, false);
    flow.first_delivery("t", 1);
    auto c = flow.update(fills({100}), false);
    ASSERT_EQ(c.pause.size(), 1u);
    EXPECT_TRUE(contains(c.pause, "t", 1));
    EXPECT_TRUE(flow.first_delivery("t", 0));
    EXPECT_FALSE(flow.first_delivery("t", 0));  // only the first delivery counts
    c = flow.update(fills({100}), false);
    ASSERT_EQ(c.pause.size(), 1u);
    EXPECT_TRUE(contains(c.pause, "t", 0));
}

TEST(PartitionFlow, EagerAssignmentReplacesCooperativeAdds) {
    partition_flow flow(1, pause_at, resume_at);
    flow.assign({{"t", 0}, {"t", 1}}, false);
    flow.assign({{"t", 2}}, /*incremental=*/true);
    EXPECT_TRUE(flow.owns("t", 0) && flow.owns("t", 2));
    flow.revoke({{"t", 0}}, /*incremental=*/true);
    EXPECT_FALSE(flow.owns("t", 0));
    EXPECT_TRUE(flow.owns("t", 1));
    EXPECT_EQ(flow.owned_of("t"), (std::vector<std::int32_t>{1, 2}));
    flow.assign({{"u", 5}}, /*incremental=*/false);
    EXPECT_FALSE(flow.owns("t", 1));
    EXPECT_TRUE(flow.owns("u", 5));
    flow.revoke({}, /*incremental=*/false);  // an eager revoke gives up everything
    EXPECT_FALSE(flow.any());
}

TEST(PartitionFlow, ARevokedPausedPartitionIsForgottenAndStartsFreshWhenAssignedAgain) {
    partition_flow flow(1, pause_at, resume_at);
    flow.assign({{"t", 0}}, false);
    flow.first_delivery("t", 0);
    ASSERT_EQ(flow.update(fills({100}), false).pause.size(), 1u);
    flow.revoke({{"t", 0}}, true);
    EXPECT_TRUE(flow.update(fills({0}), false).resume.empty());  // not ours: nothing to resume
    flow.assign({{"t", 0}}, true);
    EXPECT_TRUE(flow.update(fills({100}), false).pause.empty());  // not delivered since the new assignment
}

}  // namespace
}  // namespace sluice::kafka
