// The PostgreSQL store on its own, against a real server: a batch is copied straight into
// history, and a batch that holds rows history has already (a re-delivery, another instance's
// write) is written again the safe way, so every message is in history exactly once and latest
// keeps the newest event of each key; the offsets of every partition land in one transaction.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "common/small_set.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/wait.hpp"
#include "sluice/store/postgres_store.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;

namespace sluice {
namespace {

config store_config(const std::string& dsn, bool parallel_latest) {
    config cfg;
    cfg.feature_sets.push_back(testing_support::small_set({{"v", field_type::int64}, {"note", field_type::string}}));
    postgres_config pg;
    pg.dsn = dsn;
    pg.parallel_latest = parallel_latest;
    cfg.postgres = pg;
    cfg.kafka.group_id = "g";
    return cfg;
}

record make_record(const std::string& key, std::int64_t time, std::int32_t partition, std::int64_t offset) {
    record r;
    r.key = key;
    r.event_time_ms = time;
    r.ingested_at_ms = time;
    r.values = {value{offset}, value{std::string("tab\there \"quoted\" \\ back")}};
    r.source = {"t", partition, offset};
    return r;
}

// Every test runs with latest upserted in the writer's one transaction and on a second
// connection in parallel (postgres.parallel_latest).
class PostgresStore : public ::testing::TestWithParam<bool> {
protected:
    it::postgres_server server;
    config cfg = store_config(server.dsn(), GetParam());
    durable_store_ptr store = make_postgres_store(cfg);

    void SetUp() override { ASSERT_TRUE(store->prepare().ok()); }
    long long count(const std::string& sql) { return it::pg_count(server.dsn(), sql); }
    it::pg_rows offsets() {
        return it::pg_query(server.dsn(),
                            "SELECT partition, next_offset FROM sluice.consumer_offsets WHERE group_id = 'g' "
                            "ORDER BY partition");
    }
    it::pg_rows latest() {
        return it::pg_query(server.dsn(),
                            "SELECT key, (extract(epoch from event_time) * 1000)::bigint FROM sluice.s_latest ORDER BY key");
    }
};

INSTANTIATE_TEST_SUITE_P(Latest, PostgresStore, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "in_parallel" : "in_one_transaction"; });

// With postgres.history_unique_index, history is also unique on the Kafka source: a batch written
// without fencing that repeats rows (a re-delivery past the stored offsets) keeps each once.
TEST_P(PostgresStore, WithTheUniqueIndexRowsAlreadyInHistoryAreSkippedAndTheRestWrittenExactlyOnce) {
    config indexed = cfg;
    indexed.postgres->history_unique_index = true;
    store = make_postgres_store(indexed);
    ASSERT_TRUE(store->prepare().ok());
    write_batch first;
    first.records = {make_record("a", 100, 0, 0), make_record("b", 100, 0, 1), make_record("a", 300, 1, 0)};
    first.offsets = {{"t", 0, 2}, {"t", 1, 1}};
    ASSERT_TRUE(store->write(first).ok());

    // A re-delivery of part of the first batch, with new messages before and after it.
    write_batch second;
    second.records = {make_record("c", 50, 0, 2),  make_record("a", 100, 0, 0), make_record("b", 100, 0, 1),
                      make_record("a", 200, 0, 3), make_record("b", 400, 0, 4), make_record("b", 400, 1, 1)};
    second.offsets = {{"t", 0, 5}, {"t", 1, 2}};
    auto s = store->write(second);
    ASSERT_TRUE(s.ok()) << s.message();

    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 7) << "a row is missing or repeated";
    EXPECT_EQ(count("SELECT count(*) FROM (SELECT src_partition, src_offset FROM sluice.s_history "
                    "GROUP BY 1, 2 HAVING count(*) > 1) d"),
              0);
    // Latest: the newest event of each key; among equal event times the first delivered.
    auto rows = it::pg_query(server.dsn(),
                             "SELECT key, (extract(epoch from event_time) * 1000)::bigint, v, note FROM "
                             "sluice.s_latest ORDER BY key");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "300", "0", "tab\there \"quoted\" \\ back"}));
    EXPECT_EQ(rows[1], (std::vector<std::string>{"b", "400", "1", "tab\there \"quoted\" \\ back"}));
    EXPECT_EQ(rows[2], (std::vector<std::string>{"c", "50", "2", "tab\there \"quoted\" \\ back"}));
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "5"}, {"1", "2"}}));

    // An older batch's offsets (a revoked owner's last write) never move an offset back.
    write_batch stale;
    stale.records = {make_record("d", 10, 0, 5)};
    stale.offsets = {{"t", 0, 6}, {"t", 1, 1}};
    ASSERT_TRUE(store->write(stale).ok());
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "6"}, {"1", "2"}}));
}

// Fencing: of two writers that read the same stored offset of a partition and write batches
// continuing from it at the same moment, only the first to commit counts; the other is rolled
// back whole (history, latest, offsets) and told it was fenced. Nothing is doubled in any round,
// whether no offset was stored yet (the first round) or one was.
TEST_P(PostgresStore, OfTwoWritersRacingForOnePartitionTheLoserIsRolledBack) {
    durable_store_ptr other = make_postgres_store(cfg);
    ASSERT_TRUE(other->prepare().ok());
    auto batch_of = [](const std::string& writer, int round, std::int64_t from) {
        write_batch b;
        for (std::int64_t i = 0; i < 3; ++i)
            b.records.push_back(make_record(writer + std::to_string(round) + "_" + std::to_string(i), 100, 0, from + i));
        b.offsets = {{"t", 0, from + 3, from == 0 ? partition_offset::no_stored_offset : from}};
        return b;
    };
    constexpr int rounds = 12;
    int a_won = 0, b_won = 0;
    for (int round = 0; round < rounds; ++round) {
        const std::int64_t from = round * 3;
        const write_batch a = batch_of("a", round, from), b = batch_of("b", round, from);
        auto sa = std::async(std::launch::async, [&] { return store->write(a); });
        auto sb = std::async(std::launch::async, [&] { return other->write(b); });
        const status ra = sa.get(), rb = sb.get();
        ASSERT_NE(ra.ok(), rb.ok()) << "round " << round << ": a " << ra.message() << ", b " << rb.message();
        const status& lost = ra.ok() ? rb : ra;
        EXPECT_EQ(lost.kind(), error_kind::not_owned) << lost.message();
        EXPECT_NE(lost.message().find("fenced"), std::string::npos) << lost.message();
        (ra.ok() ? a_won : b_won) += 1;
        const std::string winner = ra.ok() ? "a" : "b", loser = ra.ok() ? "b" : "a";
        const std::string prefix = std::to_string(round) + "\\_%";
        EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history WHERE key LIKE '" + winner + prefix + "'"), 3);
        EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history WHERE key LIKE '" + loser + prefix + "'"), 0);
        EXPECT_EQ(count("SELECT count(*) FROM sluice.s_latest WHERE key LIKE '" + loser + prefix + "'"), 0)
            << "the fenced batch's latest rows stayed";
    }
    EXPECT_EQ(a_won + b_won, rounds);
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 3 * rounds);
    EXPECT_EQ(count("SELECT count(*) FROM (SELECT src_offset FROM sluice.s_history GROUP BY 1 HAVING count(*) > 1) d"), 0);
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", std::to_string(3 * rounds)}}));

    // A batch built on an offset that is no longer stored (a writer that missed the other's
    // commits) is fenced too, even without a race.
    write_batch stale = batch_of("z", 0, 3);
    auto s = store->write(stale);
    EXPECT_EQ(s.kind(), error_kind::not_owned) << s.message();
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 3 * rounds);
}

// Two batches in flight on two connections (pipeline.batches_in_flight 2), sharing their
// partition and (every other round) their keys: the second copies its rows while the first is still open, upserts latest and
// stores its offsets only on its turn, and waits for the first's row locks instead of
// deadlocking; both commit, latest holds the second's newer events, each row is in history once.
TEST_P(PostgresStore, TwoBatchesInFlightSharingKeysBothCommitInOrder) {
    config two = cfg;
    two.pipeline.batches_in_flight = 2;
    durable_store_ptr lanes = make_postgres_store(two);
    ASSERT_TRUE(lanes->prepare().ok());
    ASSERT_EQ(lanes->write_lanes(), 2u);
    constexpr int rounds = 10, keys = 50;
    std::int64_t offset = 0;
    for (int round = 0; round < rounds; ++round) {
        write_batch first, second;
        for (int k = 0; k < keys; ++k) first.records.push_back(make_record("k" + std::to_string(k), 1000 * round + 1, 0, offset + k));
        // In reverse key order: without the upsert's key order the two would lock rows crosswise.
        // Every other round the keys are the second's own: then only the offsets' row orders them.
        const std::string prefix = round % 2 ? "k" : "j";
        for (int k = keys - 1; k >= 0; --k)
            second.records.push_back(make_record(prefix + std::to_string(k), 1000 * round + 2, 0, offset + 2 * keys - 1 - k));
        first.offsets = {{"t", 0, offset + keys, offset == 0 ? partition_offset::no_stored_offset : offset}};
        second.offsets = {{"t", 0, offset + 2 * keys, offset + keys}};
        std::promise<void> first_passed;
        auto passed_future = first_passed.get_future().share();
        const durable_store::write_order first_order{[] { return true; }, [&] { first_passed.set_value(); }};
        const durable_store::write_order second_order{[&] { return passed_future.wait_for(30s) == std::future_status::ready; },
                                                      [] {}};
        auto a = std::async(std::launch::async, [&] { return lanes->write_in_lane(first, 0, first_order); });
        auto b = std::async(std::launch::async, [&] { return lanes->write_in_lane(second, 1, second_order); });
        const status ra = a.get(), rb = b.get();
        ASSERT_TRUE(ra.ok()) << "round " << round << ": " << ra.message();
        ASSERT_TRUE(rb.ok()) << "round " << round << ": " << rb.message();
        offset += 2 * keys;
    }
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), rounds * 2 * keys);
    EXPECT_EQ(count("SELECT count(DISTINCT src_offset) FROM sluice.s_history"), rounds * 2 * keys);
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", std::to_string(offset)}}));
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_latest WHERE (extract(epoch from event_time) * 1000)::bigint = " +
                    std::to_string(1000 * (rounds - 1) + 2)),
              keys)
        << "latest does not hold the second batch's newer events";
}

// By default history has no unique index on the Kafka source (fencing keeps each message once):
// a block-range index over the offsets finds a partition's rows instead. The option brings the
// unique index back, and turning it off drops it again.
TEST_P(PostgresStore, TheUniqueSourceIndexIsAnOption) {
    const std::string indexes = "SELECT indexname FROM pg_indexes WHERE schemaname = 'sluice' AND tablename = "
                                "'s_history' ORDER BY indexname";
    EXPECT_EQ(it::pg_query(server.dsn(), indexes), (it::pg_rows{{"s_history_key_time"}, {"s_history_src_range"}}));
    config indexed = cfg;
    indexed.postgres->history_unique_index = true;
    ASSERT_TRUE(make_postgres_store(indexed)->prepare().ok());
    EXPECT_EQ(it::pg_query(server.dsn(), indexes),
              (it::pg_rows{{"s_history_key_time"}, {"s_history_src"}, {"s_history_src_range"}}));
    ASSERT_TRUE(make_postgres_store(cfg)->prepare().ok());
    EXPECT_EQ(it::pg_query(server.dsn(), indexes), (it::pg_rows{{"s_history_key_time"}, {"s_history_src_range"}}));
}

// The layout's choices for write speed: keys compare byte by byte, and latest leaves room on
// each page so an upsert can be a HOT update.
TEST_P(PostgresStore, KeysAreByteOrderedAndLatestLeavesRoomForHotUpdates) {
    EXPECT_EQ(it::pg_query(server.dsn(),
                           "SELECT table_name, collation_name FROM information_schema.columns WHERE table_schema = "
                           "'sluice' AND column_name = 'key' ORDER BY table_name"),
              (it::pg_rows{{"s_history", "C"}, {"s_latest", "C"}}));
    EXPECT_EQ(it::pg_query(server.dsn(), "SELECT reloptions::text FROM pg_class WHERE oid = 'sluice.s_latest'::regclass"),
              (it::pg_rows{{"{fillfactor=70}"}}));
}

// Each type reaches history and latest as it was read (the fast path writes COPY's binary
// format), NULL stays NULL, and a value that does not have its column's type (here text in an
// integer column) sends the batch as text, which PostgreSQL converts as it always did.
TEST_P(PostgresStore, EveryTypeIsStoredAsItWasRead) {
    config typed = cfg;
    feature_set_config set = testing_support::small_set(
        {{"i", field_type::int64}, {"f", field_type::float64}, {"b", field_type::boolean},
         {"s", field_type::string}, {"t", field_type::timestamp}, {"j", field_type::json}});
    set.name = "typed";
    typed.feature_sets = {set};
    auto typed_store = make_postgres_store(typed);
    ASSERT_TRUE(typed_store->prepare().ok());

    record r = make_record("k1", 1700000000123, 0, 0);
    r.values = {value{std::int64_t{-9007199254740993}}, value{0.1}, value{true}, value{std::string("é\t\"x\"")},
                value{std::int64_t{-86400001}}, value{std::string(R"({"a":[1,2.5,null]})")}};
    record nulls = make_record("k2", 1700000000000, 0, 1);
    nulls.values.assign(6, value{});
    record pushed = make_record("k3", 1, -1, 0);
    pushed.source = {"http", -1, 0};
    pushed.values = {value{std::int64_t{7}}, value{std::int64_t{3}}, value{false}, value{std::string()},
                     value{std::int64_t{0}}, value{std::string("[]")}};
    write_batch batch;
    batch.records = {r, nulls, pushed};
    batch.offsets = {{"t", 0, 2}};
    auto s = typed_store->write(batch);
    ASSERT_TRUE(s.ok()) << s.message();

    const std::string row = "key, (extract(epoch from event_time) * 1000)::bigint, i, f, b, s, "
                            "(extract(epoch from t) * 1000)::bigint, j::text, src_topic, src_partition, src_offset";
    const it::pg_rows expected = {
        {"k1", "1700000000123", "-9007199254740993", "0.1", "t", "é\t\"x\"", "-86400001", R"({"a": [1, 2.5, null]})",
         "t", "0", "0"},
        {"k2", "1700000000000", it::pg_null, it::pg_null, it::pg_null, it::pg_null, it::pg_null, it::pg_null, "t", "0",
         "1"},
        {"k3", "1", "7", "3", "f", "", "0", "[]", "http", it::pg_null, it::pg_null}};
    EXPECT_EQ(it::pg_query(server.dsn(), "SELECT " + row + " FROM sluice.typed_history ORDER BY key"), expected);
    EXPECT_EQ(it::pg_query(server.dsn(),
                           "SELECT key, (extract(epoch from event_time) * 1000)::bigint, i, f, b, s, "
                           "(extract(epoch from t) * 1000)::bigint, j::text FROM sluice.typed_latest ORDER BY key"),
              (it::pg_rows{{expected[0].begin(), expected[0].begin() + 8},
                           {expected[1].begin(), expected[1].begin() + 8},
                           {expected[2].begin(), expected[2].begin() + 8}}));

    // Text where an integer belongs, at the end of a batch of thousands of rows: the whole batch
    // goes as text (PostgreSQL reads the number), each row once.
    write_batch second;
    for (int i = 0; i < 3000; ++i) {
        record bulk = make_record("bulk" + std::to_string(i), 10 + i, 0, 2 + i);
        bulk.values = {value{std::int64_t{i}}, value{}, value{}, value{std::string(40, 'x')}, value{}, value{}};
        second.records.push_back(bulk);
    }
    record odd = make_record("k4", 5, 0, 3002);
    odd.values = {value{std::string("42")}, value{}, value{}, value{}, value{}, value{}};
    second.records.push_back(odd);
    second.offsets = {{"t", 0, 3003}};
    s = typed_store->write(second);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(it::pg_query(server.dsn(), "SELECT i FROM sluice.typed_history WHERE key = 'k4'"), (it::pg_rows{{"42"}}));
    EXPECT_EQ(count("SELECT count(*) FROM sluice.typed_history"), 3 + 3001);
    EXPECT_EQ(count("SELECT count(DISTINCT src_offset) FROM sluice.typed_history WHERE key LIKE 'bulk%'"), 3000);
    EXPECT_EQ(count("SELECT count(*) FROM sluice.typed_latest"), 3 + 3001);
}

// A batch whose latest upsert fails leaves nothing behind: no history row, no offset. Written
// again once the cause is gone, every row is there once.
TEST_P(PostgresStore, ABatchThatLatestRefusesWritesNothing) {
    write_batch first;
    first.records = {make_record("a", 100, 0, 0)};
    first.offsets = {{"t", 0, 1}};
    ASSERT_TRUE(store->write(first).ok());
    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_latest ADD CONSTRAINT no_boom CHECK (key <> 'boom')");

    write_batch batch;
    batch.records = {make_record("a", 200, 0, 1), make_record("boom", 200, 0, 2), make_record("c", 200, 0, 3)};
    batch.offsets = {{"t", 0, 4}};
    auto s = store->write(batch);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("no_boom"), std::string::npos) << s.message();
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 1) << "history kept rows of a failed batch";
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "1"}}));
    EXPECT_EQ(latest(), (it::pg_rows{{"a", "100"}})) << "latest kept rows of a failed batch";

    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_latest DROP CONSTRAINT no_boom");
    s = store->write(batch);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 4);
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "4"}}));
    EXPECT_EQ(latest(), (it::pg_rows{{"a", "200"}, {"boom", "200"}, {"c", "200"}}));
}

// The same when history refuses the batch: latest does not move either.
TEST_P(PostgresStore, ABatchThatHistoryRefusesWritesNothing) {
    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history ADD CONSTRAINT no_boom CHECK (key <> 'boom')");
    write_batch batch;
    batch.records = {make_record("a", 200, 0, 0), make_record("boom", 200, 0, 1)};
    batch.offsets = {{"t", 0, 2}};
    auto s = store->write(batch);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("no_boom"), std::string::npos) << s.message();
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 0);
    EXPECT_EQ(latest(), it::pg_rows{}) << "latest moved for a batch history refused";
    EXPECT_EQ(offsets(), it::pg_rows{});

    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history DROP CONSTRAINT no_boom");
    s = store->write(batch);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 2);
    EXPECT_EQ(latest(), (it::pg_rows{{"a", "200"}, {"boom", "200"}}));
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "2"}}));
}

// Latest ahead of history, as a crash between the two commits leaves it: the batch written
// again adds its history rows and offsets once and leaves latest as it is.
TEST_P(PostgresStore, ABatchWhoseLatestIsAlreadyWrittenAddsOnlyHistory) {
    write_batch batch;
    batch.records = {make_record("a", 200, 0, 0), make_record("a", 300, 0, 1)};
    batch.offsets = {{"t", 0, 2}};
    it::pg_query(server.dsn(),
                "INSERT INTO sluice.s_latest (key, event_time, ingested_at, v, note) "
                "VALUES ('a', to_timestamp(0.3), to_timestamp(0.3), 1, 'already')");
    ASSERT_TRUE(store->write(batch).ok());
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history"), 2);
    EXPECT_EQ(offsets(), (it::pg_rows{{"0", "2"}}));
    EXPECT_EQ(it::pg_query(server.dsn(), "SELECT note FROM sluice.s_latest"), (it::pg_rows{{"already"}}));
}

TEST_P(PostgresStore, PushedRecordsWithoutOffsetsAreAllKept) {
    write_batch batch;
    for (int i = 0; i < 3; ++i) {
        record r = make_record("p", 100 + i, 0, 0);
        r.source = {"http", -1, i};
        batch.records.push_back(r);
    }
    ASSERT_TRUE(store->write(batch).ok());
    ASSERT_TRUE(store->write(batch).ok());  // pushed twice: history has no key to tell them apart
    EXPECT_EQ(count("SELECT count(*) FROM sluice.s_history WHERE key = 'p'"), 6);
    auto latest = store->read_latest(0, "p");
    ASSERT_TRUE(latest.ok());
    ASSERT_TRUE(latest.value().has_value());
    EXPECT_EQ(latest.value()->event_time_ms, 102);
}

// Ends every connection the store holds (they name themselves "sluice"), as a server restart or
// a network cut would; the store notices when it next uses one.
void terminate_store_connections(const std::string& dsn) {
    it::pg_query(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sluice'");
    ASSERT_TRUE(it::wait_until(10s, [&] {
        return it::pg_count(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice'") == 0;
    })) << "the store's connections outlived pg_terminate_backend";
}

// healthy() says whether PostgreSQL answered the store's last statement, whichever read or write
// it was, and a failure keeps its kind: what PostgreSQL refuses (a constraint, a missing table)
// fails the same way again, a lost connection may pass.
TEST_P(PostgresStore, EveryReadRecordsWhetherPostgreSQLAnsweredAndAFailureKeepsItsKind) {
    config one = store_config(server.dsn(), GetParam());
    one.postgres->pool_size = 1;  // every read on the same reader connection
    durable_store_ptr s = make_postgres_store(one);
    ASSERT_TRUE(s->prepare().ok());
    EXPECT_TRUE(s->healthy());
    write_batch first;
    first.records = {make_record("a", 100, 0, 0)};
    first.offsets = {{"t", 0, 1}};
    ASSERT_TRUE(s->write(first).ok());

    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history ADD CONSTRAINT no_boom CHECK (key <> 'boom')");
    write_batch refused;
    refused.records = {make_record("boom", 200, 0, 1)};
    const auto w = s->write(refused);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.kind(), error_kind::permanent) << w.message();
    EXPECT_FALSE(s->healthy()) << "a refused write left the store healthy";
    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history DROP CONSTRAINT no_boom");

    struct read {
        const char* name;
        std::function<status()> run;
    };
    const std::vector<read> reads = {
        {"read_latest", [&] { return s->read_latest(0, "a").as_status(); }},
        {"scan_latest", [&] { return s->scan_latest(0, 0, "", 10).as_status(); }},
        {"read_as_of", [&] { return s->read_as_of(0, "a", 150, 100).as_status(); }},
        {"read_history", [&] { return s->read_history(0, "a", 0, 1000, 10, 0, -1).as_status(); }},
        {"last_update_ms", [&] { return s->last_update_ms().as_status(); }},
        {"read_offsets", [&] { return s->read_offsets("g").as_status(); }},
    };
    for (const auto& r : reads) {
        ASSERT_FALSE(s->healthy()) << "before " << r.name;
        const auto answered = r.run();
        EXPECT_TRUE(answered.ok()) << r.name << ": " << answered.message();
        EXPECT_TRUE(s->healthy()) << r.name << " answered but the store stayed unhealthy";
        terminate_store_connections(server.dsn());
        const auto lost = r.run();
        EXPECT_FALSE(lost.ok()) << r.name << " succeeded on a connection the server had ended";
        EXPECT_EQ(lost.kind(), error_kind::retryable) << r.name << ": " << lost.message();
        EXPECT_FALSE(s->healthy()) << r.name << " failed but the store stayed healthy";
    }

    // History is streamed on a connection of its own: a missing table is refused for good.
    const history_visitor ignore = [](const std::string&, std::int64_t, const std::vector<value>&, std::int32_t) {};
    ASSERT_TRUE(s->for_each_history(0, history_scan{}, ignore).ok());
    EXPECT_TRUE(s->healthy());
    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history RENAME TO s_history_away");
    const auto gone = s->for_each_history(0, history_scan{}, ignore);
    it::pg_query(server.dsn(), "ALTER TABLE sluice.s_history_away RENAME TO s_history");
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.kind(), error_kind::permanent) << gone.message();
    EXPECT_FALSE(s->healthy()) << "a refused history scan left the store healthy";
    // The writer's connection was ended too: its first statement finds out, the next reconnects.
    EXPECT_TRUE(it::wait_until(10s, [&] { return s->ping().ok(); }));
    EXPECT_TRUE(s->healthy());
}

}  // namespace
}  // namespace sluice
