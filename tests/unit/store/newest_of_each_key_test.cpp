// The record of each key that latest keeps: one rule for PostgreSQL, Redis and memory.

#include <gtest/gtest.h>

#include "sluice/store/newest_of_each_key.hpp"

namespace sluice {
namespace {

record make(std::uint32_t set, const std::string& key, std::int64_t time, std::int32_t partition, std::int64_t offset,
            const std::string& topic = "t") {
    record r;
    r.set_index = set;
    r.key = key;
    r.event_time_ms = time;
    r.source = {topic, partition, offset};
    return r;
}

TEST(NewestOfEachKey, TheNewestEventOfEachKeyInTheOrderKeysFirstAppear) {
    const std::vector<record> batch = {make(0, "a", 10, 0, 1), make(0, "b", 5, 0, 2), make(0, "a", 30, 0, 3),
                                       make(0, "a", 20, 0, 4), make(0, "b", 6, 0, 5)};
    const auto newest = newest_of_each_key(batch);
    ASSERT_EQ(newest.size(), 2u);
    EXPECT_EQ(newest[0], &batch[2]);  // a: time 30
    EXPECT_EQ(newest[1], &batch[4]);  // b: time 6
}

TEST(NewestOfEachKey, AmongEqualTimesTheFirstDeliveredWins) {
    // Pushed records have a named source but no partition or offset.
    const std::vector<record> batch = {make(0, "k", 10, -1, -1, "http"), make(0, "k", 10, 2, 7), make(0, "k", 10, 2, 5),
                                       make(0, "p", 10, -1, -1, "http"), make(0, "p", 10, -1, -1, "http")};
    const auto newest = newest_of_each_key(batch);
    ASSERT_EQ(newest.size(), 2u);
    EXPECT_EQ(newest[0], &batch[2]) << "the lower offset, and Kafka before a pushed record";
    EXPECT_EQ(newest[1], &batch[3]) << "between pushed records, the earlier in the batch";
}

TEST(NewestOfEachKey, TheSameKeyInTwoSetsIsTwoKeys) {
    const std::vector<record> batch = {make(0, "k", 10, 0, 1), make(1, "k", 5, 0, 2)};
    const auto newest = newest_of_each_key(batch);
    ASSERT_EQ(newest.size(), 2u);
    EXPECT_EQ(newest[0], &batch[0]);
    EXPECT_EQ(newest[1], &batch[1]);
}

}  // namespace
}  // namespace sluice
