// The store writer's promise: offsets are reported only after the batch that holds them is
// durable (and its dead letters published), PostgreSQL failures are retried without losing the
// batch, and Redis and memory get the newest record of each key.

#include "sluice/store/store_writer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <thread>

#include "common/small_set.hpp"
#include "sluice/core/clock.hpp"
#include "mocks/mock_stores.hpp"

namespace sluice {
namespace {

config one_set_config() {
    config cfg;
    cfg.feature_sets.push_back(testing_support::small_set({{"v", field_type::int64}}));
    cfg.pipeline.batch_max_records = 100;
    cfg.pipeline.batch_linger_ms = 1;
    return cfg;
}

processed make_record(const std::string& key, std::int64_t time, std::int32_t partition, std::int64_t offset) {
    record r;
    r.key = key;
    r.event_time_ms = time;
    r.values = {value{time}};
    r.source = {"t", partition, offset};
    return r;
}

processed make_dead_letter(std::int32_t partition, std::int64_t offset) {
    dead_letter d;
    d.source = {"t", partition, offset};
    d.error = "bad";
    return d;
}

struct writer_fixture {
    config cfg = one_set_config();
    mocks::journal journal;
    mocks::fake_durable_store pg{journal};
    mocks::fake_cache redis{journal};
    mocks::fake_offsets offsets{journal};
    mocks::fake_dead_letter_topic dlq{journal};
    memory_index memory{1};
    wakeup readable;
    channel<processed> input{1024, &readable};
    store_writer writer{cfg, {&input}, readable, &pg, &redis, memory, &offsets, &dlq};

    void push(processed p) {
        ASSERT_TRUE(input.queue.try_push(p));
        readable.notify();
    }
    // Waits (bounded) until the offsets sink saw next_offset for the partition.
    bool wait_offset(std::int32_t partition, std::int64_t next, std::chrono::seconds limit = std::chrono::seconds(20)) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < until) {
            {
                std::lock_guard lock(offsets.mutex);
                for (const auto& o : offsets.stored)
                    if (o.partition == partition && o.next_offset == next) return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    }
    void drain() {
        std::atomic<bool> no_abort{false};
        writer.drain_and_join(no_abort);
    }
};

TEST(StoreWriter, OffsetsAreReportedOnlyAfterTheBatchCommits) {
    writer_fixture f;
    f.pg.failures_left = 3;  // PostgreSQL refuses three times, then accepts
    f.writer.start();
    f.push(make_record("a", 10, 0, 41));
    f.push(make_record("b", 11, 1, 7));
    ASSERT_TRUE(f.wait_offset(0, 42)) << "the offset after the record was never reported";
    ASSERT_TRUE(f.wait_offset(1, 8));
    f.drain();

    const auto events = f.journal.snapshot();
    const auto commit = std::find(events.begin(), events.end(), "pg:commit");
    const auto offsets = std::find(events.begin(), events.end(), "kafka:offsets");
    ASSERT_NE(commit, events.end());
    ASSERT_NE(offsets, events.end());
    EXPECT_LT(commit, offsets) << "offsets were reported before the commit";
    EXPECT_EQ(std::count(events.begin(), commit, "pg:fail"), 3) << "the failed writes were not retried";
    // The batch that finally committed holds both records: nothing was dropped by the failures.
    std::size_t rows = 0;
    for (const auto& b : f.pg.committed) rows += b.records.size();
    EXPECT_EQ(rows, 2u);
}

TEST(StoreWriter, RecordsOfAGivenUpPartitionAreLeftToItsNewOwner) {
    writer_fixture f;
    {
        std::lock_guard lock(f.offsets.given_up_mutex);
        f.offsets.given_up.insert(1);
    }
    f.writer.start();
    f.push(make_record("gone", 10, 1, 5));
    f.push(make_dead_letter(1, 6));
    f.push(make_record("kept", 11, 0, 3));
    ASSERT_TRUE(f.wait_offset(0, 4));
    f.drain();
    std::size_t rows = 0, letters = 0;
    for (const auto& b : f.pg.committed) {
        for (const auto& r : b.records) EXPECT_EQ(r.source.partition, 0) << r.key << " was written";
        rows += b.records.size();
        letters += b.dead_letters.size();
        for (const auto& o : b.offsets) EXPECT_NE(o.partition, 1) << "the given-up partition's offset was written";
    }
    EXPECT_EQ(rows, 1u);
    EXPECT_EQ(letters, 0u);
    std::lock_guard lock(f.offsets.mutex);
    for (const auto& o : f.offsets.stored) EXPECT_NE(o.partition, 1) << "its offset was stored in Kafka";
    EXPECT_EQ(f.memory.find(0, "gone"), nullptr);
}

TEST(StoreWriter, NoOffsetIsReportedWhileTheStoreKeepsFailing) {
    writer_fixture f;
    f.pg.failures_left = 1000000;
    f.writer.start();
    f.push(make_record("a", 10, 0, 5));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    {
        std::lock_guard lock(f.offsets.mutex);
        EXPECT_TRUE(f.offsets.stored.empty());
    }
    EXPECT_FALSE(f.writer.last_error().empty());
    std::atomic<bool> abort{true};  // shutdown deadline passed: give up, store nothing
    f.writer.drain_and_join(abort);
    std::lock_guard lock(f.offsets.mutex);
    EXPECT_TRUE(f.offsets.stored.empty());
}

// Bounded wait until memory holds the key (or not, after the limit).
bool wait_in_memory(memory_index& memory, const std::string& key, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (memory.find(0, key) == nullptr) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

TEST(StoreWriter, ABatchIsReadableFromMemoryWhilePostgreSQLIsStillWritingIt) {
    writer_fixture f;
    f.pg.failures_left = 1000000;  // the commit keeps failing, and is retried
    f.writer.start();
    f.push(make_record("early", 10, 0, 5));
    EXPECT_TRUE(wait_in_memory(f.memory, "early", std::chrono::seconds(20)));
    {
        std::lock_guard lock(f.pg.mutex);
        EXPECT_TRUE(f.pg.committed.empty());
    }
    {
        std::lock_guard lock(f.offsets.mutex);
        EXPECT_TRUE(f.offsets.stored.empty()) << "readable early, but durable only after the commit";
    }
    f.pg.failures_left = 0;
    EXPECT_TRUE(f.wait_offset(0, 6));
    f.drain();
}

TEST(StoreWriter, WithBeforeCommitOffABatchIsReadableOnlyOnceCommitted) {
    writer_fixture f;
    f.cfg.memory.before_commit = false;
    f.pg.failures_left = 1000000;
    f.writer.start();
    f.push(make_record("late", 10, 0, 5));
    EXPECT_FALSE(wait_in_memory(f.memory, "late", std::chrono::milliseconds(400)));
    EXPECT_FALSE(f.writer.last_error().empty()) << "the commit was not even tried";
    f.pg.failures_left = 0;
    EXPECT_TRUE(wait_in_memory(f.memory, "late", std::chrono::seconds(20)));
    {
        std::lock_guard lock(f.pg.mutex);
        EXPECT_EQ(f.pg.committed.size(), 1u);
    }
    f.drain();
}

TEST(StoreWriter, DeadLettersArePublishedBeforeTheirOffsetsAreStored) {
    writer_fixture f;
    f.dlq.failures_left = 2;
    f.writer.start();
    f.push(make_dead_letter(2, 99));
    ASSERT_TRUE(f.wait_offset(2, 100));
    f.drain();
    const auto events = f.journal.snapshot();
    const auto published = std::find(events.begin(), events.end(), "dlq:publish");
    const auto offsets = std::find(events.begin(), events.end(), "kafka:offsets");
    ASSERT_NE(published, events.end());
    EXPECT_LT(published, offsets);
    EXPECT_EQ(std::count(events.begin(), published, "dlq:fail"), 2);
    EXPECT_EQ(f.dlq.published.load(), 1u);
}

TEST(StoreWriter, CacheAndMemoryGetTheNewestRecordOfEachKey) {
    writer_fixture f;
    // All in one batch: the writer is not started until they are queued.
    f.push(make_record("a", 30, 0, 1));
    f.push(make_record("a", 10, 0, 2));  // late: must not win
    f.push(make_record("a", 20, 0, 3));
    f.push(make_record("b", 5, 0, 4));
    f.writer.start();
    ASSERT_TRUE(f.wait_offset(0, 5));
    f.drain();
    std::lock_guard lock(f.redis.mutex);
    ASSERT_EQ(f.redis.applied.size(), 2u);
    for (const auto& [key, time] : f.redis.applied) EXPECT_EQ(time, key == "a" ? 30 : 5) << key;
    ASSERT_NE(f.memory.find(0, "a"), nullptr);
    EXPECT_EQ(f.memory.find(0, "a")->event_time_ms, 30);
    EXPECT_EQ(f.memory.find(0, "a")->partition, 0);
}

/// A Redis that hangs on its first update until released.
class stuck_cache final : public latest_cache {
public:
    std::mutex mutex;
    std::condition_variable cv;
    bool entered = false;
    bool released = false;
    std::vector<std::string> applied;
    std::vector<std::int64_t> applied_times;
    int applies = 0;

    status apply(const std::vector<const record*>& records) override {
        std::unique_lock lock(mutex);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
        for (const auto* r : records) {
            applied.push_back(r->key);
            applied_times.push_back(r->event_time_ms);
        }
        ++applies;
        return status::success();
    }
    result<std::optional<latest_entry>> read_latest(std::uint32_t, const std::string&) override {
        return std::optional<latest_entry>{};
    }
    bool healthy() const override { return true; }
    status ping() override { return status::success(); }
};

// A writer whose Redis is stuck on its first update until released.
struct stuck_redis_fixture {
    config cfg = one_set_config();
    mocks::journal journal;
    mocks::fake_durable_store pg{journal};
    stuck_cache redis;
    mocks::fake_offsets offsets{journal};
    memory_index memory{1};
    wakeup readable;
    channel<processed> input{1024, &readable};
    store_writer writer{cfg, {&input}, readable, &pg, &redis, memory, &offsets};

    void push(processed p) {
        ASSERT_TRUE(input.queue.try_push(p));
        readable.notify();
    }
    std::size_t committed() {
        std::lock_guard lock(pg.mutex);
        return pg.committed.size();
    }
};

TEST(StoreWriter, PostgreSQLWritesOnWhileRedisLagsAndOffsetsWaitForRedis) {
    stuck_redis_fixture f;
    auto& [cfg, journal, pg, redis, offsets, memory, readable, input, writer] = f;
    auto push = [&](processed p) { f.push(std::move(p)); };
    auto committed = [&] { return f.committed(); };
    writer.start();
    push(make_record("a", 10, 0, 1));
    {
        std::unique_lock lock(redis.mutex);
        ASSERT_TRUE(redis.cv.wait_for(lock, std::chrono::seconds(20), [&] { return redis.entered; }));
    }
    // Redis is stuck on the first batch: the next one is still committed to PostgreSQL...
    push(make_record("b", 11, 0, 2));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (committed() < 2 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(committed(), 2u) << "PostgreSQL waited for Redis";
    // ...reads answered from memory see the first batch already, but no offset is reported
    // until Redis has it too.
    {
        std::lock_guard lock(offsets.mutex);
        EXPECT_TRUE(offsets.stored.empty());
    }
    EXPECT_NE(memory.find(0, "a"), nullptr);
    {
        std::lock_guard lock(redis.mutex);
        redis.released = true;
    }
    redis.cv.notify_all();
    std::atomic<bool> no_abort{false};
    writer.drain_and_join(no_abort);
    // Drained: both batches reached Redis, memory and the offset sink, in order.
    EXPECT_EQ(redis.applied, (std::vector<std::string>{"a", "b"}));
    ASSERT_NE(memory.find(0, "b"), nullptr);
    std::lock_guard lock(offsets.mutex);
    ASSERT_EQ(offsets.stored.size(), 2u);
    EXPECT_EQ(offsets.stored[0].next_offset, 2);
    EXPECT_EQ(offsets.stored[1].next_offset, 3);
}

TEST(StoreWriter, APushIsAnsweredOnceItsRecordIsDurableAndInMemory) {
    writer_fixture f;
    f.writer.start();
    std::promise<bool> answered;
    record r = std::get<record>(make_record("pushed", 10, -1, 0));
    std::vector<processed> items;
    items.emplace_back(std::move(r));
    ASSERT_TRUE(f.writer.push(std::move(items), [&](bool durable, std::vector<std::pair<std::size_t, std::string>>) {
        // What the client reads next must already be there.
        const bool in_memory = f.memory.find(0, "pushed") != nullptr;
        std::lock_guard lock(f.pg.mutex);
        answered.set_value(durable && in_memory && f.pg.committed.size() == 1);
    }));
    auto result = answered.get_future();
    ASSERT_EQ(result.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    EXPECT_TRUE(result.get()) << "the push was answered before it was durable and readable";
    f.drain();
}

// A message at or past the stored offset is written; one below it (a re-delivery: Kafka handed
// it again after a rebalance or a seek) is in PostgreSQL already and is not written twice.
TEST(StoreWriter, ARecordBelowTheStoredOffsetIsNotWrittenAgain) {
    writer_fixture f;
    f.pg.stored_offsets[{"t", 0}] = 42;
    f.writer.start();
    for (std::int64_t offset = 40; offset < 44; ++offset) f.push(make_record("k" + std::to_string(offset), 10, 0, offset));
    ASSERT_TRUE(f.wait_offset(0, 44));
    f.drain();
    std::vector<std::int64_t> written;
    for (const auto& b : f.pg.committed) {
        for (const auto& r : b.records) written.push_back(r.source.offset);
        for (const auto& o : b.offsets) EXPECT_GE(o.expected, 42) << "a batch did not continue from the stored offset";
    }
    EXPECT_EQ(written, (std::vector<std::int64_t>{42, 43}));
    EXPECT_EQ(f.memory.find(0, "k40"), nullptr) << "a re-delivered record reached memory";
}

// Another writer (the partition's former owner after a rebalance) stored offsets 2..4 between two
// of this writer's batches: the second batch is fenced, fitted again to what is stored now, and
// written from there; every offset is committed once in all.
TEST(StoreWriter, AFencedBatchContinuesFromWhatTheOtherWriterStored) {
    writer_fixture f;
    pipeline_stats stats(1);
    f.writer.set_stats(&stats);
    f.writer.start();
    f.push(make_record("a", 10, 0, 0));
    f.push(make_record("b", 10, 0, 1));
    ASSERT_TRUE(f.wait_offset(0, 2));
    {
        std::lock_guard lock(f.pg.mutex);
        f.pg.stored_offsets[{"t", 0}] = 5;  // the other writer's commit of 2, 3 and 4
    }
    for (std::int64_t offset = 2; offset < 8; ++offset) f.push(make_record("c", 10 + offset, 0, offset));
    ASSERT_TRUE(f.wait_offset(0, 8));
    f.drain();
    std::vector<std::int64_t> written;
    for (const auto& b : f.pg.committed)
        for (const auto& r : b.records) written.push_back(r.source.offset);
    EXPECT_EQ(written, (std::vector<std::int64_t>{0, 1, 5, 6, 7}));
    const auto events = f.journal.snapshot();
    EXPECT_EQ(std::count(events.begin(), events.end(), "pg:fenced"), 1);
    EXPECT_EQ(stats.fenced_batches.load(), 1u);
    EXPECT_EQ((f.pg.stored_offsets[{"t", 0}]), 8);
    EXPECT_NE(f.memory.find(0, "c"), nullptr);
}

// A traced record (one in 64 Kafka records, stamped by the consumer and the parser) is counted
// at each stage it reaches, once, with the time since it was produced; an untraced one is not.
TEST(StoreWriter, ATracedRecordIsCountedAtEveryStageItReaches) {
    writer_fixture f;
    pipeline_stats stats(1);
    f.writer.set_stats(&stats);
    f.writer.start();
    processed traced_record = make_record("t", 10, 0, 0);
    const std::int64_t produced_ms = now_ms() - 20;
    std::get<record>(traced_record).trace = {produced_ms, produced_ms * 1000 + 1000, produced_ms * 1000 + 2000};
    f.push(traced_record);
    f.push(make_record("u", 10, 0, 1));
    ASSERT_TRUE(f.wait_offset(0, 2));
    f.drain();
    auto total = [&](trace_stage stage) {
        std::uint64_t n = 0;
        for (std::size_t b = 0; b < stage_trace::buckets; ++b) n += stats.trace.count(stage, b);
        return n;
    };
    for (auto stage : {trace_stage::consumed, trace_stage::parsed, trace_stage::batched, trace_stage::memory,
                       trace_stage::committed, trace_stage::redis})
        EXPECT_EQ(total(stage), 1u) << to_string(stage);
    // Consumed 1 ms after production: in the bucket up to 1 ms; batched at least 20 ms after.
    EXPECT_EQ(stats.trace.count(trace_stage::consumed, 1), 1u);
    EXPECT_GE(stats.trace.sum_us(trace_stage::batched), 20000u);
}

// Two batches in flight, each on a lane of its own: every record is written once, and the
// offsets reach Kafka in the order the batches were made, also when PostgreSQL refuses a write
// now and then.
TEST(StoreWriter, WithTwoBatchesInFlightOffsetsAreReportedInOrder) {
    writer_fixture f;
    f.cfg.pipeline.batches_in_flight = 2;
    f.cfg.pipeline.batch_max_records = 7;
    mocks::fake_lanes_store lanes{f.pg};
    store_writer writer{f.cfg, {&f.input}, f.readable, &lanes, &f.redis, f.memory, &f.offsets, &f.dlq};
    f.pg.failures_left = 3;
    writer.start();
    constexpr std::int64_t n = 500;
    for (std::int64_t offset = 0; offset < n; ++offset) {
        processed item = make_record("k" + std::to_string(offset % 37), offset, 0, offset);
        while (!f.input.queue.try_push(item)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        f.readable.notify();
    }
    ASSERT_TRUE(f.wait_offset(0, n));
    std::atomic<bool> no_abort{false};
    writer.drain_and_join(no_abort);
    std::vector<std::int64_t> written;
    for (const auto& b : f.pg.committed)
        for (const auto& r : b.records) written.push_back(r.source.offset);
    std::sort(written.begin(), written.end());
    ASSERT_EQ(written.size(), static_cast<std::size_t>(n)) << "a record was lost or written twice";
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(written[static_cast<std::size_t>(i)], i);
    std::lock_guard lock(f.offsets.mutex);
    std::int64_t last = 0;
    for (const auto& o : f.offsets.stored) {
        EXPECT_GT(o.next_offset, last) << "offsets reported out of order";
        last = o.next_offset;
    }
    EXPECT_EQ(lanes.most_at_once.load(), 2) << "the batches never overlapped";
}

// While Redis is stuck on one batch, the batches committed meanwhile wait for it together; once
// it answers they go to Redis in one update, each key once with its newest event, and their
// offsets are reported in order.
TEST(StoreWriter, BatchesWaitingForRedisGoToItTogetherEachKeyOnce) {
    stuck_redis_fixture f;
    auto& [cfg, journal, pg, redis, offsets, memory, readable, input, writer] = f;
    auto committed = [&] { return f.committed(); };
    // One record per batch: pushed once the batch before is committed.
    auto push_batch = [&](processed p) {
        const auto before = committed();
        f.push(std::move(p));
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (committed() == before && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ASSERT_GT(committed(), before);
    };
    writer.start();
    push_batch(make_record("a", 10, 0, 1));
    {
        std::unique_lock lock(redis.mutex);
        ASSERT_TRUE(redis.cv.wait_for(lock, std::chrono::seconds(20), [&] { return redis.entered; }));
    }
    push_batch(make_record("b", 11, 0, 2));
    push_batch(make_record("b", 13, 0, 3));
    push_batch(make_record("b", 12, 0, 4));  // older than the one before it
    push_batch(make_record("c", 5, 0, 5));
    {
        std::lock_guard lock(redis.mutex);
        redis.released = true;
    }
    redis.cv.notify_all();
    std::atomic<bool> no_abort{false};
    writer.drain_and_join(no_abort);
    EXPECT_EQ(redis.applies, 2) << "the waiting batches were not written to Redis together";
    EXPECT_EQ(redis.applied, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(redis.applied_times, (std::vector<std::int64_t>{10, 13, 5}));
    std::lock_guard lock(offsets.mutex);
    ASSERT_EQ(offsets.stored.size(), 5u);
    for (std::size_t i = 0; i < offsets.stored.size(); ++i) EXPECT_EQ(offsets.stored[i].next_offset, static_cast<std::int64_t>(i) + 2);
}

}  // namespace
}  // namespace sluice
