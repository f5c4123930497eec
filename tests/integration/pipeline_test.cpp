// End to end, from outside the process: JSON events produced to a Kafka-protocol broker (the
// librdkafka mock cluster) go through the real `sluice` daemon into PostgreSQL history and
// latest tables, Redis hashes and the HTTP API; bad events become dead letters; SIGTERM
// commits exactly what is stored; a restart neither loses nor repeats a message.
//
// One real stack (PostgreSQL 15, Redis 7, mock cluster) is started for the suite.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "integration/support/audit.hpp"
#include "integration/support/stream.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_topic = "user-events";
constexpr int k_partitions = 4;
constexpr int k_keys = 1000;
constexpr int k_rounds = 20;  // events per key in the first batch
constexpr const char* k_set = "user_activity";
constexpr const char* k_schema = it::default_schema;

// Besides the usual shapes (an RFC 3339 event time, a left-out optional field), some events
// carry a non-ASCII country or a field the set does not declare.
constexpr it::message_variety k_variety{.non_ascii_country = true, .undeclared_field = true};

// One message the daemon must turn into a dead letter.
struct poison {
    std::string what;
    std::string payload;
    std::size_t id = 0;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    it::location where() const { return {partition, offset}; }
};

}  // namespace

class Pipeline : public it::stack_suite<Pipeline> {
public:
    static std::vector<it::topic_spec> topics() { return {{k_topic, k_partitions}}; }
};

TEST_F(Pipeline, kafka_events_reach_postgres_redis_and_http_exactly_once) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string group = "it-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::uint64_t seed = std::random_device{}();
    std::printf("[pipeline] group=%s seed=%llu bootstraps=%s http=%d pg=%d redis=%d\n", group.c_str(),
                static_cast<unsigned long long>(seed), s.kafka.bootstraps().c_str(), http_port, s.postgres.port(),
                s.redis.port());

    it::daemon_process daemon(it::user_activity_config(s, group, http_port, k_topic));
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(http_port, 30s)) << "GET /healthz never answered 200";
    EXPECT_TRUE(daemon.wait_http_ready(http_port, 60s, "/readyz")) << "GET /readyz never answered 200";

    // ---- produce: k_rounds events for each of k_keys keys, poison messages mixed in --------
    const std::int64_t base = it::now_ms() - 2 * 3600 * 1000;  // recent: well inside the 24 h TTL
    it::event_stream producer(s.kafka, k_topic, k_keys, seed, base, k_variety);
    std::vector<poison> sent_poisons;
    const std::int64_t newer = base + 1'000'000;  // newer than every first-batch event
    const std::vector<std::tuple<int, std::string, std::string, std::string>> poisons{
        {1500, "malformed JSON", "user-1", R"({"user_id": "user-1", "ts": )" + std::to_string(newer)},
        {5000, "missing key field", "user-2", json{{"ts", newer}, {"clicks", 1}}.dump()},
        {7777, "clicks is not an int", "user-3", json{{"user_id", "user-3"}, {"ts", newer}, {"clicks", "abc"}}.dump()},
        {9999, "spend below min 0", "user-4",
         json{{"user_id", "user-4"}, {"ts", newer}, {"clicks", 3}, {"spend", -1}}.dump()},
        {12345, "empty value", "user-5", ""},
        {15000, "missing required clicks", "user-6", json{{"user_id", "user-6"}, {"ts", newer}, {"spend", 1.5}}.dump()},
        {17500, "missing event time", "user-7", json{{"user_id", "user-7"}, {"clicks", 1}}.dump()},
        {19999, "not a JSON object", "user-8", "[1,2,3]"},
    };
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t next_poison = 0;
    for (int r = 0; r < k_rounds; ++r) {
        for (int k = 0; k < k_keys; ++k) {
            const int i = r * k_keys + k;
            while (next_poison < poisons.size() && std::get<0>(poisons[next_poison]) == i) {
                const auto& [at, what, key, payload] = poisons[next_poison++];
                sent_poisons.push_back({what, payload, s.kafka.produce(k_topic, key, payload)});
            }
            producer.send(k);  // event time base + i: strictly increasing per key
        }
    }
    ASSERT_NO_THROW({
        producer.flush();
        it::record_deliveries(s.kafka, sent_poisons);
    });
    const double produce_s = it::seconds_since(t0);
    const std::size_t valid = producer.size();
    const std::size_t produced = valid + sent_poisons.size();
    std::printf("[pipeline] produced %zu messages (%zu valid, %zu poison) in %.2f s\n", produced, valid,
                sent_poisons.size(), produce_s);

    // ---- drain: wait until history holds every valid message -------------------------------
    long long stored = it::wait_history(dsn, k_schema, k_topic, static_cast<long long>(valid), 120s, &daemon);
    const bool drained = stored >= static_cast<long long>(valid) || !daemon.running();
    const double drain_s = it::seconds_since(t0);
    it::wait_dead_letters(dsn, k_schema, k_topic, static_cast<long long>(sent_poisons.size()), 30s, &daemon);
    std::this_thread::sleep_for(500ms);  // anything beyond the expected rows would show up now
    ASSERT_TRUE(daemon.running()) << "the daemon exited while draining";
    stored = it::history_rows(dsn, k_schema, k_topic);

    // ---- history: every valid message exactly once, at its partition and offset ------------
    const it::history_check h = it::check_history(dsn, k_schema, k_topic, producer.events());
    ASSERT_EQ(h.error, "") << "history could not be checked";
    std::printf("[pipeline] stored=%lld missing=%zu duplicates=%zu wrong_rows=%zu drained=%s in %.2f s (%.0f msg/s)\n",
                stored, h.missing, h.duplicates, h.unexpected + h.wrong, drained ? "yes" : "NO", drain_s,
                static_cast<double>(valid) / drain_s);
    std::fflush(stdout);
    EXPECT_TRUE(drained) << "history did not reach " << valid << " rows within 120 s (has " << stored << ")";
    it::expect_each_event_once(h);  // valid rows, all distinct; nothing missing, doubled or wrong

    // ---- latest in PostgreSQL and Redis: the newest event of every key ---------------------
    const auto newest = producer.newest();
    ASSERT_EQ(newest.size(), static_cast<std::size_t>(k_keys));
    std::vector<std::string> bad = it::wait_latest(dsn, k_schema, newest, it::latest_scope::whole_table, 30s);
    it::report_mismatches("sluice.user_activity_latest", bad);
    it::wait_until(30s, [&] {
        return (bad = it::redis_mismatches(s.redis.port(), it::default_key_prefix, newest, std::chrono::hours(24)))
            .empty();
    }, 500ms);
    it::report_mismatches("Redis hashes", bad);

    // ---- HTTP: a sample of keys, an unknown key, an unknown set -----------------------------
    bad.clear();
    for (int k = 0; k < k_keys; k += k_keys / 50) {
        auto more = it::api_mismatches(http_port, *newest.at(it::stream_key(k)));
        bad.insert(bad.end(), more.begin(), more.end());
    }
    it::report_mismatches("GET /v1/features", bad);
    for (const std::string& target : {std::string("/v1/features/") + k_set + "/" + it::url_encode("no/such key"),
                                     std::string("/v1/features/no_such_set/user-1")}) {
        auto res = it::http_get(http_port, target);
        EXPECT_EQ(res.status, 404) << "GET " << target << ": " << res.error << res.body;
        json err = json::parse(res.body, nullptr, false);
        EXPECT_TRUE(!err.is_discarded() && err.contains("error") && err["error"].contains("code") &&
                    err["error"]["code"].is_string() && err["error"].contains("message"))
            << "GET " << target << " error body: " << res.body;
    }

    // ---- dead letters: each poison message once, with its offset and a reason ---------------
    std::map<it::location, const poison*> poison_at;
    for (const auto& p : sent_poisons) poison_at[p.where()] = &p;
    const auto dead = it::pg_query(dsn,
                                   "SELECT src_partition, src_offset, error, encode(payload, 'hex') "
                                   "FROM sluice.dead_letters WHERE src_topic = $1",
                                   {k_topic});
    std::set<it::location> dead_seen;
    for (const auto& r : dead) {
        const it::location l{std::stoi(r[0]), std::stoll(r[1])};
        auto p = poison_at.find(l);
        if (p == poison_at.end()) {
            ADD_FAILURE() << "dead letter at " << it::describe(l) << " for a valid event: " << r[2];
            continue;
        }
        EXPECT_TRUE(dead_seen.insert(l).second) << "dead letter twice: " << p->second->what;
        EXPECT_FALSE(r[2].empty() || r[2] == it::pg_null) << "no error text for: " << p->second->what;
        if (!p->second->payload.empty()) {
            EXPECT_EQ(r[3], it::hex(p->second->payload)) << "payload of: " << p->second->what;
        }
        std::printf("[pipeline] dead letter %-24s at %s: %s\n", p->second->what.c_str(), it::describe(l).c_str(),
                    r[2].c_str());
    }
    for (const auto& p : sent_poisons) {
        EXPECT_EQ(dead_seen.count(p.where()), 1u)
            << "no dead letter for: " << p.what << " at " << it::describe(p.where());
        EXPECT_EQ(h.stored_at.count(p.where()), 0u) << "poison in history: " << p.what;
    }

    // ---- SIGTERM: exit 0, offsets committed up to the end of every partition ----------------
    auto st = daemon.terminate(30s);
    ASSERT_TRUE(st.has_value()) << "no exit within 30 s of SIGTERM";
    EXPECT_TRUE(st->ok()) << st->describe();
    it::expect_offsets_at_end(s.kafka, dsn, k_schema, group, k_topic, k_partitions);

    // ---- restart: nothing consumed twice, new messages consumed exactly once -----------------
    const long long before = it::history_rows(dsn, k_schema, k_topic);
    const long long dead_before = it::dead_letter_rows(dsn, k_schema, k_topic);
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(http_port, 30s)) << "GET /healthz never answered 200 after the restart";
    ASSERT_TRUE(daemon.wait_http_ready(http_port, 60s, "/readyz")) << "GET /readyz never answered 200 after the restart";
    std::this_thread::sleep_for(3s);  // assigned: anything it would re-consume arrives now
    EXPECT_EQ(it::history_rows(dsn, k_schema, k_topic), before)
        << "history changed after a restart without new messages";
    EXPECT_EQ(it::dead_letter_rows(dsn, k_schema, k_topic), dead_before) << "dead letters changed after a restart";

    it::event_stream more(s.kafka, k_topic, k_keys, seed + 1, base + 2'000'000, k_variety);
    const std::string odd_key = "team/a b";  // URL-encoded in the path
    for (int j = 0; j < 96; ++j) more.send(j);  // event time base + 2'000'000 + j
    for (int j = 0; j < 4; ++j) more.send(odd_key, base + 2'000'000 + j);
    ASSERT_NO_THROW(more.flush());
    const auto t1 = std::chrono::steady_clock::now();
    it::wait_history(dsn, k_schema, k_topic, before + 100, 60s, &daemon);
    std::this_thread::sleep_for(1s);
    const long long after = it::history_rows(dsn, k_schema, k_topic);
    std::printf("[pipeline] restart: history %lld -> %lld (+100 expected) in %.2f s\n", before, after,
                it::seconds_since(t1));
    EXPECT_EQ(after, before + 100);
    std::set<it::location> fresh;
    for (const auto& e : more.events()) fresh.insert({e.partition, e.offset});
    std::size_t fresh_stored = 0;
    for (const auto& r : it::pg_query(dsn,
                                      std::string("SELECT src_partition, src_offset FROM ") + k_schema +
                                          ".user_activity_history WHERE src_topic = $1",
                                      {k_topic})) {
        fresh_stored += fresh.count(it::location{std::stoi(r[0]), std::stoll(r[1])});
    }
    EXPECT_EQ(fresh_stored, 100u) << "the 100 new messages are not each stored exactly once";

    const auto newest_more = more.newest();
    bad.clear();
    for (const std::string& key : {odd_key, it::stream_key(0), it::stream_key(95)}) {
        auto m = it::api_mismatches(http_port, *newest_more.at(key));
        bad.insert(bad.end(), m.begin(), m.end());
    }
    it::report_mismatches("GET /v1/features after the restart", bad);

    st = daemon.terminate(30s);
    ASSERT_TRUE(st.has_value()) << "no exit within 30 s of SIGTERM (second run)";
    EXPECT_TRUE(st->ok()) << st->describe();
    it::expect_offsets_at_end(s.kafka, dsn, k_schema, group, k_topic, k_partitions, " (second run)");
    std::fflush(stdout);
}
