// Live reload and the activity log, against the real binary, PostgreSQL, Redis and the Kafka
// protocol: SIGHUP and POST /v1/admin/reload apply keys, rate limits and feature set settings
// without closing a connection, rebalancing or losing a record; a typo or a breaking change
// changes nothing and says why; every admin call, reload, push and auth failure is a row of the
// append-only activity log, which survives PostgreSQL being away and stays small under a flood
// of bad keys.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "integration/support/audit.hpp"
#include "integration/support/faults.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// SHA-256 of "read-key" and "other-key" (the keys of http_abuse_test), and of "admin-key".
constexpr const char* read_key_sha256 = "8578df6c579d44d3bf7caeada69ed9cbca30b318a50a0e60216b46760edf5477";
constexpr const char* other_key_sha256 = "580843d03d2216ff1a275d0991bad66e4d1af871171d929e9de604b7959f9bca";
constexpr const char* admin_key_sha256 = "69a5265506c94c77b787a7d7377b7685a0eff82e33920a71e7ee22cd6154953e";

const it::http_headers admin = {{"X-API-Key", "admin-key"}};

std::string new_topic(it::test_stack& s) {
    const std::string topic = "reload-events-" + it::random_suffix();
    s.kafka.create_topic(topic, 2);
    return topic;
}

// The README's set on a schema and Redis prefix of the test's own, with an admin and a read key.
json config_for(it::test_stack& s, const std::string& topic, const std::string& schema, int http_port) {
    json cfg = it::user_activity_config(s, "reload-" + it::random_suffix(), http_port, topic);
    cfg["postgres"]["schema"] = schema;
    cfg["redis"]["key_prefix"] = schema;
    cfg["http"]["auth"]["api_keys"] = json::array(
        {{{"name", "ops"}, {"sha256", admin_key_sha256}, {"scopes", {"admin", "read", "write"}}},
         {{"name", "reader"}, {"sha256", read_key_sha256}, {"scopes", {"read"}}}});
    return cfg;
}

void rewrite(it::daemon_process& d, const json& cfg) { it::write_file(d.config_path(), cfg.dump(2)); }

json body_of(const it::http_response& r) {
    return json::parse(r.body, nullptr, /*allow_exceptions=*/false);
}

std::string config_sha(int port) {
    const auto r = it::http_request(port, "GET", "/v1/admin/config", {}, admin);
    const json b = body_of(r);
    return r.status == 200 && b.is_object() ? b.value("sha256", "") : "";
}

// SIGHUP, then waits until the daemon runs the file's new hash (or says it refused it).
bool sighup_and_wait(it::daemon_process& d, int port, const std::string& old_sha) {
    ::kill(d.pid(), SIGHUP);
    return it::wait_until(15s, [&] {
        const std::string now = config_sha(port);
        return !now.empty() && now != old_sha;
    });
}

it::pg_rows activity_rows(it::test_stack& s, const std::string& schema, const std::string& where = "true") {
    return it::pg_query(s.postgres.dsn(), "SELECT id, actor, action, target, outcome, request_id, client, detail::text FROM " +
                                              schema + ".activity WHERE " + where + " ORDER BY id");
}

}  // namespace

class Reload : public it::stack_suite<Reload> {
public:
    static std::vector<it::topic_spec> topics() { return {}; }

protected:
    // The test's own schema (and Redis prefix), topic and port; its config in cfg, not started.
    void prepare(const std::string& schema_name) {
        schema = schema_name;
        port = it::free_port();
        topic = new_topic(*stack_);
        cfg = config_for(*stack_, topic, schema, port);
    }
    // Starts the daemon with cfg and waits until it is ready.
    void start() {
        daemon.emplace(cfg);
        ASSERT_NO_FATAL_FAILURE(it::start_until_ready(*daemon, port, "daemon"));
    }

    std::string schema, topic;
    int port = 0;
    json cfg;
    std::optional<it::daemon_process> daemon;
};

// A key added to the file works after SIGHUP on a connection opened before it, which stays open.
TEST_F(Reload, SighupAddsAnApiKeyAndOpenConnectionsStayOpen) {
    auto& s = *stack_;
    prepare("reload_keys");
    ASSERT_NO_FATAL_FAILURE(start());

    it::keep_alive_connection conn(port);
    ASSERT_TRUE(conn.open());
    const int local = conn.local_port();
    const it::http_headers other = {{"X-API-Key", "other-key"}};
    auto before = conn.request("GET", "/v1/features/user_activity/u1", {}, other);
    EXPECT_EQ(before.status, 401) << before.body;
    const std::string rid = before.headers["x-request-id"];
    EXPECT_EQ(rid.size(), 16u) << "every answer carries an X-Request-Id";

    const std::string sha = config_sha(port);
    ASSERT_FALSE(sha.empty());
    cfg["http"]["auth"]["api_keys"].push_back({{"name", "other"}, {"sha256", other_key_sha256}, {"scopes", {"read"}}});
    rewrite(*daemon, cfg);
    ASSERT_TRUE(sighup_and_wait(*daemon, port, sha)) << daemon->log_tail();

    auto after = conn.request("GET", "/v1/features/user_activity/u1", {}, other);
    EXPECT_EQ(after.status, 404) << "the new key reads (no such key yet): " << after.body << after.error;
    EXPECT_TRUE(conn.open()) << "the connection opened before the reload answered after it";
    EXPECT_EQ(conn.local_port(), local);
    auto again = conn.request("GET", "/healthz");
    EXPECT_EQ(again.status, 200) << again.error;

    // The activity log: the failed read with its request id and client, the reload by "system".
    ASSERT_TRUE(it::wait_until(10s, [&] {
        return !activity_rows(s, schema, "action = 'reload'").empty() &&
               !activity_rows(s, schema, "action = 'auth_failure'").empty();
    }));
    const auto failures = activity_rows(s, schema, "action = 'auth_failure'");
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0][1], "anonymous");
    EXPECT_EQ(failures[0][3], "/v1/features/{set}/{key}");
    EXPECT_EQ(failures[0][4], "refused");
    EXPECT_EQ(failures[0][5], rid);
    EXPECT_EQ(failures[0][6], "127.0.0.1");
    const auto reloads = activity_rows(s, schema, "action = 'reload'");
    ASSERT_EQ(reloads.size(), 1u);
    EXPECT_EQ(reloads[0][1], "system");
    EXPECT_EQ(reloads[0][4], "applied");
    const json detail = json::parse(reloads[0][7]);
    EXPECT_EQ(detail["sha256_before"], sha);
    EXPECT_NE(detail["sha256_after"], sha);
    EXPECT_EQ(detail["changes"][0]["path"], "http.auth.api_keys");
    EXPECT_EQ(activity_rows(s, schema, "action = 'start'").size(), 1u);
    it::finish_test(*daemon, "keys", std::chrono::steady_clock::now());
    EXPECT_EQ(activity_rows(s, schema, "action = 'stop'").size(), 1u) << "the stop is the last row written";
}

// A rate limit raised by POST /v1/admin/reload: refused requests before, none after.
TEST_F(Reload, ARateLimitIsRaisedLive) {
    auto& s = *stack_;
    prepare("reload_rate");
    cfg["http"]["rate_limit"] = {{"requests_per_sec", 1}, {"burst", 3}};
    ASSERT_NO_FATAL_FAILURE(start());
    const it::http_headers reader = {{"X-API-Key", "read-key"}};
    int limited = 0;
    for (int i = 0; i < 10; ++i) limited += it::http_request(port, "GET", "/v1/features/user_activity/u1", {}, reader).status == 429;
    EXPECT_GE(limited, 6) << "1 request/s with a burst of 3";

    cfg["http"]["rate_limit"] = {{"requests_per_sec", 10000}, {"burst", 1000}};
    rewrite(*daemon, cfg);
    const auto r = it::http_request(port, "POST", "/v1/admin/reload", "", admin);
    ASSERT_EQ(r.status, 200) << r.body;
    const json b = body_of(r);
    EXPECT_EQ(b["outcome"], "applied");
    ASSERT_EQ(b["changes"].size(), 2u) << b.dump();
    EXPECT_EQ(b["changes"][0]["applied"], "live");
    limited = 0;
    for (int i = 0; i < 50; ++i) limited += it::http_request(port, "GET", "/v1/features/user_activity/u1", {}, reader).status == 429;
    EXPECT_EQ(limited, 0);
    // The admin call is a row with the key's name and the answer's request id.
    ASSERT_TRUE(it::wait_until(10s, [&] { return activity_rows(s, schema, "action = 'admin_request'").size() >= 1; }));
    const auto admin_rows = activity_rows(s, schema, "action = 'admin_request' AND target = 'POST /v1/admin/reload'");
    ASSERT_EQ(admin_rows.size(), 1u);
    EXPECT_EQ(admin_rows[0][1], "ops");
    EXPECT_EQ(admin_rows[0][4], "ok");
    EXPECT_EQ(admin_rows[0][5], r.headers.at("x-request-id"));
    const auto reload_rows = activity_rows(s, schema, "action = 'reload'");
    ASSERT_EQ(reload_rows.size(), 1u);
    EXPECT_EQ(reload_rows[0][1], "ops");
    EXPECT_EQ(reload_rows[0][5], r.headers.at("x-request-id"));
    it::finish_test(*daemon, "rate", std::chrono::steady_clock::now());
}

// A typo and a breaking change: refused, the running config keeps running, and each says why.
TEST_F(Reload, ATypoOrABreakingChangeChangesNothingAndSaysWhy) {
    auto& s = *stack_;
    prepare("reload_refused");
    ASSERT_NO_FATAL_FAILURE(start());
    const std::string sha = config_sha(port);

    json typo = cfg;
    typo["http"]["rate_limit"] = {{"requests_per_sec", 1}, {"burst", 1}};  // would limit, if applied
    typo["feature_sets"][0]["ttl"] = "2x";
    typo["http"]["auth"]["api_keys"] = json::array();  // would turn auth off, if applied
    rewrite(*daemon, typo);
    auto r = it::http_request(port, "POST", "/v1/admin/reload", "", admin);
    ASSERT_EQ(r.status, 422) << r.body;
    json b = body_of(r);
    EXPECT_EQ(b["error"]["code"], "reload_refused");
    ASSERT_FALSE(b["reload"]["errors"].empty());
    EXPECT_EQ(b["reload"]["errors"][0]["path"], "feature_sets[0].ttl") << b.dump();
    EXPECT_EQ(config_sha(port), sha);
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity/u1").status, 401) << "auth is still on";

    json breaking = cfg;
    breaking["feature_sets"][0]["fields"]["clicks"]["type"] = "string";
    breaking["http"]["rate_limit"] = {{"requests_per_sec", 1}, {"burst", 1}};
    rewrite(*daemon, breaking);
    ::kill(daemon->pid(), SIGHUP);
    ASSERT_TRUE(it::wait_until(10s, [&] { return activity_rows(s, schema, "action = 'reload'").size() >= 2; }));
    r = it::http_request(port, "POST", "/v1/admin/reload", "", admin);
    ASSERT_EQ(r.status, 422) << r.body;
    b = body_of(r);
    EXPECT_NE(b["error"]["message"].get<std::string>().find("field clicks"), std::string::npos) << b.dump();
    EXPECT_EQ(config_sha(port), sha);
    int limited = 0;
    for (int i = 0; i < 5; ++i) limited += it::http_request(port, "GET", "/v1/admin/config", {}, admin).status == 429;
    EXPECT_EQ(limited, 0) << "the refused file's rate limit was not applied";
    const auto rows = activity_rows(s, schema, "action = 'reload'");
    ASSERT_EQ(rows.size(), 3u);
    for (const auto& row : rows) EXPECT_EQ(row[4], "refused");
    EXPECT_NE(daemon->log_tail().find("refused, the running config keeps running"), std::string::npos);
    it::finish_test(*daemon, "refused", std::chrono::steady_clock::now());
}

// A set of the test's own besides user_activity: added by a reload, on a topic of its own.
json page_set(const std::string& topic) {
    return {{"name", "page_views"}, {"topic", topic}, {"key", "page"}, {"event_time", "ts"},
            {"fields", {{"n", {{"type", "int"}, {"required", true}}}}}};
}

void produce_pages(it::test_stack& s, const std::string& topic, int from, int to) {
    const std::int64_t t = it::now_ms() - 60'000;
    for (int i = from; i < to; ++i)
        s.kafka.produce(topic, "p" + std::to_string(i % 50), json{{"page", "p" + std::to_string(i % 50)}, {"ts", t + i}, {"n", i}}.dump());
    s.kafka.flush();
}

// Rows of page_views and how many distinct Kafka sources they come from.
std::pair<long long, long long> page_rows(it::test_stack& s, const std::string& schema) {
    const auto r = it::pg_query(s.postgres.dsn(), "SELECT count(*), count(DISTINCT (src_partition, src_offset)) FROM " + schema +
                                                      ".page_views_history");
    return {std::stoll(r[0][0]), std::stoll(r[0][1])};
}

// The main consumer group's assignment lines (a set added live logs its own "in group ...").
std::size_t main_rebalances(const std::filesystem::path& log) {
    std::size_t n = 0;
    for (const auto& line : it::rebalance_lines(log)) n += line.find(" in group ") == std::string::npos;
    return n;
}

// 20,000 messages with five reloads in the middle (TTL, a transform, a feature set added, the log
// level, a key): no rebalance of the running consumers, every message stored exactly once, the
// transform applied to what came after it, the added set consumed and served at once; after a
// restart the main consumer takes the added set over where its own group left it.
TEST_F(Reload, FiveReloadsDuringAStreamLoseAndDoubleNothing) {
    auto& s = *stack_;
    prepare("reload_stream");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_TRUE(it::wait_assignment_settled(daemon->log_path(), 0, 2, 1s, 30s));
    const auto rebalances = main_rebalances(daemon->log_path());
    const std::string pages = "reload-pages-" + it::random_suffix();
    s.kafka.create_topic(pages, 2);
    produce_pages(s, pages, 0, 1000);  // before the set exists: read from the topic's start

    const auto t0 = std::chrono::steady_clock::now();
    it::paced_producer producer(s.kafka, topic, "user-", 500, 2000.0, it::now_ms() - 3'600'000);
    producer.start();
    const std::vector<std::function<void(json&)>> edits = {
        [](json& c) { c["feature_sets"][0]["ttl"] = "2h"; },
        [](json& c) { c["feature_sets"][0]["transforms"] = json::array({{{"op", "clamp"}, {"field", "spend"}, {"max", 100}}}); },
        [&](json& c) { c["feature_sets"].push_back(page_set(pages)); },
        [](json& c) { c["log"]["level"] = "debug"; },
        [](json& c) { c["http"]["auth"]["api_keys"].push_back({{"name", "other"}, {"sha256", other_key_sha256}, {"scopes", {"read"}}}); },
    };
    for (const auto& edit : edits) {
        std::this_thread::sleep_for(1500ms);
        edit(cfg);
        rewrite(*daemon, cfg);
        const auto r = it::http_request(port, "POST", "/v1/admin/reload", "", admin);
        EXPECT_EQ(r.status, 200) << r.body;
        EXPECT_EQ(body_of(r).value("outcome", ""), "applied") << r.body;
    }
    produce_pages(s, pages, 1000, 2000);
    while (producer.sent() < 20000 && std::chrono::steady_clock::now() - t0 < 60s) std::this_thread::sleep_for(100ms);
    producer.stop();
    producer.flush();
    ASSERT_GE(producer.events().size(), 20000u);
    it::wait_history(s.postgres.dsn(), schema, topic, static_cast<long long>(producer.events().size()), 60s, &*daemon);
    const auto h = it::check_history(s.postgres.dsn(), schema, topic, producer.events());
    it::print_history_check("reloads", h);
    it::expect_each_event_once(h);
    EXPECT_EQ(main_rebalances(daemon->log_path()), rebalances) << "a reload rebalanced the running consumers";
    EXPECT_GT(it::rebalance_lines(daemon->log_path()).size(), main_rebalances(daemon->log_path()))
        << "the added set's consumer was assigned its partitions in a group of its own";

    // What the reloads changed is what runs: the catalog's TTL, the transform on new events.
    const auto cat = it::http_request(port, "GET", "/v1/feature-sets/user_activity", {}, admin);
    EXPECT_EQ(body_of(cat)["ttl_ms"], 2 * 3600 * 1000) << cat.body;
    const auto above = it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema +
                                                          ".user_activity_history WHERE spend > 100");
    const auto late_above = it::pg_count(
        s.postgres.dsn(), "SELECT count(*) FROM " + schema +
                              ".user_activity_history WHERE spend > 100 AND ingested_at > (SELECT min(at) FROM " + schema +
                              ".activity WHERE action = 'reload' AND detail::text LIKE '%transforms%') + interval '2 seconds'");
    EXPECT_GT(above, 0) << "events before the clamp kept their spend";
    EXPECT_EQ(late_above, 0) << "events well after the clamp's reload are clamped";

    // The added set: every message once, served, in the catalog with its figures.
    ASSERT_TRUE(it::wait_until(30s, [&] { return page_rows(s, schema).first >= 2000; })) << page_rows(s, schema).first;
    EXPECT_EQ(page_rows(s, schema), std::make_pair(2000LL, 2000LL));
    const auto read = it::http_request(port, "GET", "/v1/features/page_views/p7", {}, admin);
    EXPECT_EQ(read.status, 200) << read.body;
    EXPECT_EQ(body_of(read)["values"]["n"], 1957) << read.body;
    const auto added = body_of(it::http_request(port, "GET", "/v1/feature-sets/page_views", {}, admin));
    EXPECT_EQ(added["figures"]["records_in"], 2000) << added.dump();
    const auto stopped = daemon->terminate();
    ASSERT_TRUE(stopped && stopped->ok()) << (stopped ? stopped->describe() : "did not stop");

    // The next start: page_views is one of the daemon's sets, read on from where its group stopped.
    ASSERT_NO_FATAL_FAILURE(start());
    produce_pages(s, pages, 2000, 3000);
    ASSERT_TRUE(it::wait_until(30s, [&] { return page_rows(s, schema).first >= 3000; })) << page_rows(s, schema).first;
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(page_rows(s, schema), std::make_pair(3000LL, 3000LL)) << "nothing read twice across the restart";
    it::finish_test(*daemon, "stream", t0);
}

// The log is append-only even for the daemon's own role, and keeps every row through an outage.
TEST_F(Reload, TheActivityLogIsAppendOnlyAndOutlivesAPostgresOutage) {
    auto& s = *stack_;
    prepare("reload_audit");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_TRUE(it::wait_until(10s, [&] { return !activity_rows(s, schema).empty(); }));
    for (const std::string& sql : {"UPDATE " + schema + ".activity SET actor = 'someone'",
                                  "DELETE FROM " + schema + ".activity", "TRUNCATE " + schema + ".activity"}) {
        EXPECT_THROW(it::pg_query(s.postgres.dsn(), sql), std::runtime_error) << sql;
    }

    s.postgres.stop();
    std::vector<std::string> ids;
    const auto until = std::chrono::steady_clock::now() + 20s;
    int calls = 0;
    while (std::chrono::steady_clock::now() < until) {
        const auto r = it::http_request(port, "GET", "/v1/admin/config", {}, admin);
        EXPECT_EQ(r.status, 200);
        ids.push_back(r.headers.count("x-request-id") ? r.headers.at("x-request-id") : "");
        const auto bad = it::http_request(port, "GET", "/v1/admin/config", {}, {{"X-API-Key", "wrong"}});
        EXPECT_EQ(bad.status, 401);
        ++calls;
        std::this_thread::sleep_for(500ms);
    }
    const auto ready = it::http_get(port, "/readyz");
    EXPECT_NE(ready.body.find("activity log"), std::string::npos) << "readiness tells of rows waiting: " << ready.body;
    s.postgres.start();
    ASSERT_TRUE(it::wait_until(30s, [&] {
        try {
            return activity_rows(s, schema, "action = 'admin_request' AND target = 'GET /v1/admin/config'").size() >= ids.size();
        } catch (const std::exception&) {
            return false;
        }
    }));
    const auto rows = activity_rows(s, schema, "action = 'admin_request' AND target = 'GET /v1/admin/config'");
    ASSERT_EQ(rows.size(), ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(rows[i][5], ids[i]) << "row " << i << " in the order made";
    const auto metrics = it::http_request(port, "GET", "/metrics", {}, admin);
    EXPECT_NE(metrics.body.find("sluice_activity_rows_total{environment=\"default\",outcome=\"dropped\"} 0"), std::string::npos);
    it::finish_test(*daemon, "audit", std::chrono::steady_clock::now());
    // Every bad key of the outage: a row each up to the minute's allowance, the rest in summaries.
    long long failures = it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".activity WHERE action = 'auth_failure'");
    for (const auto& row : it::pg_query(s.postgres.dsn(), "SELECT (detail->>'count')::bigint FROM " + schema +
                                                              ".activity WHERE action = 'auth_failures'"))
        failures += std::stoll(row[0]);
    EXPECT_EQ(failures, calls);
}

// 10,000 bad-key requests in a few seconds: a bounded number of rows that still count them all.
TEST_F(Reload, AFloodOfBadKeysIsCountedInABoundedNumberOfRows) {
    auto& s = *stack_;
    prepare("reload_flood");
    ASSERT_NO_FATAL_FAILURE(start());
    constexpr int total = 10000;
    std::vector<std::thread> clients;
    std::atomic<int> refused{0};
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&, c] {
            it::keep_alive_connection conn(port);
            for (int i = 0; i < total / 4; ++i) {
                auto r = conn.request("GET", "/v1/features/user_activity/u1", {}, {{"X-API-Key", "guess-" + std::to_string(c * total + i)}});
                refused += r.status == 401;
            }
        });
    for (auto& t : clients) t.join();
    ASSERT_EQ(refused.load(), total);
    it::finish_test(*daemon, "flood", std::chrono::steady_clock::now());  // writes the open minute's summary

    const auto single = it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".activity WHERE action = 'auth_failure'");
    const auto summaries = it::pg_query(s.postgres.dsn(), "SELECT (detail->>'count')::bigint FROM " + schema +
                                                              ".activity WHERE action = 'auth_failures'");
    long long summed = single;
    for (const auto& row : summaries) summed += std::stoll(row[0]);
    EXPECT_EQ(summed, total) << "every failure is counted";
    EXPECT_LE(single + static_cast<long long>(summaries.size()), 60) << "rows stay bounded";
    std::printf("[flood] %d bad keys -> %lld rows of their own + %zu summary rows\n", total, single, summaries.size());
}
