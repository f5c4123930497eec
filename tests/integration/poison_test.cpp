// Poison input, late and duplicate events (README, "Guarantees and faults"): bad messages
// mixed into a valid stream each become exactly one dead letter with a reason a person can act
// on (and, with kafka.dead_letter_topic set, one message on that topic that names the error and
// the source); the valid stream arrives complete; an event older than the stored latest never
// replaces it in PostgreSQL, Redis or the API; a re-delivered message changes nothing in latest.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/audit.hpp"
#include "integration/support/faults.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int k_partitions = 4;
constexpr const char* k_dlq_topic = "user-events-dlq";
constexpr int k_max_message_bytes = 4096;
constexpr int k_clicks_max = 1000000;
constexpr const char* k_schema = it::default_schema;

// user_activity with a small message limit and an upper bound on clicks (for "above max").
json poison_config(const it::test_stack& s, const std::string& group, int http_port, const std::string& topic,
                   const std::string& dlq = "") {
    json c = it::user_activity_config(s, group, http_port, topic);
    c["kafka"]["max_message_bytes"] = k_max_message_bytes;
    if (!dlq.empty()) c["kafka"]["dead_letter_topic"] = dlq;
    c["feature_sets"][0]["fields"]["clicks"]["max"] = k_clicks_max;
    return c;
}

// One message that must become a dead letter.
struct poison {
    std::string what;
    std::optional<std::string> payload;  // nullopt: a tombstone (Kafka null value)
    std::vector<std::string> cause;      // the error must mention one of these (lower case)
    std::size_t id = 0;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
};

std::vector<poison> poison_set(const std::string& p, std::int64_t ts) {
    const std::string t = std::to_string(ts);
    std::string big = json{{"user_id", p + "big"}, {"ts", ts}, {"clicks", 1}, {"pad", std::string(10 * 1024, 'x')}}.dump();
    return {
        {"malformed JSON", R"({"user_id": ")" + p + R"(1", "ts": )" + t + R"(, "clicks": )", {"json", "parse"}},
        {"missing key", json{{"ts", ts}, {"clicks", 1}}.dump(), {"user_id"}},
        {"key is an object", json{{"user_id", json::object()}, {"ts", ts}, {"clicks", 1}}.dump(), {"user_id"}},
        {"missing event time", json{{"user_id", p + "3"}, {"clicks", 1}}.dump(), {"'ts'", "ts "}},
        {"event time is a bool", json{{"user_id", p + "4"}, {"ts", true}, {"clicks", 1}}.dump(), {"'ts'", "ts "}},
        {"clicks is a word", json{{"user_id", p + "5"}, {"ts", ts}, {"clicks", "abc"}}.dump(), {"clicks"}},
        {"premium is not a bool", json{{"user_id", p + "6"}, {"ts", ts}, {"clicks", 1}, {"premium", "maybe"}}.dump(),
         {"premium"}},
        {"missing required clicks", json{{"user_id", p + "7"}, {"ts", ts}, {"spend", 1.5}}.dump(), {"clicks"}},
        {"spend below min 0", json{{"user_id", p + "8"}, {"ts", ts}, {"clicks", 1}, {"spend", -0.5}}.dump(),
         {"spend"}},
        {"clicks above max", json{{"user_id", p + "9"}, {"ts", ts}, {"clicks", 5 * k_clicks_max}}.dump(), {"clicks"}},
        {"invalid UTF-8",
         R"({"user_id": ")" + p + R"(10", "ts": )" + t + R"(, "clicks": 1, "country": ")" + std::string("\xff\xfe") +
             R"("})",
         {"utf-8", "utf8"}},
        {"NUL escape in a string", R"({"user_id": ")" + p + R"(11", "ts": )" + t +
                                       R"(, "clicks": 1, "country": "a\u0000b"})",
         {"country"}},
        {"NUL escape in the key", R"({"user_id": ")" + p + R"(1\u00002", "ts": )" + t + R"(, "clicks": 1})",
         {"user_id"}},
        {"over max_message_bytes", big, {"max_message_bytes", "bytes"}},
        {"empty value", std::string(), {"empty"}},
        {"tombstone", std::nullopt, {"tombstone", "null"}},
        {"JSON array", std::string("[1,2,3]"), {"object"}},
        {"number overflow 1e400",
         R"({"user_id": ")" + p + R"(13", "ts": )" + t + R"(, "clicks": 1, "spend": 1e400})",
         {"1e400", "overflow", "spend"}},
    };
}

bool mentions_any(const std::string& error, const std::vector<std::string>& needles) {
    const std::string e = it::lower(error);
    for (const auto& n : needles) {
        if (e.find(n) != std::string::npos) return true;
    }
    return false;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " | ") + s;
    return out;
}

// Produces the poison set with `valid_between` valid events before each poison message (and
// after the last one); returns nothing, fills producer.events() and poisons' locations.
void produce_mixed(it::kafka_cluster& kafka, it::paced_producer& valid, const std::string& topic,
                   std::vector<poison>& poisons, int valid_between) {
    for (auto& p : poisons) {
        valid.send_now(valid_between);
        p.id = kafka.produce(topic, "poison-key", p.payload);
    }
    valid.send_now(valid_between);
    valid.flush(60s);
    it::record_deliveries(kafka, poisons);
}

}  // namespace

class Poison : public it::stack_suite<Poison> {
public:
    static std::vector<it::topic_spec> topics() {
        return {{"poison", k_partitions}, {"poison-late", k_partitions}, {"poison-dlq", k_partitions},
                {k_dlq_topic, k_partitions}};
    }
};

TEST_F(Poison, each_poison_message_is_one_dead_letter_and_the_valid_stream_is_complete) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "poison";
    const std::string group = "it-poison-" + it::random_suffix();
    const int http_port = it::free_port();
    const auto test_t0 = std::chrono::steady_clock::now();

    it::daemon_process daemon(poison_config(s, group, http_port, topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    const std::int64_t base = it::now_ms() - 3600 * 1000;
    it::paced_producer valid(s.kafka, topic, "pv-", 200, 0, base);
    auto poisons = poison_set("pp-", base + 500'000);
    ASSERT_NO_THROW(produce_mixed(s.kafka, valid, topic, poisons, 150));
    const auto total = static_cast<long long>(valid.events().size());
    std::printf("[poison] produced %lld valid and %zu poison messages\n", total, poisons.size());

    it::wait_history(dsn, k_schema, topic, total, 90s);
    it::wait_dead_letters(dsn, k_schema, topic, static_cast<long long>(poisons.size()), 30s);
    std::this_thread::sleep_for(1s);
    ASSERT_TRUE(daemon.running()) << "the daemon exited on poison input";
    const auto audit = it::check_history(dsn, k_schema, topic, valid.events());
    it::print_history_check("poison", audit);
    EXPECT_EQ(audit.error, "");
    EXPECT_EQ(audit.missing, 0u);
    EXPECT_EQ(audit.duplicates, 0u);
    EXPECT_EQ(audit.unexpected, 0u) << "a poison message (or something else) reached history";
    EXPECT_EQ(audit.wrong, 0u);

    // ---- dead letters: one per poison message, at its offset, with an actionable reason ------
    std::map<std::pair<std::int32_t, std::int64_t>, const poison*> at;
    for (const auto& p : poisons) at[{p.partition, p.offset}] = &p;
    it::pg_rows rows;
    ASSERT_NO_THROW(rows = it::pg_query(dsn,
                                        "SELECT src_partition, src_offset, error, encode(payload, 'hex'), feature_set "
                                        "FROM sluice.dead_letters WHERE src_topic = $1",
                                        {topic}));
    std::map<const poison*, int> found;
    for (const auto& r : rows) {
        const std::pair<std::int32_t, std::int64_t> where{std::stoi(r[0]), std::stoll(r[1])};
        auto p = at.find(where);
        if (p == at.end()) {
            ADD_FAILURE() << "dead letter at " << r[0] << "/" << r[1] << " for a message that was not poison: " << r[2];
            continue;
        }
        const poison& ps = *p->second;
        ++found[&ps];
        const bool actionable = mentions_any(r[2], ps.cause);
        std::printf("[poison] %-24s %s/%s %s: %s\n", ps.what.c_str(), r[0].c_str(), r[1].c_str(),
                    actionable ? "ok " : "VAGUE", r[2].c_str());
        EXPECT_TRUE(actionable) << ps.what << ": the error does not mention any of [" << join(ps.cause)
                                << "]: " << r[2];
        EXPECT_EQ(r[4], "user_activity") << ps.what << ": feature_set";
        if (ps.payload && !ps.payload->empty()) {
            EXPECT_EQ(r[3], it::hex(*ps.payload)) << ps.what << ": the dead letter does not keep the original payload";
        }
    }
    std::size_t missing_dead = 0, doubled_dead = 0;
    for (const auto& p : poisons) {
        const int n = found.count(&p) ? found[&p] : 0;
        if (n == 0) ++missing_dead;
        if (n > 1) doubled_dead += static_cast<std::size_t>(n - 1);
        EXPECT_EQ(n, 1) << p.what << " at " << p.partition << "/" << p.offset << " has " << n << " dead letters";
    }
    std::printf("[poison] dead letters: expected %zu, rows %zu, missing %zu, duplicates %zu\n", poisons.size(),
                rows.size(), missing_dead, doubled_dead);

    // Nothing from a poison key reached latest.
    EXPECT_EQ(it::pg_count(dsn, "SELECT count(*) FROM sluice.user_activity_latest WHERE starts_with(key, 'pp-')"), 0);
    EXPECT_EQ(it::pg_count(dsn, "SELECT count(*) FROM sluice.user_activity_history WHERE starts_with(key, 'pp-')"), 0);
    const auto bad = it::settled_latest(dsn, valid);
    for (const auto& b : bad) ADD_FAILURE() << "latest: " << b;

    it::finish_test(daemon, "poison", test_t0);
}

namespace {

it::stream_event make_event(const std::string& key, std::int64_t ts, std::int64_t clicks, double spend) {
    it::stream_event e;
    e.key = key;
    e.ts = ts;
    e.clicks = clicks;
    e.spend = spend;
    return e;
}

struct latest_row {
    std::string event_time, clicks, spend, ingested_at, updated_at;
};

std::map<std::string, latest_row> latest_rows(const std::string& dsn, const std::string& prefix) {
    std::map<std::string, latest_row> out;
    for (const auto& r : it::pg_query(dsn,
                                      "SELECT key, (extract(epoch FROM event_time) * 1000)::bigint, clicks, spend, "
                                      "ingested_at::text, updated_at::text FROM sluice.user_activity_latest "
                                      "WHERE starts_with(key, $1)",
                                      {prefix})) {
        out[r[0]] = {r[1], r[2], r[3], r[4], r[5]};
    }
    return out;
}

}  // namespace

TEST_F(Poison, late_and_duplicate_events_never_replace_the_newer_latest) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "poison-late";
    const std::string group = "it-late-" + it::random_suffix();
    const int http_port = it::free_port();
    const int keys = 10;
    const auto test_t0 = std::chrono::steady_clock::now();

    it::daemon_process daemon(poison_config(s, group, http_port, topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    const std::int64_t t = it::now_ms() - 3600 * 1000;
    std::vector<it::stream_event> sent;
    auto send = [&](it::stream_event e) {
        e.id = s.kafka.produce(topic, e.key, it::event_message(e).dump());
        sent.push_back(std::move(e));
    };
    auto resolve = [&] {
        s.kafka.flush(60s);
        it::record_deliveries(s.kafka, sent);
    };
    std::vector<it::stream_event> newer;  // what latest must hold at the end: late-a<i> at [i], then late-b<i>
    auto newest = [&] { return it::newest_events(newer); };

    // ---- 1. the newer events, stored first ------------------------------------------------------
    for (int i = 0; i < keys; ++i) {
        auto e = make_event("late-a" + std::to_string(i), t + 10'000, 100 + i, 1.25);
        newer.push_back(e);
        send(e);
    }
    ASSERT_NO_THROW(resolve());
    ASSERT_GE(it::wait_history(dsn, k_schema, topic, keys, 60s), keys);
    std::vector<std::string> bad =
        it::wait_latest(dsn, k_schema, newest(), it::latest_scope::produced_keys, 20s, 250ms);
    ASSERT_TRUE(bad.empty()) << "latest did not take the first events: " << join(bad);
    std::this_thread::sleep_for(500ms);
    const auto before = latest_rows(dsn, "late-a");

    // ---- 2. late events (older event time, other values) and exact re-sends ---------------------
    for (int i = 0; i < keys; ++i) {
        send(make_event("late-a" + std::to_string(i), t + 5'000, 900'000 + i, 7.5));  // late
        send(newer[static_cast<std::size_t>(i)]);                                    // the same content again
    }
    // ---- 3. newer then older of new keys back to back (likely in one batch) ---------------------
    for (int i = 0; i < keys; ++i) {
        auto e = make_event("late-b" + std::to_string(i), t + 20'000, 200 + i, 2.5);
        newer.push_back(e);
        send(e);
        send(make_event(e.key, t + 15'000, 800'000 + i, 9.75));
    }
    ASSERT_NO_THROW(resolve());
    const auto total = static_cast<long long>(sent.size());
    it::wait_history(dsn, k_schema, topic, total, 60s);
    std::this_thread::sleep_for(2s);  // the last batch reaches Redis and memory too
    const auto audit = it::check_history(dsn, k_schema, topic, sent);
    it::print_history_check("late", audit);
    EXPECT_EQ(audit.error, "");
    EXPECT_EQ(audit.missing, 0u) << "every late and re-sent event belongs in history";
    EXPECT_EQ(audit.duplicates, 0u);
    EXPECT_EQ(audit.unexpected + audit.wrong, 0u);

    // PostgreSQL latest: the newer event of every key, values untouched by the late/duplicate ones.
    bad = it::latest_mismatches(dsn, k_schema, newest(), it::latest_scope::produced_keys);
    for (const auto& b : bad) ADD_FAILURE() << "PostgreSQL latest: " << b;
    const auto after = latest_rows(dsn, "late-a");
    int ingested_changed = 0, updated_changed = 0;
    for (const auto& [key, row] : before) {
        auto a = after.find(key);
        if (a == after.end()) {
            ADD_FAILURE() << key << " vanished from latest";
            continue;
        }
        EXPECT_EQ(a->second.event_time, row.event_time) << key;
        EXPECT_EQ(a->second.clicks, row.clicks) << key;
        EXPECT_EQ(a->second.spend, row.spend) << key;
        ingested_changed += a->second.ingested_at != row.ingested_at ? 1 : 0;
        updated_changed += a->second.updated_at != row.updated_at ? 1 : 0;
    }
    // Informational: the re-sent identical event ties on event time; the daemon replaces ties
    // (same values), which moves ingested_at/updated_at but no feature value.
    std::printf("[late] after the re-sends: %d/%d latest rows have a new ingested_at, %d a new updated_at "
                "(values and event times unchanged)\n",
                ingested_changed, keys, updated_changed);

    // Redis and the API (memory first) hold the newer event too.
    bad = it::redis_mismatches(s.redis.port(), it::default_key_prefix, newest());
    for (const auto& b : bad) ADD_FAILURE() << "Redis: " << b;
    int api_ok = 0;
    for (const auto& [k, ep] : newest()) {
        const it::stream_event& e = *ep;
        auto f = it::read_feature(http_port, k);
        const bool ok = f.status == 200 && f.event_time_ms == e.ts && f.clicks == e.clicks;
        api_ok += ok ? 1 : 0;
        EXPECT_TRUE(ok) << "GET " << k << ": " << f.status << " event_time " << f.event_time_ms << " clicks " << f.clicks
                        << ", expected " << e.ts << " / " << e.clicks << " " << f.body;
    }
    std::printf("[late] %zu events (%d late, %d re-sent), %zu keys: API answered the newer event for %d\n", sent.size(),
                2 * keys, keys, newest().size(), api_ok);

    it::finish_test(daemon, "late", test_t0);
}

namespace {

// What a DLQ message says about its source and error, from headers ("...topic", "...partition",
// "...offset", "...error") or, failing that, from a JSON value with such keys.
struct dlq_view {
    std::string topic, error;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::optional<std::string> payload;  // the original bytes as carried
};

dlq_view view_of(const it::consumed_message& m) {
    dlq_view v;
    v.payload = m.value;
    auto take = [&](const std::string& name, const std::string& value) {
        const std::string n = it::lower(name);
        try {
            if (n.find("error") != std::string::npos || n.find("reason") != std::string::npos) {
                if (v.error.empty()) v.error = value;
            } else if (n.find("partition") != std::string::npos) {
                v.partition = std::stoi(value);
            } else if (n.find("offset") != std::string::npos) {
                v.offset = std::stoll(value);
            } else if (n.find("topic") != std::string::npos) {
                v.topic = value;
            }
        } catch (const std::exception&) {
        }
    };
    for (const auto& [name, value] : m.headers) take(name, value);
    if ((v.offset < 0 || v.error.empty()) && m.value) {
        json body = json::parse(*m.value, nullptr, false);
        if (!body.is_discarded() && body.is_object()) {
            for (const auto& [name, value] : body.items()) {
                if (it::lower(name) == "payload" && value.is_string()) {
                    v.payload = value.get<std::string>();
                } else {
                    take(name, value.is_string() ? value.get<std::string>() : value.dump());
                }
            }
        }
    }
    return v;
}

}  // namespace

TEST_F(Poison, dead_letters_are_also_produced_to_the_dead_letter_topic) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "poison-dlq";
    const std::string group = "it-dlq-" + it::random_suffix();
    const int http_port = it::free_port();
    const auto test_t0 = std::chrono::steady_clock::now();

    it::daemon_process daemon(poison_config(s, group, http_port, topic, k_dlq_topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    const std::int64_t base = it::now_ms() - 3600 * 1000;
    it::paced_producer valid(s.kafka, topic, "dv-", 50, 0, base);
    auto poisons = poison_set("dp-", base + 500'000);
    ASSERT_NO_THROW(produce_mixed(s.kafka, valid, topic, poisons, 20));
    const auto total = static_cast<long long>(valid.events().size());
    it::wait_history(dsn, k_schema, topic, total, 60s);
    it::wait_dead_letters(dsn, k_schema, topic, static_cast<long long>(poisons.size()), 30s);
    const auto audit = it::check_history(dsn, k_schema, topic, valid.events());
    it::print_history_check("dlq", audit);
    EXPECT_EQ(audit.missing, 0u);
    EXPECT_EQ(audit.duplicates, 0u);
    EXPECT_EQ(audit.unexpected, 0u);
    EXPECT_EQ(it::dead_letter_rows(dsn, k_schema, topic), static_cast<long long>(poisons.size()));

    // Read the DLQ back; wait a little beyond the expected count to see any duplicate.
    std::vector<it::consumed_message> got;
    ASSERT_NO_THROW(got = it::consume_topic(s.kafka.bootstraps(), k_dlq_topic, k_partitions, poisons.size(), 30s, 2s));
    std::map<std::pair<std::int32_t, std::int64_t>, const poison*> at;
    for (const auto& p : poisons) at[{p.partition, p.offset}] = &p;
    std::map<const poison*, int> found;
    int unidentified = 0;
    for (const auto& m : got) {
        const dlq_view v = view_of(m);
        auto p = at.find({v.partition, v.offset});
        if (v.topic != topic || p == at.end()) {
            ++unidentified;
            std::string hdrs;
            for (const auto& [n, val] : m.headers) hdrs += " " + n + "=" + val.substr(0, 80);
            ADD_FAILURE() << "DLQ message " << m.partition << "/" << m.offset
                          << " does not identify a poison message of " << topic << " (topic '" << v.topic
                          << "', partition " << v.partition << ", offset " << v.offset << "); headers:" << hdrs
                          << "; value: " << (m.value ? m.value->substr(0, 200) : std::string("<null>"));
            continue;
        }
        const poison& ps = *p->second;
        ++found[&ps];
        EXPECT_TRUE(mentions_any(v.error, ps.cause))
            << ps.what << ": DLQ error does not mention any of [" << join(ps.cause) << "]: '" << v.error << "'";
        if (ps.payload && !ps.payload->empty()) {
            EXPECT_EQ(v.payload, ps.payload) << ps.what << ": the DLQ message does not carry the original payload";
        } else {
            EXPECT_TRUE(!v.payload || v.payload->empty()) << ps.what << ": DLQ payload should be empty or null";
        }
        const std::string carried = !m.value ? std::string("null value")
                                             : std::to_string(m.value->size()) + " bytes";
        std::printf("[dlq] %-24s -> %s %d/%lld (%s) error: %s\n", ps.what.c_str(), k_dlq_topic, m.partition,
                    static_cast<long long>(m.offset), carried.c_str(), v.error.c_str());
    }
    std::size_t missing = 0, duplicates = 0;
    for (const auto& p : poisons) {
        const int n = found.count(&p) ? found[&p] : 0;
        missing += n == 0 ? 1 : 0;
        duplicates += n > 1 ? static_cast<std::size_t>(n - 1) : 0;
    }
    std::printf("[dlq] dead letters %zu, DLQ messages %zu: missing %zu, duplicates %zu, unidentified %d\n",
                poisons.size(), got.size(), missing, duplicates, unidentified);
    EXPECT_EQ(missing, 0u) << "poison messages without a DLQ message";
    EXPECT_EQ(duplicates, 0u) << "poison messages with more than one DLQ message";

    it::finish_test(daemon, "dlq", test_t0);
}
