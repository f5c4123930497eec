// The hash table under the memory index and the aggregator: keys are found after growth, across
// the end of the slot array and after backward-shift erases, as a std::unordered_map finds them.

#include "sluice/core/sharded_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace sluice {
namespace {

// A slot of the tests: the hash is chosen by the test (0 marks an empty slot), so that keys can be
// sent to a home slot and made to collide.
struct test_slot {
    std::uint64_t hash = 0;
    int key = 0;
    int value = 0;
};

struct test_traits {
    using slot = test_slot;
    static bool empty(const slot& s) { return s.hash == 0; }
    static std::uint64_t hash(const slot& s) { return s.hash; }
    static constexpr std::size_t max_load_num = 5;
    static constexpr std::size_t max_load_den = 8;
    static constexpr unsigned shard_shift = 40;
};

using table = probe_table<test_traits>;

// Inserts or updates key → value at the given hash (never 0); true when the key was new.
bool put(table& t, std::uint64_t hash, int key, int value) {
    const auto [at, inserted] = t.find_or_insert(
        hash, [&](const test_slot& s) { return s.key == key; }, [&] { return test_slot{hash, key, value}; });
    t.at(at).value = value;
    return inserted;
}

const test_slot* get(const table& t, std::uint64_t hash, int key) {
    const std::size_t at = t.find(hash, [&](const test_slot& s) { return s.key == key; });
    return at == table::npos ? nullptr : &t.at(at);
}

// Every key must be at or after its home with no empty slot between: what a lookup relies on.
void expect_reachable(const table& t) {
    const std::size_t mask = t.slot_count() - 1;
    for (std::size_t i = 0; i < t.slot_count(); ++i) {
        const test_slot& s = t.at(i);
        if (s.hash == 0) continue;
        for (std::size_t j = s.hash & mask; j != i; j = (j + 1) & mask)
            ASSERT_NE(t.at(j).hash, 0u) << "key " << s.key << " at " << i << " is cut off from its home";
    }
}

TEST(CoreShardedTable, StartsEmptyAndDoublesWithinItsLoadLimit) {
    table t;
    EXPECT_EQ(t.slot_count(), 0u);
    EXPECT_EQ(get(t, 7, 7), nullptr);
    std::size_t last_count = 0;
    int growths = 0;
    for (int k = 1; k <= 1000; ++k) {
        ASSERT_TRUE(put(t, static_cast<std::uint64_t>(k) * 2654435761u, k, -k));
        ASSERT_EQ(t.size(), static_cast<std::size_t>(k));
        // A power of two, at least 16, at most 5/8 full, and no bigger than that limit needs.
        const std::size_t n = t.slot_count();
        ASSERT_GE(n, 16u);
        ASSERT_EQ(n & (n - 1), 0u);
        ASSERT_LE(t.size() * 8, n * 5) << "at " << k << " keys";
        if (n > 16) {
            ASSERT_GT(t.size() * 8, n / 2 * 5) << "grew before it had to, at " << k << " keys";
        }
        if (n != last_count) ++growths;
        last_count = n;
    }
    EXPECT_EQ(last_count, 2048u);
    EXPECT_EQ(growths, 8);  // 16, 32, ..., 2048
    for (int k = 1; k <= 1000; ++k) {
        const test_slot* s = get(t, static_cast<std::uint64_t>(k) * 2654435761u, k);
        ASSERT_NE(s, nullptr) << k;
        EXPECT_EQ(s->value, -k);
    }
    // An update of a key neither adds a slot nor grows the table.
    EXPECT_FALSE(put(t, 2654435761u, 1, 5));
    EXPECT_EQ(t.size(), 1000u);
    EXPECT_EQ(get(t, 2654435761u, 1)->value, 5);
}

TEST(CoreShardedTable, ARunWrapsAroundTheEndAndShiftsBackOnErase) {
    table t;
    // Four keys whose home is the last of 16 slots: they take slots 15, 0, 1 and 2.
    for (int k = 1; k <= 4; ++k) ASSERT_TRUE(put(t, 15 + 16 * static_cast<std::uint64_t>(k), k, k * 10));
    ASSERT_EQ(t.slot_count(), 16u);
    EXPECT_EQ(t.at(15).key, 1);
    EXPECT_EQ(t.at(0).key, 2);
    EXPECT_EQ(t.at(1).key, 3);
    EXPECT_EQ(t.at(2).key, 4);
    // A key at home in slot 3, right after the run.
    ASSERT_TRUE(put(t, 3, 5, 50));
    EXPECT_EQ(t.at(3).key, 5);

    // Erasing the head of the run moves each later key of it back one slot, across the end; the
    // key at home in slot 3 may not move before its home and stays.
    t.erase(15);
    EXPECT_EQ(t.at(15).key, 2);
    EXPECT_EQ(t.at(0).key, 3);
    EXPECT_EQ(t.at(1).key, 4);
    EXPECT_EQ(t.at(2).hash, 0u);
    EXPECT_EQ(t.at(3).key, 5);
    EXPECT_EQ(t.size(), 4u);
    expect_reachable(t);
    EXPECT_EQ(get(t, 31, 1), nullptr);
    for (int k = 2; k <= 4; ++k) {
        const test_slot* s = get(t, 15 + 16 * static_cast<std::uint64_t>(k), k);
        ASSERT_NE(s, nullptr) << k;
        EXPECT_EQ(s->value, k * 10);
    }
    ASSERT_NE(get(t, 3, 5), nullptr);

    // A key at home in slot 0 stays put when the slot before it empties.
    table u;
    ASSERT_TRUE(put(u, 15, 1, 1));
    ASSERT_TRUE(put(u, 16, 2, 2));  // home 0, in slot 0
    u.erase(15);
    EXPECT_EQ(u.at(0).key, 2);
    EXPECT_EQ(u.at(15).hash, 0u);
    expect_reachable(u);
}

// Random inserts, updates and erases, checked against std::unordered_map.
TEST(CoreShardedTable, AgreesWithUnorderedMapUnderRandomInsertsAndErases) {
    table t;
    std::unordered_map<int, int> reference;
    std::mt19937_64 random(11);
    // A key's hash: 7 homes among the last 16 slots whatever the table's size, so runs are long
    // and wrap around the end; keys of one home share their hash.
    const auto hash_of = [](int key) {
        const auto r = static_cast<std::uint64_t>(key % 7);
        return ((r + 1) << 40) | 0xFFFFFFF0u | r;
    };
    for (int step = 0; step < 20000; ++step) {
        const int key = static_cast<int>(random() % 600);
        const int op = static_cast<int>(random() % 10);
        if (op < 6) {
            const int value = static_cast<int>(random() % 100000);
            const bool was_new = reference.count(key) == 0;
            ASSERT_EQ(put(t, hash_of(key), key, value), was_new) << "step " << step;
            reference[key] = value;
        } else if (op < 9) {
            const std::size_t at = t.find(hash_of(key), [&](const test_slot& s) { return s.key == key; });
            ASSERT_EQ(at != table::npos, reference.count(key) == 1) << "step " << step;
            if (at != table::npos) {
                t.erase(at);
                reference.erase(key);
            }
        } else {
            // erase_if over the whole table, as evict_partitions does.
            const int residue = static_cast<int>(random() % 5);
            std::size_t expected = 0;
            for (auto it = reference.begin(); it != reference.end();)
                if (it->second % 5 == residue) {
                    it = reference.erase(it);
                    ++expected;
                } else {
                    ++it;
                }
            ASSERT_EQ(t.erase_if([&](const test_slot& s) { return s.value % 5 == residue; }), expected)
                << "step " << step;
        }
        ASSERT_EQ(t.size(), reference.size()) << "step " << step;
        if (step % 97 == 0 || op == 9) {
            for (int k = 0; k < 600; ++k) {
                const test_slot* s = get(t, hash_of(k), k);
                const auto want = reference.find(k);
                ASSERT_EQ(s != nullptr, want != reference.end()) << "key " << k << " at step " << step;
                if (s) {
                    ASSERT_EQ(s->value, want->second) << "key " << k << " at step " << step;
                }
            }
            std::size_t visited = 0;
            t.for_each([&](const test_slot& s) {
                ++visited;
                EXPECT_EQ(reference.count(s.key), 1u) << s.key;
            });
            ASSERT_EQ(visited, reference.size());
            expect_reachable(t);
        }
    }
}

TEST(CoreShardedTable, PicksTheShardByTheHashsHighBits) {
    sharded_table<test_traits> shards(4);
    EXPECT_EQ(shards.shard_count(), 4u);
    EXPECT_EQ(&shards.shard_for(std::uint64_t{0}), &shards.shard_at(0));
    EXPECT_EQ(&shards.shard_for(std::uint64_t{3} << 40), &shards.shard_at(3));
    EXPECT_EQ(&shards.shard_for((std::uint64_t{6} << 40) | 0xFFFFFFFFFFull), &shards.shard_at(2));
    // The low bits pick the slot, not the shard.
    EXPECT_EQ(&shards.shard_for(std::uint64_t{0xFFFFFFFFFF}), &shards.shard_at(0));
    sharded_table<test_traits> one(0);  // at least one shard
    EXPECT_EQ(one.shard_count(), 1u);
    // Writers of different shards do not share a cache line.
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&shards.shard_at(1)) % 64, 0u);
}

}  // namespace
}  // namespace sluice
