// The read policy: what a reader gets from memory, Redis and PostgreSQL in each state of the
// stores, with test doubles of the store ports (the real stores have their integration tests).

#include "sluice/query/tiered_reader.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>

#include "common/small_set.hpp"
#include "sluice/core/clock.hpp"

namespace sluice {
namespace {

using answer = result<std::optional<latest_entry>>;

latest_entry entry(const std::string& key, std::int64_t time, std::int64_t v) {
    latest_entry e;
    e.key = key;
    e.event_time_ms = time;
    e.ingested_at_ms = time;
    e.values = {value{v}};
    return e;
}

/// Latest rows by key; can be made to fail. Counts the reads that reach it.
class scripted_durable final : public durable_store {
public:
    std::map<std::string, latest_entry> rows;
    std::vector<history_row> history;  // newest first, as read_history returns them
    history_slice slice;
    std::atomic<bool> down{false};
    std::atomic<int> reads{0};

    status prepare() override { return status::success(); }
    status write(const write_batch&) override { return status::success(); }
    result<std::optional<latest_entry>> read_latest(std::uint32_t, const std::string& key) override {
        ++reads;
        if (down) return answer::failure("PostgreSQL: connection refused");
        auto it = rows.find(key);
        if (it == rows.end()) return std::optional<latest_entry>{};
        return std::optional<latest_entry>{it->second};
    }
    result<std::vector<latest_entry>> scan_latest(std::uint32_t, std::int64_t, const std::string&, std::size_t) override {
        return std::vector<latest_entry>{};
    }
    result<history_slice> read_as_of(std::uint32_t, const std::string&, std::int64_t, std::int64_t) override {
        ++reads;
        if (down) return result<history_slice>::failure("PostgreSQL: connection refused");
        return slice;
    }
    result<std::vector<history_row>> read_history(std::uint32_t, const std::string&, std::int64_t, std::int64_t,
                                                  std::size_t limit, std::int64_t, std::int64_t) override {
        ++reads;
        std::vector<history_row> out(history.begin(), history.begin() + static_cast<long>(std::min(limit, history.size())));
        return out;
    }
    status for_each_history(std::uint32_t, const history_scan&, const history_visitor&) override {
        return status::success();
    }
    result<std::int64_t> last_update_ms() override { return std::int64_t{0}; }
    result<std::vector<partition_offset>> read_offsets(const std::string&) override {
        return std::vector<partition_offset>{};
    }
    bool healthy() const override { return !down; }
    status ping() override { return status::success(); }
};

/// Redis as the reader sees it: a map, or down. Counts keys asked.
class scripted_cache final : public latest_cache {
public:
    std::map<std::string, latest_entry> hashes;
    std::atomic<bool> down{false};
    std::atomic<int> keys_asked{0};
    std::atomic<int> round_trips{0};

    status apply(const std::vector<const record*>&) override { return status::success(); }
    result<std::optional<latest_entry>> read_latest(std::uint32_t, const std::string& key) override {
        ++keys_asked;
        ++round_trips;
        return lookup(key);
    }
    std::vector<answer> read_latest_many(std::uint32_t, const std::vector<std::string>& keys) override {
        ++round_trips;
        std::vector<answer> out;
        for (const auto& k : keys) {
            ++keys_asked;
            out.push_back(lookup(k));
        }
        return out;
    }
    bool healthy() const override { return !down; }
    status ping() override { return status::success(); }

private:
    answer lookup(const std::string& key) {
        if (down) return answer::failure("Redis: connection refused");
        auto it = hashes.find(key);
        if (it == hashes.end()) return std::optional<latest_entry>{};
        return std::optional<latest_entry>{it->second};
    }
};

struct reader_fixture {
    explicit reader_fixture(bool with_cache = true, bool with_durable = true, std::size_t backlog = 100) {
        cfg.feature_sets.push_back(testing_support::small_set({{"v", field_type::int64}}));
        pool = std::make_unique<lookup_pool>(2, backlog);
        reader = std::make_unique<tiered_reader>(cfg, memory, with_cache ? &redis : nullptr,
                                                 with_durable ? &pg : nullptr, *pool, backlog, std::vector<aggregator*>{nullptr},
                                                 nullptr);
    }
    ~reader_fixture() { pool->stop(); }

    answer get(const std::string& key) {
        std::promise<answer> p;
        auto f = p.get_future();
        reader->get_latest(0, key, [&p](answer a) { p.set_value(std::move(a)); });
        EXPECT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
        return f.get();
    }
    std::vector<answer> get_many(std::vector<std::string> keys, std::optional<std::int64_t> as_of = std::nullopt) {
        std::promise<std::vector<answer>> p;
        auto f = p.get_future();
        reader->get_latest_many(0, std::move(keys), as_of, [&p](std::vector<answer> a) { p.set_value(std::move(a)); });
        EXPECT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
        return f.get();
    }
    void in_memory(const latest_entry& e) { memory.upsert(0, std::make_shared<const latest_entry>(e)); }

    config cfg;
    memory_index memory{1};
    scripted_cache redis;
    scripted_durable pg;
    std::unique_ptr<lookup_pool> pool;
    std::unique_ptr<tiered_reader> reader;
};

std::int64_t value_of(const answer& a) {
    EXPECT_TRUE(a.ok()) << a.message();
    EXPECT_TRUE(a.ok() && a.value().has_value());
    return a.ok() && a.value() ? std::get<std::int64_t>(a.value()->values.at(0)) : -1;
}

TEST(TieredReader, MemoryHitAnswersInlineWithoutAskingTheStores) {
    reader_fixture f;
    f.in_memory(entry("k1", 1000, 7));
    f.redis.hashes["k1"] = entry("k1", 500, 1);
    bool answered_inline = false;
    std::int64_t got = -1;
    f.reader->get_latest(0, "k1", [&](answer a) {
        answered_inline = true;
        got = value_of(a);
    });
    EXPECT_TRUE(answered_inline);  // before get_latest returned: no pool, no Redis round trip
    EXPECT_EQ(got, 7);
    EXPECT_EQ(f.redis.keys_asked.load(), 0);
    EXPECT_EQ(f.pg.reads.load(), 0);
}

TEST(TieredReader, MemoryMissReadsRedisAndNotPostgres) {
    reader_fixture f;
    f.redis.hashes["k1"] = entry("k1", 1000, 3);
    f.pg.rows["k1"] = entry("k1", 900, 2);
    EXPECT_EQ(value_of(f.get("k1")), 3);
    EXPECT_EQ(f.pg.reads.load(), 0);
}

TEST(TieredReader, RedisMissFallsBackToPostgres) {
    reader_fixture f;
    f.pg.rows["k1"] = entry("k1", 900, 2);
    EXPECT_EQ(value_of(f.get("k1")), 2);
    EXPECT_EQ(f.redis.keys_asked.load(), 1);
    EXPECT_EQ(f.pg.reads.load(), 1);
}

TEST(TieredReader, RedisDownFallsBackToPostgres) {
    reader_fixture f;
    f.redis.down = true;
    f.pg.rows["k1"] = entry("k1", 900, 2);
    EXPECT_EQ(value_of(f.get("k1")), 2);
}

TEST(TieredReader, BothStoresDownTellsBothErrors) {
    reader_fixture f;
    f.redis.down = true;
    f.pg.down = true;
    auto a = f.get("k1");
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.message().find("Redis: connection refused"), std::string::npos) << a.message();
    EXPECT_NE(a.message().find("PostgreSQL: connection refused"), std::string::npos) << a.message();
}

TEST(TieredReader, UnknownKeyEverywhereIsNotFoundNotAnError) {
    reader_fixture f;
    auto a = f.get("nobody");
    ASSERT_TRUE(a.ok()) << a.message();
    EXPECT_FALSE(a.value().has_value());
}

TEST(TieredReader, WithoutStoresAMissIsNotFound) {
    reader_fixture f(/*with_cache=*/false, /*with_durable=*/false);
    f.in_memory(entry("k1", 1000, 7));
    EXPECT_EQ(value_of(f.get("k1")), 7);
    auto a = f.get("k2");
    ASSERT_TRUE(a.ok());
    EXPECT_FALSE(a.value().has_value());
}

TEST(TieredReader, MemoryDisabledReadsTheStores) {
    reader_fixture f;
    f.cfg.memory.enabled = false;
    f.in_memory(entry("k1", 1000, 7));
    f.redis.hashes["k1"] = entry("k1", 900, 4);
    EXPECT_EQ(value_of(f.get("k1")), 4);
}

TEST(TieredReader, BatchKeepsTheOrderAskedAndReadsMissesInOneRedisRoundTrip) {
    reader_fixture f;
    f.in_memory(entry("a", 1, 1));
    f.redis.hashes["b"] = entry("b", 2, 2);
    f.pg.rows["c"] = entry("c", 3, 3);
    auto got = f.get_many({"c", "nobody", "a", "b"});
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(value_of(got[0]), 3);
    ASSERT_TRUE(got[1].ok());
    EXPECT_FALSE(got[1].value().has_value());
    EXPECT_EQ(value_of(got[2]), 1);
    EXPECT_EQ(value_of(got[3]), 2);
    EXPECT_EQ(f.redis.round_trips.load(), 1);  // the three misses together
    EXPECT_EQ(f.redis.keys_asked.load(), 3);   // not the memory hit
    EXPECT_EQ(f.pg.reads.load(), 2);           // what Redis did not have
}

TEST(TieredReader, FullBacklogAnswersTheBacklogErrorForEveryKey) {
    reader_fixture f(/*with_cache=*/true, /*with_durable=*/true, /*backlog=*/0);
    auto single = f.get("k1");
    ASSERT_FALSE(single.ok());
    EXPECT_EQ(single.message(), lookup_backlog_full);
    auto many = f.get_many({"x", "y"});
    ASSERT_EQ(many.size(), 2u);
    for (const auto& a : many) {
        ASSERT_FALSE(a.ok());
        EXPECT_EQ(a.message(), lookup_backlog_full);
    }
}

TEST(TieredReader, AsOfNeedsPostgres) {
    reader_fixture f(/*with_cache=*/true, /*with_durable=*/false);
    std::promise<answer> p;
    f.reader->get_as_of(0, "k1", 1000, [&p](answer a) { p.set_value(std::move(a)); });
    auto a = p.get_future().get();
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.message().find("need PostgreSQL"), std::string::npos) << a.message();
}

TEST(TieredReader, AsOfReadsHistoryNotLatest) {
    reader_fixture f;
    f.in_memory(entry("k1", 5000, 50));
    f.pg.slice.newest = entry("k1", 1000, 10);
    std::promise<answer> p;
    f.reader->get_as_of(0, "k1", 1500, [&p](answer a) { p.set_value(std::move(a)); });
    EXPECT_EQ(value_of(p.get_future().get()), 10);
}

TEST(TieredReader, HistoryPagesWithACursorWhenMoreRowsFollow) {
    reader_fixture f;
    for (int i = 0; i < 5; ++i) f.pg.history.push_back({entry("k1", 5000 - i * 100, i), 100 - i});
    history_request req;
    req.key = "k1";
    req.to_ms = 10000;
    req.limit = 3;
    std::promise<result<history_page>> p;
    f.reader->get_history(req, [&p](result<history_page> r) { p.set_value(std::move(r)); });
    auto page = p.get_future().get();
    ASSERT_TRUE(page.ok()) << page.message();
    ASSERT_EQ(page->records.size(), 3u);
    ASSERT_TRUE(page->next.has_value());
    EXPECT_EQ(page->next->event_time_ms, 4800);
    EXPECT_EQ(page->next->id, 98);

    req.limit = 10;
    std::promise<result<history_page>> last;
    f.reader->get_history(req, [&last](result<history_page> r) { last.set_value(std::move(r)); });
    auto all = last.get_future().get();
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->records.size(), 5u);
    EXPECT_FALSE(all->next.has_value());
}

// Stored aggregation values are as of their write; a key whose state this instance keeps is
// served the aggregator's values as of now, and a key of a partition it does not own is not.
TEST(TieredReader, AggregationsAreAsOfNowOnlyForOwnedPartitions) {
    config cfg;
    auto set = testing_support::small_set({{"v", field_type::int64}});
    set.aggregations.push_back({"v_count_1h", "v", 0, agg_op::count, 3600000});
    cfg.feature_sets.push_back(set);
    memory_index memory{1};
    lookup_pool pool(1, 10);
    aggregator agg(cfg.feature_sets[0]);
    const auto now = now_ms();
    agg.add("mine", now - 1000, {value{std::int64_t{1}}}, 0);
    agg.add("mine", now - 500, {value{std::int64_t{2}}}, 0);
    agg.add("theirs", now - 1000, {value{std::int64_t{1}}}, 1);
    tiered_reader reader(cfg, memory, nullptr, nullptr, pool, 10, {&agg}, nullptr);
    reader.set_owner([](const std::string&, std::int32_t partition) { return partition == 0; });
    for (const char* key : {"mine", "theirs"}) {
        latest_entry stored = entry(key, now - 500, 2);
        stored.values.push_back(value{std::int64_t{99}});  // the count as of its write
        memory.upsert(0, std::make_shared<const latest_entry>(stored));
    }
    std::int64_t mine = -1, theirs = -1;
    reader.get_latest(0, "mine", [&](answer a) { mine = std::get<std::int64_t>(a.value()->values.at(1)); });
    reader.get_latest(0, "theirs", [&](answer a) { theirs = std::get<std::int64_t>(a.value()->values.at(1)); });
    EXPECT_EQ(mine, 2);     // the aggregator's count now
    EXPECT_EQ(theirs, 99);  // another instance's partition: the stored value
    pool.stop();
}

}  // namespace
}  // namespace sluice
