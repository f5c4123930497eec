// The in-memory latest index: newest event per key wins, feature sets stay apart, threads agree.

#include "sluice/store/memory_index.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

std::shared_ptr<const latest_entry> entry(std::string key, std::int64_t event_time_ms, value v = {}) {
    auto e = std::make_shared<latest_entry>();
    e->key = std::move(key);
    e->event_time_ms = event_time_ms;
    e->ingested_at_ms = event_time_ms + 1;
    e->values.push_back(std::move(v));
    return e;
}

TEST(StoreMemoryIndex, FindsWhatWasUpserted) {
    memory_index index(1);
    EXPECT_EQ(index.find(0, "user-1"), nullptr);
    ASSERT_TRUE(index.upsert(0, entry("user-1", 1000, value{std::int64_t{7}})));
    auto found = index.find(0, "user-1");
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->key, "user-1");
    EXPECT_EQ(found->event_time_ms, 1000);
    ASSERT_EQ(found->values.size(), 1u);
    EXPECT_EQ(found->values[0], value{std::int64_t{7}});
    EXPECT_EQ(index.find(0, "user-2"), nullptr);
    EXPECT_EQ(index.find(0, ""), nullptr);
}

TEST(StoreMemoryIndex, FindValueGivesTheSameEntryAsACopyOfItsOwn) {
    memory_index index(1);
    EXPECT_FALSE(index.find_value(0, "user-1").has_value());
    auto e = std::make_shared<latest_entry>();
    e->key = "user-1";
    e->event_time_ms = 1000;
    e->ingested_at_ms = 1001;
    e->partition = 3;
    e->values = {value{std::int64_t{-7}}, value{2.5}, value{true}, value{std::string("caf\xc3\xa9")}, value{}};
    ASSERT_TRUE(index.upsert(0, e));
    auto got = index.find_value(0, "user-1");
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->key, "user-1");
    EXPECT_EQ(got->event_time_ms, 1000);
    EXPECT_EQ(got->ingested_at_ms, 1001);
    EXPECT_EQ(got->partition, 3);
    EXPECT_EQ(got->values, e->values);
    got->values.push_back(value{std::int64_t{1}});  // the caller's copy: the index is unchanged
    EXPECT_EQ(index.find(0, "user-1")->values.size(), 5u);
}

TEST(StoreMemoryIndex, NewerEventReplaces) {
    memory_index index(1);
    ASSERT_TRUE(index.upsert(0, entry("k", 1000, value{std::int64_t{1}})));
    EXPECT_TRUE(index.upsert(0, entry("k", 2000, value{std::int64_t{2}})));
    auto found = index.find(0, "k");
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->event_time_ms, 2000);
    EXPECT_EQ(found->values[0], value{std::int64_t{2}});
}

TEST(StoreMemoryIndex, OlderEventNeverReplacesANewerOne) {
    memory_index index(1);
    ASSERT_TRUE(index.upsert(0, entry("k", 2000, value{std::int64_t{2}})));
    EXPECT_FALSE(index.upsert(0, entry("k", 1999, value{std::int64_t{1}})));
    EXPECT_FALSE(index.upsert(0, entry("k", 0, value{std::int64_t{0}})));
    auto found = index.find(0, "k");
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->event_time_ms, 2000);
    EXPECT_EQ(found->values[0], value{std::int64_t{2}});
}

TEST(StoreMemoryIndex, EqualEventTimeChangesNothing) {
    memory_index index(1);
    ASSERT_TRUE(index.upsert(0, entry("k", 2000, value{std::string("first")})));
    EXPECT_FALSE(index.upsert(0, entry("k", 2000, value{std::string("second")})));
    auto found = index.find(0, "k");
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->values[0], value{std::string("first")});
}

TEST(StoreMemoryIndex, EvictsOnlyTheRevokedPartitions) {
    memory_index index(2);
    auto in_partition = [](std::string key, std::int32_t partition) {
        auto e = std::make_shared<latest_entry>();
        e->key = std::move(key);
        e->event_time_ms = 1;
        e->partition = partition;
        return e;
    };
    index.upsert(0, in_partition("a", 0));
    index.upsert(0, in_partition("b", 1));
    index.upsert(0, in_partition("c", 2));
    index.upsert(1, in_partition("a", 1));  // another set: untouched
    EXPECT_EQ(index.evict_partitions(0, {1, 2}), 2u);
    EXPECT_NE(index.find(0, "a"), nullptr);
    EXPECT_EQ(index.find(0, "b"), nullptr);
    EXPECT_EQ(index.find(0, "c"), nullptr);
    EXPECT_NE(index.find(1, "a"), nullptr);
}

// Many keys in one shard: the table grows several times, probe runs collide and wrap around
// its end, and evictions shift entries back. After each round every key the reference map
// holds must be found with its own value, and no evicted key may come back.
TEST(StoreMemoryIndex, ManyKeysSurviveGrowthAndEvictionsInOneShard) {
    memory_index index(1, 1);
    std::map<std::string, std::pair<std::int32_t, std::int64_t>> expected;  // key → partition, value
    std::mt19937 random(7);
    std::int64_t time = 1;
    for (int round = 0; round < 6; ++round) {
        for (int i = 0; i < 3000; ++i) {
            const std::string key = "k" + std::to_string(random() % 6000);
            auto e = std::make_shared<latest_entry>();
            e->key = key;
            e->event_time_ms = ++time;
            e->partition = static_cast<std::int32_t>(random() % 4);
            e->values.push_back(value{time});
            ASSERT_TRUE(index.upsert(0, e));
            expected[key] = {e->partition, time};
        }
        const std::int32_t revoked = round % 4;
        std::size_t evicted = 0;
        for (auto it = expected.begin(); it != expected.end();) {
            if (it->second.first == revoked) {
                it = expected.erase(it);
                ++evicted;
            } else {
                ++it;
            }
        }
        ASSERT_EQ(index.evict_partitions(0, {revoked}), evicted) << "round " << round;
        ASSERT_EQ(index.size(0), expected.size()) << "round " << round;
        for (int k = 0; k < 6000; ++k) {
            const std::string key = "k" + std::to_string(k);
            const auto found = index.find_value(0, key);
            const auto want = expected.find(key);
            if (want == expected.end()) {
                ASSERT_FALSE(found.has_value()) << key << " in round " << round;
                continue;
            }
            ASSERT_TRUE(found.has_value()) << key << " in round " << round;
            EXPECT_EQ(found->partition, want->second.first) << key;
            EXPECT_EQ(found->values.at(0), value{want->second.second}) << key;
        }
        std::size_t visited = 0;
        index.for_each(0, [&](const latest_entry& e) {
            ++visited;
            EXPECT_EQ(expected.count(e.key), 1u) << e.key;
        });
        EXPECT_EQ(visited, expected.size());
    }
}

TEST(StoreMemoryIndex, AReaderKeepsItsEntryAfterAReplace) {
    memory_index index(1);
    ASSERT_TRUE(index.upsert(0, entry("k", 1, value{std::string("old")})));
    auto held = index.find(0, "k");
    ASSERT_TRUE(index.upsert(0, entry("k", 2, value{std::string("new")})));
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(held->values[0], value{std::string("old")});
    EXPECT_EQ(index.find(0, "k")->values[0], value{std::string("new")});
}

TEST(StoreMemoryIndex, FeatureSetsDoNotCollide) {
    memory_index index(3, 4);
    ASSERT_TRUE(index.upsert(0, entry("same-key", 5000, value{std::string("set0")})));
    ASSERT_TRUE(index.upsert(1, entry("same-key", 1000, value{std::string("set1")})));
    EXPECT_EQ(index.find(2, "same-key"), nullptr);
    // An older event in set 1 is not compared with set 0's newer one.
    auto s0 = index.find(0, "same-key");
    auto s1 = index.find(1, "same-key");
    ASSERT_NE(s0, nullptr);
    ASSERT_NE(s1, nullptr);
    EXPECT_EQ(s0->values[0], value{std::string("set0")});
    EXPECT_EQ(s1->values[0], value{std::string("set1")});
    EXPECT_EQ(s1->event_time_ms, 1000);
    EXPECT_EQ(index.size(0), 1u);
    EXPECT_EQ(index.size(1), 1u);
    EXPECT_EQ(index.size(2), 0u);
}

TEST(StoreMemoryIndex, SizeCountsDistinctKeysPerSet) {
    memory_index index(2, 8);
    EXPECT_EQ(index.size(0), 0u);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(index.upsert(0, entry("key-" + std::to_string(i), i)));
    EXPECT_EQ(index.size(0), 100u);
    // Replacing and refused upserts do not change the count.
    EXPECT_TRUE(index.upsert(0, entry("key-5", 500)));
    EXPECT_FALSE(index.upsert(0, entry("key-6", 0)));
    EXPECT_EQ(index.size(0), 100u);
    EXPECT_EQ(index.size(1), 0u);
    for (int i = 0; i < 100; ++i) ASSERT_NE(index.find(0, "key-" + std::to_string(i)), nullptr) << i;
}

TEST(StoreMemoryIndex, SingleShardStillWorks) {
    memory_index index(2, 1);
    ASSERT_TRUE(index.upsert(0, entry("a", 1)));
    ASSERT_TRUE(index.upsert(0, entry("b", 1)));
    ASSERT_TRUE(index.upsert(1, entry("a", 1)));
    EXPECT_EQ(index.size(0), 2u);
    EXPECT_EQ(index.size(1), 1u);
}

// Threads upsert the same keys with interleaved event times in scrambled order; whatever the
// interleaving, each key must end with the greatest event time any thread wrote for it.
TEST(StoreMemoryIndex, ConcurrentUpsertsEndWithTheNewestEventPerKey) {
    constexpr int threads = 4;
    constexpr int keys = 50;
    constexpr int per_thread_per_key = 200;
    memory_index index(2, 4);
    std::vector<std::thread> workers;
    std::atomic<bool> go{false};
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            while (!go) std::this_thread::yield();
            for (int i = 0; i < per_thread_per_key; ++i) {
                // Scrambled, so a later write is often older than what is already stored.
                const int step = (i * 37 + t * 11) % per_thread_per_key;
                for (int k = 0; k < keys; ++k) {
                    const std::int64_t time = static_cast<std::int64_t>(step) * threads + t + k;
                    index.upsert(0, entry("key-" + std::to_string(k), time, value{std::int64_t{t}}));
                    // A reader at the same time never sees the time go backwards.
                    auto seen = index.find(0, "key-" + std::to_string(k));
                    if (!seen || seen->event_time_ms < time) {
                        ADD_FAILURE() << "key-" << k << " went back below " << time;
                        return;
                    }
                }
            }
        });
    }
    go = true;
    for (auto& w : workers) w.join();

    EXPECT_EQ(index.size(0), static_cast<std::size_t>(keys));
    EXPECT_EQ(index.size(1), 0u);
    for (int k = 0; k < keys; ++k) {
        auto found = index.find(0, "key-" + std::to_string(k));
        ASSERT_NE(found, nullptr) << k;
        // The greatest time: step = per_thread_per_key - 1 written by thread threads - 1.
        const std::int64_t max_time = static_cast<std::int64_t>(per_thread_per_key - 1) * threads + (threads - 1) + k;
        EXPECT_EQ(found->event_time_ms, max_time) << "key-" << k;
        EXPECT_EQ(found->values[0], value{std::int64_t{threads - 1}}) << "key-" << k;
    }
}

}  // namespace
}  // namespace sluice
