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

#include "integration/support/stack.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_topic = "user-events";
constexpr int k_partitions = 4;
constexpr int k_keys = 1000;
constexpr int k_rounds = 20;  // events per key in the first batch
constexpr const char* k_set = "user_activity";

// Where a message landed.
struct location {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    auto operator<=>(const location&) const = default;
};

// One valid event as the test produced it and as the daemon must serve it.
struct event {
    std::string key;
    std::int64_t ts = 0;
    json values;  // clicks, spend, country ("??" when absent), premium (null when absent)
    std::size_t id = 0;
    location where;
};

// One message the daemon must turn into a dead letter.
struct poison {
    std::string what;
    std::string payload;
    std::size_t id = 0;
    location where;
};

std::string user_key(int k) { return "user-" + std::to_string(k); }

std::string describe(const location& l) { return std::to_string(l.partition) + "/" + std::to_string(l.offset); }

// Produces the test's events and remembers what it sent; owned and used by the test thread.
class event_producer {
public:
    event_producer(it::kafka_cluster& kafka, std::uint64_t seed) : kafka_(kafka), rng_(seed) {}

    // A valid event with random values. `n` varies the shape: some events use an RFC 3339
    // event time, leave out an optional field or carry a field the set does not declare.
    void send(const std::string& key, std::int64_t ts) {
        const std::size_t n = counter_++;
        static const std::vector<std::string> countries{"DE", "FR", "US", "JP", "BR", "IN", "C\xC3\x94"};
        json msg{{"user_id", key}};
        msg["ts"] = n % 13 == 0 ? json(it::rfc3339_ms(ts)) : json(ts);
        event e;
        e.key = key;
        e.ts = ts;
        const std::int64_t clicks = static_cast<std::int64_t>(rng_() % 10000);
        const double spend = static_cast<double>(rng_() % 400000) / 4.0;  // exact in binary
        msg["clicks"] = clicks;
        msg["spend"] = spend;
        e.values["clicks"] = clicks;
        e.values["spend"] = spend;
        if (n % 7 == 3) {
            e.values["country"] = "??";
        } else {
            msg["country"] = e.values["country"] = countries[rng_() % countries.size()];
        }
        if (n % 11 == 5) {
            e.values["premium"] = nullptr;
        } else {
            msg["premium"] = e.values["premium"] = (rng_() & 1) != 0;
        }
        if (n % 17 == 0) msg["referrer"] = json{{"campaign", "spring"}, {"path", json::array({1, 2, 3})}};
        e.id = kafka_.produce(k_topic, key, msg.dump());
        events_.push_back(std::move(e));
    }

    void send_poison(const std::string& what, const std::string& key, const std::string& payload) {
        poison p{what, payload, kafka_.produce(k_topic, key, payload), {}};
        poisons_.push_back(std::move(p));
    }

    // Flushes and records every message's partition and offset from its delivery report.
    void flush() {
        kafka_.flush(60s);
        for (auto& e : events_) {
            auto d = kafka_.delivery_of(e.id);
            e.where = {d.partition, d.offset};
        }
        for (auto& p : poisons_) {
            auto d = kafka_.delivery_of(p.id);
            p.where = {d.partition, d.offset};
        }
    }

    const std::vector<event>& events() const { return events_; }
    const std::vector<poison>& poisons() const { return poisons_; }

    // The newest event of each key (greatest event time).
    std::map<std::string, const event*> newest() const {
        std::map<std::string, const event*> out;
        for (const auto& e : events_) {
            auto& slot = out[e.key];
            if (slot == nullptr || e.ts > slot->ts) slot = &e;
        }
        return out;
    }

private:
    it::kafka_cluster& kafka_;
    std::mt19937_64 rng_;
    std::size_t counter_ = 0;
    std::vector<event> events_;
    std::vector<poison> poisons_;
};

bool same_number(const std::string& text, const json& expected) {
    if (text == it::pg_null) return false;
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    return end != text.c_str() && *end == '\0' && v == expected.get<double>();
}

std::string pg_bool_text(const json& expected) {
    if (expected.is_null()) return it::pg_null;
    return expected.get<bool>() ? "t" : "f";
}

// Mismatches between sluice.user_activity_latest and the newest events (empty: all equal).
std::vector<std::string> latest_mismatches(const std::string& dsn, const std::map<std::string, const event*>& newest) {
    std::vector<std::string> bad;
    it::pg_rows rows;
    try {
        rows = it::pg_query(dsn,
                            "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint, clicks, spend, country, premium "
                            "FROM sluice.user_activity_latest");
    } catch (const std::exception& e) {
        return {e.what()};
    }
    if (rows.size() != newest.size()) {
        bad.push_back("latest has " + std::to_string(rows.size()) + " rows, expected " + std::to_string(newest.size()));
    }
    std::set<std::string> seen;
    for (const auto& r : rows) {
        const std::string& key = r[0];
        seen.insert(key);
        auto it = newest.find(key);
        if (it == newest.end()) {
            bad.push_back("unexpected key in latest: " + key);
            continue;
        }
        const event& e = *it->second;
        const json& v = e.values;
        if (r[1] != std::to_string(e.ts)) bad.push_back(key + ": event_time " + r[1] + " != " + std::to_string(e.ts));
        if (r[2] != std::to_string(v["clicks"].get<std::int64_t>())) bad.push_back(key + ": clicks " + r[2] + " != " + v["clicks"].dump());
        if (!same_number(r[3], v["spend"])) bad.push_back(key + ": spend " + r[3] + " != " + v["spend"].dump());
        if (r[4] != v["country"].get<std::string>()) bad.push_back(key + ": country " + r[4] + " != " + v["country"].dump());
        if (r[5] != pg_bool_text(v["premium"])) bad.push_back(key + ": premium " + r[5] + " != " + v["premium"].dump());
    }
    for (const auto& [key, e] : newest) {
        if (seen.count(key) == 0) bad.push_back("missing from latest: " + key);
    }
    return bad;
}

// Mismatches between the Redis hashes and the newest events (empty: all equal).
std::vector<std::string> redis_mismatches(int port, const std::map<std::string, const event*>& newest) {
    std::vector<std::string> bad;
    try {
        it::redis_client redis(port);
        for (const auto& [key, e] : newest) {
            const std::string hkey = std::string("sluice:") + k_set + ":" + key;
            auto h = redis.hgetall(hkey);
            if (h.empty()) {
                bad.push_back("no hash " + hkey);
                continue;
            }
            if (h["_event_time"] != std::to_string(e->ts)) {
                bad.push_back(hkey + ": _event_time " + h["_event_time"] + " != " + std::to_string(e->ts));
            }
            for (const auto& [field, expected] : e->values.items()) {
                auto f = h.find(field);
                if (f == h.end()) {
                    if (!expected.is_null()) bad.push_back(hkey + ": no field " + field);
                    continue;
                }
                json got = json::parse(f->second, nullptr, false);
                if (got.is_discarded() || got != expected) {
                    bad.push_back(hkey + ": " + field + " = " + f->second + ", expected JSON " + expected.dump());
                }
            }
            long long ttl = redis.ttl(hkey);
            if (ttl <= 0 || ttl > 86400) bad.push_back(hkey + ": TTL " + std::to_string(ttl) + " not in (0, 86400]");
        }
    } catch (const std::exception& ex) {
        bad.push_back(ex.what());
    }
    return bad;
}

// Mismatches between GET /v1/features/user_activity/<key> and the newest event of `key`.
std::vector<std::string> api_mismatches(int http_port, const event& e) {
    std::vector<std::string> bad;
    const std::string target = std::string("/v1/features/") + k_set + "/" + it::url_encode(e.key);
    auto res = it::http_get(http_port, target);
    if (res.status != 200) {
        return {"GET " + target + " -> " + std::to_string(res.status) + " " + res.error + " " + res.body};
    }
    json body = json::parse(res.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return {"GET " + target + ": not a JSON object: " + res.body};
    auto expect_eq = [&](const char* field, const json& expected) {
        if (!body.contains(field) || body[field] != expected) {
            bad.push_back("GET " + target + ": " + field + " = " + (body.contains(field) ? body[field].dump() : "<absent>") +
                          ", expected " + expected.dump());
        }
    };
    expect_eq("feature_set", k_set);
    expect_eq("key", e.key);
    expect_eq("status", "PRESENT");
    expect_eq("event_time", it::rfc3339_ms(e.ts));
    expect_eq("values", e.values);
    return bad;
}

void report(const char* what, const std::vector<std::string>& bad, std::size_t limit = 10) {
    if (bad.empty()) return;
    std::string text = std::string(what) + ": " + std::to_string(bad.size()) + " mismatches, first ones:";
    for (std::size_t i = 0; i < bad.size() && i < limit; ++i) text += "\n  " + bad[i];
    ADD_FAILURE() << text;
}

long long history_count(const std::string& dsn) {
    return it::pg_count(dsn, "SELECT count(*) FROM sluice.user_activity_history");
}

long long dead_letter_count(const std::string& dsn) {
    return it::pg_count(dsn, "SELECT count(*) FROM sluice.dead_letters WHERE src_topic = $1", {k_topic});
}

it::partition_offsets pg_consumer_offsets(const std::string& dsn, const std::string& group) {
    it::partition_offsets out;
    for (const auto& r : it::pg_query(dsn,
                                      "SELECT partition, next_offset FROM sluice.consumer_offsets "
                                      "WHERE group_id = $1 AND topic = $2",
                                      {group, k_topic})) {
        out[std::stoi(r[0])] = std::stoll(r[1]);
    }
    return out;
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

}  // namespace

class Pipeline : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        try {
            stack_ = std::make_unique<it::test_stack>();
            stack_->kafka.create_topic(k_topic, k_partitions);
        } catch (const std::exception& e) {
            setup_error_ = e.what();
            stack_.reset();
        }
    }
    static void TearDownTestSuite() { stack_.reset(); }

    void SetUp() override {
        ASSERT_TRUE(stack_) << "the test stack did not start: " << setup_error_;
        ASSERT_TRUE(std::filesystem::exists(it::sluice_binary())) << it::sluice_binary() << " was not built";
    }

    static inline std::unique_ptr<it::test_stack> stack_;
    static inline std::string setup_error_;
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
    event_producer producer(s.kafka, seed);
    const std::int64_t base = it::now_ms() - 2 * 3600 * 1000;  // recent: well inside the 24 h TTL
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
                producer.send_poison(what, key, payload);
            }
            producer.send(user_key(k), base + i);  // strictly increasing per key
        }
    }
    ASSERT_NO_THROW(producer.flush());
    const double produce_s = it::seconds_since(t0);
    const std::size_t valid = producer.events().size();
    const std::size_t produced = valid + producer.poisons().size();
    std::printf("[pipeline] produced %zu messages (%zu valid, %zu poison) in %.2f s\n", produced, valid,
                producer.poisons().size(), produce_s);

    // ---- drain: wait until history holds every valid message -------------------------------
    long long stored = -1;
    const bool drained = it::wait_until(120s, [&] {
        stored = history_count(dsn);
        return stored >= static_cast<long long>(valid) || !daemon.running();
    }, 250ms);
    const double drain_s = it::seconds_since(t0);
    it::wait_until(30s, [&] {
        return dead_letter_count(dsn) >= static_cast<long long>(producer.poisons().size()) || !daemon.running();
    }, 250ms);
    std::this_thread::sleep_for(500ms);  // anything beyond the expected rows would show up now
    ASSERT_TRUE(daemon.running()) << "the daemon exited while draining";
    stored = history_count(dsn);

    // ---- history: every valid message exactly once, at its partition and offset ------------
    std::map<location, const event*> expected;
    for (const auto& e : producer.events()) expected[e.where] = &e;
    ASSERT_EQ(expected.size(), valid) << "delivery reports gave duplicate offsets";
    const auto rows = it::pg_query(dsn,
                                   "SELECT src_partition, src_offset, key, "
                                   "(extract(epoch FROM event_time) * 1000)::bigint, clicks "
                                   "FROM sluice.user_activity_history WHERE src_topic = $1",
                                   {k_topic});
    std::map<location, int> seen;
    std::vector<std::string> wrong_rows;
    for (const auto& r : rows) {
        location l{std::stoi(r[0]), std::stoll(r[1])};
        ++seen[l];
        auto it = expected.find(l);
        if (it == expected.end()) {
            wrong_rows.push_back("row at " + describe(l) + " was never produced as a valid event (key " + r[2] + ")");
            continue;
        }
        const event& e = *it->second;
        if (r[2] != e.key || r[3] != std::to_string(e.ts) || r[4] != e.values["clicks"].dump()) {
            wrong_rows.push_back("row at " + describe(l) + " is (" + r[2] + ", " + r[3] + ", " + r[4] + "), produced (" +
                                 e.key + ", " + std::to_string(e.ts) + ", " + e.values["clicks"].dump() + ")");
        }
    }
    std::size_t missing = 0;
    for (const auto& [l, e] : expected) missing += seen.count(l) == 0 ? 1 : 0;
    std::size_t duplicates = 0;
    for (const auto& [l, n] : seen) duplicates += static_cast<std::size_t>(n - 1);
    const auto totals = it::pg_query(dsn,
                                     "SELECT count(*), count(DISTINCT (src_topic, src_partition, src_offset)) "
                                     "FROM sluice.user_activity_history");
    std::printf("[pipeline] stored=%lld missing=%zu duplicates=%zu wrong_rows=%zu drained=%s in %.2f s (%.0f msg/s)\n",
                stored, missing, duplicates, wrong_rows.size(), drained ? "yes" : "NO", drain_s,
                static_cast<double>(valid) / drain_s);
    std::fflush(stdout);
    EXPECT_TRUE(drained) << "history did not reach " << valid << " rows within 120 s (has " << stored << ")";
    EXPECT_EQ(totals, (it::pg_rows{{std::to_string(valid), std::to_string(valid)}}));
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicates, 0u);
    report("history rows", wrong_rows);

    // ---- latest in PostgreSQL and Redis: the newest event of every key ---------------------
    const auto newest = producer.newest();
    ASSERT_EQ(newest.size(), static_cast<std::size_t>(k_keys));
    std::vector<std::string> bad;
    it::wait_until(30s, [&] { return (bad = latest_mismatches(dsn, newest)).empty(); }, 500ms);
    report("sluice.user_activity_latest", bad);
    it::wait_until(30s, [&] { return (bad = redis_mismatches(s.redis.port(), newest)).empty(); }, 500ms);
    report("Redis hashes", bad);

    // ---- HTTP: a sample of keys, an unknown key, an unknown set -----------------------------
    bad.clear();
    for (int k = 0; k < k_keys; k += k_keys / 50) {
        auto more = api_mismatches(http_port, *newest.at(user_key(k)));
        bad.insert(bad.end(), more.begin(), more.end());
    }
    report("GET /v1/features", bad);
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
    std::map<location, const poison*> poison_at;
    for (const auto& p : producer.poisons()) poison_at[p.where] = &p;
    const auto dead = it::pg_query(dsn,
                                   "SELECT src_partition, src_offset, error, encode(payload, 'hex') "
                                   "FROM sluice.dead_letters WHERE src_topic = $1",
                                   {k_topic});
    std::set<location> dead_seen;
    for (const auto& r : dead) {
        location l{std::stoi(r[0]), std::stoll(r[1])};
        auto p = poison_at.find(l);
        if (p == poison_at.end()) {
            ADD_FAILURE() << "dead letter at " << describe(l) << " for a valid event: " << r[2];
            continue;
        }
        EXPECT_TRUE(dead_seen.insert(l).second) << "dead letter twice: " << p->second->what;
        EXPECT_FALSE(r[2].empty() || r[2] == it::pg_null) << "no error text for: " << p->second->what;
        if (!p->second->payload.empty()) {
            EXPECT_EQ(r[3], hex(p->second->payload)) << "payload of: " << p->second->what;
        }
        std::printf("[pipeline] dead letter %-24s at %s: %s\n", p->second->what.c_str(), describe(l).c_str(),
                    r[2].c_str());
    }
    for (const auto& p : producer.poisons()) {
        EXPECT_EQ(dead_seen.count(p.where), 1u) << "no dead letter for: " << p.what << " at " << describe(p.where);
        EXPECT_EQ(seen.count(p.where), 0u) << "poison in history: " << p.what;
    }

    // ---- SIGTERM: exit 0, offsets committed up to the end of every partition ----------------
    auto st = daemon.terminate(30s);
    ASSERT_TRUE(st.has_value()) << "no exit within 30 s of SIGTERM";
    EXPECT_TRUE(st->ok()) << st->describe();
    const auto ends = s.kafka.end_offsets(k_topic, k_partitions);
    EXPECT_EQ(s.kafka.committed_offsets(group, k_topic, k_partitions), ends) << "Kafka committed offsets";
    EXPECT_EQ(pg_consumer_offsets(dsn, group), ends) << "sluice.consumer_offsets";

    // ---- restart: nothing consumed twice, new messages consumed exactly once -----------------
    const long long before = history_count(dsn);
    const long long dead_before = dead_letter_count(dsn);
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(http_port, 30s)) << "GET /healthz never answered 200 after the restart";
    ASSERT_TRUE(daemon.wait_http_ready(http_port, 60s, "/readyz")) << "GET /readyz never answered 200 after the restart";
    std::this_thread::sleep_for(3s);  // assigned: anything it would re-consume arrives now
    EXPECT_EQ(history_count(dsn), before) << "history changed after a restart without new messages";
    EXPECT_EQ(dead_letter_count(dsn), dead_before) << "dead letters changed after a restart";

    event_producer more(s.kafka, seed + 1);
    const std::string odd_key = "team/a b";  // URL-encoded in the path
    for (int j = 0; j < 96; ++j) more.send(user_key(j), base + 2'000'000 + j);
    for (int j = 0; j < 4; ++j) more.send(odd_key, base + 2'000'000 + j);
    ASSERT_NO_THROW(more.flush());
    const auto t1 = std::chrono::steady_clock::now();
    long long after = -1;
    it::wait_until(60s, [&] { return (after = history_count(dsn)) >= before + 100 || !daemon.running(); }, 250ms);
    std::this_thread::sleep_for(1s);
    after = history_count(dsn);
    std::printf("[pipeline] restart: history %lld -> %lld (+100 expected) in %.2f s\n", before, after,
                it::seconds_since(t1));
    EXPECT_EQ(after, before + 100);
    std::set<location> fresh;
    for (const auto& e : more.events()) fresh.insert(e.where);
    std::size_t fresh_stored = 0;
    for (const auto& r : it::pg_query(dsn,
                                      "SELECT src_partition, src_offset FROM sluice.user_activity_history "
                                      "WHERE src_topic = $1",
                                      {k_topic})) {
        fresh_stored += fresh.count(location{std::stoi(r[0]), std::stoll(r[1])});
    }
    EXPECT_EQ(fresh_stored, 100u) << "the 100 new messages are not each stored exactly once";

    const auto newest_more = more.newest();
    bad.clear();
    for (const std::string& key : {odd_key, user_key(0), user_key(95)}) {
        auto m = api_mismatches(http_port, *newest_more.at(key));
        bad.insert(bad.end(), m.begin(), m.end());
    }
    report("GET /v1/features after the restart", bad);

    st = daemon.terminate(30s);
    ASSERT_TRUE(st.has_value()) << "no exit within 30 s of SIGTERM (second run)";
    EXPECT_TRUE(st->ok()) << st->describe();
    const auto ends2 = s.kafka.end_offsets(k_topic, k_partitions);
    EXPECT_EQ(s.kafka.committed_offsets(group, k_topic, k_partitions), ends2) << "Kafka committed offsets (second run)";
    EXPECT_EQ(pg_consumer_offsets(dsn, group), ends2) << "sluice.consumer_offsets (second run)";
    std::fflush(stdout);
}
