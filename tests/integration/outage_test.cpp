// Stores that go away (README, "Guarantees and faults"): with a paced producer running
// throughout, PostgreSQL is stopped for a while, Redis is stopped for a while (and comes back
// empty), and PostgreSQL's history table is locked. Each test prints its figures (produced,
// stored, missing, duplicates, recovery seconds) and asserts nothing is lost or doubled.
//
// Sizes: SLUICE_IT_OUTAGE_SECONDS (default 20), SLUICE_IT_OUTAGE_RATE (events/s, default 400),
// SLUICE_IT_LOCK_SECONDS (default 10), SLUICE_IT_RESYNC_SECONDS (default 60).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
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
constexpr int k_keys = 500;
constexpr long long k_rss_bound_kib = 1024LL * 1024;  // 1 GiB

constexpr const char* k_schema = it::default_schema;

int outage_seconds() { return static_cast<int>(it::env_int("SLUICE_IT_OUTAGE_SECONDS", 20)); }
double outage_rate() { return static_cast<double>(it::env_int("SLUICE_IT_OUTAGE_RATE", 400)); }

// One consumer thread (its rebalance lines are easy to count) and a small queue, so that
// backpressure really engages while a store is away.
json outage_config(const it::test_stack& s, const std::string& group, int http_port, const std::string& topic) {
    json c = it::user_activity_config(s, group, http_port, topic);
    c["kafka"]["consumer_threads"] = 1;
    c["pipeline"]["queue_capacity"] = 1024;
    c["pipeline"]["preprocess_threads"] = 1;
    return c;
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// What the test sees of the daemon, about once a second, while a store is away or locked.
struct watch {
    int probes = 0, reads = 0, reads_ok = 0;
    long long rss_max = -1;
    std::string last_reasons, bad_read;

    // GET /readyz once.
    it::readiness probe(int http_port) {
        auto r = it::probe_readyz(http_port);
        ++probes;
        if (!r.reasons.empty()) last_reasons = r.reasons;
        return r;
    }
    // Reads the i-th five keys of `prefix`; a good read answers 200 (with an event time, when
    // `need_event_time`).
    void read_keys(int http_port, const std::string& prefix, int i, bool need_event_time) {
        for (int k = 0; k < 5; ++k) {
            auto f = it::read_feature(http_port, prefix + std::to_string((i * 5 + k) % k_keys));
            ++reads;
            if (f.status == 200 && (!need_event_time || f.event_time_ms > 0)) {
                ++reads_ok;
            } else if (bad_read.empty()) {
                bad_read = std::to_string(f.status) + " " + f.body;
            }
        }
    }
    void note_rss(pid_t pid) { rss_max = std::max(rss_max, it::rss_kib(pid)); }
};

}  // namespace

class Outage : public it::stack_suite<Outage> {
public:
    static std::vector<it::topic_spec> topics() {
        return {{"outage-pg", k_partitions}, {"outage-redis", k_partitions}, {"outage-lock", k_partitions}};
    }

protected:
    void SetUp() override {
        stack_suite::SetUp();
        if (HasFatalFailure()) return;
        // A test that failed half-way must not leave a store down for the next one.
        if (!stack_->postgres.running()) stack_->postgres.start();
        if (!stack_->redis.running()) stack_->redis.start();
    }
    void TearDown() override {
        try {
            if (!stack_->postgres.running()) stack_->postgres.start();
            if (!stack_->redis.running()) stack_->redis.start();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "restarting a store after the test: " << e.what();
        }
    }
};

TEST_F(Outage, postgres_stopped_mid_stream_pauses_then_resumes_with_nothing_lost) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "outage-pg";
    const std::string prefix = "pgo-";
    const std::string group = "it-pgo-" + it::random_suffix();
    const int http_port = it::free_port();
    const int outage_s = outage_seconds();
    const double rate = outage_rate();
    const auto test_t0 = std::chrono::steady_clock::now();
    std::printf("[pg-outage] group=%s outage=%d s rate=%.0f/s keys=%d queue_capacity=1024\n", group.c_str(), outage_s,
                rate, k_keys);

    it::daemon_process daemon(outage_config(s, group, http_port, topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    it::paced_producer producer(s.kafka, topic, prefix, k_keys, rate, it::now_ms() - 3600 * 1000);
    long long before_n = 0;
    ASSERT_NO_FATAL_FAILURE(it::warm_up(producer, dsn, topic, 4s, "the outage", before_n, k_keys));
    const std::size_t rebalances_before = it::rebalance_lines(daemon.log_path()).size();
    const long long rss_before = it::rss_kib(daemon.pid());

    // ---- outage --------------------------------------------------------------------------------
    s.postgres.stop();
    const auto outage_t0 = std::chrono::steady_clock::now();
    const std::size_t sent_at_stop = producer.sent();
    int ready_503_pg = 0, ready_200_late = 0;
    watch w;
    w.rss_max = rss_before;
    for (int i = 0; it::seconds_since(outage_t0) < outage_s; ++i) {
        const auto r = w.probe(http_port);
        if (r.status == 503 && contains(r.reasons, "postgres")) ++ready_503_pg;
        if (r.status == 200 && it::seconds_since(outage_t0) > 6) ++ready_200_late;
        w.read_keys(http_port, prefix, i, true);
        w.note_rss(daemon.pid());
        if (!daemon.running()) break;
        std::this_thread::sleep_for(1s);
    }
    const std::size_t sent_at_restart = producer.sent();
    const std::size_t rebalances_during = it::rebalance_lines(daemon.log_path()).size() - rebalances_before;
    ASSERT_TRUE(daemon.running()) << "the daemon exited during the PostgreSQL outage";

    // ---- recovery ------------------------------------------------------------------------------
    s.postgres.start();
    const auto restart_t0 = std::chrono::steady_clock::now();
    const bool ready_again = daemon.wait_http_ready(http_port, 60s, "/readyz");
    const double readyz_s = it::seconds_since(restart_t0);
    const long long at_restart = it::wait_history(dsn, k_schema, topic, static_cast<long long>(sent_at_restart), 90s);
    const double catchup_s = it::seconds_since(restart_t0);
    std::this_thread::sleep_for(3s);
    it::history_check audit;
    ASSERT_NO_FATAL_FAILURE(it::finish_stream(producer, dsn, topic, audit));
    const std::size_t rebalances_after = it::rebalance_lines(daemon.log_path()).size() - rebalances_before;

    std::printf("[pg-outage] outage %.1f s: produced during it %zu; /readyz 503 with postgres %d/%d probes "
                "(200 after 6 s: %d), reasons: %s\n",
                it::seconds_since(outage_t0) - it::seconds_since(restart_t0), sent_at_restart - sent_at_stop,
                ready_503_pg, w.probes, ready_200_late, w.last_reasons.c_str());
    std::printf("[pg-outage] reads during the outage: %d/%d answered 200; RSS before %lld KiB, max during %lld KiB\n",
                w.reads_ok, w.reads, rss_before, w.rss_max);
    std::printf("[pg-outage] recovery: /readyz 200 after %.2f s (%s), backlog of %zu stored after %.2f s (history %lld)\n",
                readyz_s, ready_again ? "yes" : "NO", sent_at_restart, catchup_s, at_restart);
    std::printf("[pg-outage] rebalance lines: during the outage %zu, by the end %zu\n", rebalances_during,
                rebalances_after);
    it::print_history_check("pg-outage", audit);

    EXPECT_GE(ready_503_pg, 1) << "/readyz never answered 503 naming postgres during the outage; last reasons: "
                               << w.last_reasons;
    EXPECT_EQ(ready_200_late, 0) << "/readyz answered 200 while PostgreSQL was down";
    EXPECT_EQ(w.reads_ok, w.reads) << "a read of a key written before the outage failed: " << w.bad_read;
    EXPECT_LT(w.rss_max, k_rss_bound_kib) << "RSS grew beyond 1 GiB during the outage";
    EXPECT_EQ(rebalances_during, 0u) << "the outage caused a rebalance";
    EXPECT_EQ(rebalances_after, 0u) << "a rebalance happened during recovery";
    EXPECT_TRUE(ready_again) << "/readyz did not return to 200 within 60 s of PostgreSQL's restart";
    EXPECT_GE(at_restart, static_cast<long long>(sent_at_restart)) << "the backlog was not stored within 90 s";
    it::expect_each_event_once(audit);
    it::report_mismatches("user_activity_latest after the PostgreSQL outage", it::settled_latest(dsn, producer));

    it::finish_test(daemon, "pg-outage", test_t0);
}

TEST_F(Outage, redis_stopped_mid_stream_keeps_writing_and_is_resynced_when_back) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "outage-redis";
    const std::string prefix = "rdo-";
    const std::string group = "it-rdo-" + it::random_suffix();
    const int http_port = it::free_port();
    const int outage_s = outage_seconds();
    const int resync_s = static_cast<int>(it::env_int("SLUICE_IT_RESYNC_SECONDS", 60));
    const double rate = outage_rate();
    const int hot_keys = 50;  // the only keys written after Redis returns
    const auto test_t0 = std::chrono::steady_clock::now();
    std::printf("[redis-outage] group=%s outage=%d s rate=%.0f/s keys=%d (after the restart only %d)\n", group.c_str(),
                outage_s, rate, k_keys, hot_keys);

    it::daemon_process daemon(outage_config(s, group, http_port, topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    it::paced_producer producer(s.kafka, topic, prefix, k_keys, rate, it::now_ms() - 3600 * 1000);
    long long before_n = 0;
    ASSERT_NO_FATAL_FAILURE(it::warm_up(producer, dsn, topic, 4s, "the outage", before_n, k_keys));

    // ---- outage --------------------------------------------------------------------------------
    s.redis.stop();
    const auto outage_t0 = std::chrono::steady_clock::now();
    const long long history_at_stop = it::history_rows(dsn, k_schema, topic);
    const std::size_t sent_at_stop = producer.sent();
    int ready_503_redis = 0;
    watch w;
    w.rss_max = it::rss_kib(daemon.pid());
    for (int i = 0; it::seconds_since(outage_t0) < outage_s; ++i) {
        const auto r = w.probe(http_port);
        if (r.status == 503 && contains(r.reasons, "redis")) ++ready_503_redis;
        w.read_keys(http_port, prefix, i, true);
        w.note_rss(daemon.pid());
        if (!daemon.running()) break;
        std::this_thread::sleep_for(1s);
    }
    const long long history_at_restart = it::history_rows(dsn, k_schema, topic);
    const std::size_t sent_at_restart = producer.sent();
    ASSERT_TRUE(daemon.running()) << "the daemon exited during the Redis outage";

    // ---- Redis returns, empty ------------------------------------------------------------------
    producer.restrict_keys(hot_keys);
    s.redis.start();
    const auto restart_t0 = std::chrono::steady_clock::now();
    const bool ready_again = daemon.wait_http_ready(http_port, 60s, "/readyz");
    const double readyz_s = it::seconds_since(restart_t0);
    std::this_thread::sleep_for(3s);
    it::history_check audit;
    ASSERT_NO_FATAL_FAILURE(it::finish_stream(producer, dsn, topic, audit));

    // Every key's Redis hash must reach PostgreSQL's latest event time (keys written during the
    // outage and never again are the ones only a resync brings back).
    const std::vector<std::string> pg_bad = it::settled_latest(dsn, producer);
    std::map<std::string, std::int64_t> pg_latest;
    try {
        pg_latest = it::pg_latest_times(dsn, prefix);
    } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
    }
    std::vector<std::string> redis_bad;
    const auto resync_t0 = std::chrono::steady_clock::now();
    const bool resynced = it::wait_until(std::chrono::seconds(resync_s), [&] {
        return (redis_bad = it::redis_time_mismatches(s.redis.port(), pg_latest)).empty();
    }, 1s);
    const double resync_wait_s = it::seconds_since(resync_t0);

    std::printf("[redis-outage] outage %.1f s: produced during it %zu, history %lld -> %lld (+%lld); /readyz 503 with "
                "redis %d/%d probes, reasons: %s\n",
                it::seconds_since(outage_t0) - it::seconds_since(restart_t0), sent_at_restart - sent_at_stop,
                history_at_stop, history_at_restart, history_at_restart - history_at_stop, ready_503_redis, w.probes,
                w.last_reasons.c_str());
    std::printf("[redis-outage] reads during the outage: %d/%d answered 200; RSS max %lld KiB\n", w.reads_ok, w.reads,
                w.rss_max);
    std::printf("[redis-outage] recovery: /readyz 200 after %.2f s (%s); Redis resync of %zu keys: %s, %zu keys "
                "still missing or older after %.1f s more (%.1f s since the restart)\n",
                readyz_s, ready_again ? "yes" : "NO", pg_latest.size(), resynced ? "complete" : "INCOMPLETE",
                redis_bad.size(), resync_wait_s, it::seconds_since(restart_t0));
    it::print_history_check("redis-outage", audit);

    // Writes continue: at least half of what was produced during the outage reached PostgreSQL.
    EXPECT_GE(history_at_restart - history_at_stop, static_cast<long long>(sent_at_restart - sent_at_stop) / 2)
        << "PostgreSQL writes stalled while Redis was down";
    EXPECT_GE(ready_503_redis, 1) << "/readyz never answered 503 naming redis; last reasons: " << w.last_reasons;
    EXPECT_EQ(w.reads_ok, w.reads) << "a read failed while Redis was down: " << w.bad_read;
    EXPECT_LT(w.rss_max, k_rss_bound_kib);
    EXPECT_TRUE(ready_again) << "/readyz did not return to 200 within 60 s of Redis' restart";
    it::expect_each_event_once(audit);
    it::report_mismatches("user_activity_latest after the Redis outage", pg_bad);
    EXPECT_EQ(pg_latest.size(), static_cast<std::size_t>(k_keys));
    it::report_mismatches("Redis after its restart (resync)", redis_bad);

    it::finish_test(daemon, "redis-outage", test_t0);
}

TEST_F(Outage, history_table_lock_stalls_writes_without_losing_any) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "outage-lock";
    const std::string prefix = "lko-";
    const std::string group = "it-lko-" + it::random_suffix();
    const int http_port = it::free_port();
    const int lock_s = static_cast<int>(it::env_int("SLUICE_IT_LOCK_SECONDS", 10));
    const double rate = outage_rate();
    const auto test_t0 = std::chrono::steady_clock::now();
    std::printf("[pg-lock] group=%s lock=%d s rate=%.0f/s\n", group.c_str(), lock_s, rate);

    it::daemon_process daemon(outage_config(s, group, http_port, topic));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

    it::paced_producer producer(s.kafka, topic, prefix, k_keys, rate, it::now_ms() - 3600 * 1000);
    long long before_n = 0;
    ASSERT_NO_FATAL_FAILURE(it::warm_up(producer, dsn, topic, 3s, "the lock", before_n));
    const std::size_t rebalances_before = it::rebalance_lines(daemon.log_path()).size();

    // ---- hold ACCESS EXCLUSIVE on the history table ------------------------------------------
    // (history can't be counted meanwhile: a count would wait on the same lock)
    it::pg_client locker(dsn);
    locker.query("BEGIN");
    locker.query("LOCK TABLE sluice.user_activity_history IN ACCESS EXCLUSIVE MODE");
    const auto lock_t0 = std::chrono::steady_clock::now();
    const std::size_t sent_at_lock = producer.sent();
    int ready_503 = 0, ready_503_pg_late = 0;
    watch w;
    w.rss_max = it::rss_kib(daemon.pid());
    for (int i = 0; it::seconds_since(lock_t0) < lock_s; ++i) {
        w.read_keys(http_port, prefix, i, false);
        const auto r = w.probe(http_port);
        if (r.status == 503) ++ready_503;
        if (r.status == 503 && contains(r.reasons, "postgres") && it::seconds_since(lock_t0) > 5) ++ready_503_pg_late;
        w.note_rss(daemon.pid());
        std::this_thread::sleep_for(1s);
    }
    const std::size_t sent_at_release = producer.sent();
    locker.query("COMMIT");
    const auto release_t0 = std::chrono::steady_clock::now();
    const long long at_release = it::wait_history(dsn, k_schema, topic, static_cast<long long>(sent_at_release), 60s);
    const double catchup_s = it::seconds_since(release_t0);
    std::this_thread::sleep_for(2s);
    it::history_check audit;
    ASSERT_NO_FATAL_FAILURE(it::finish_stream(producer, dsn, topic, audit));
    const std::size_t rebalances = it::rebalance_lines(daemon.log_path()).size() - rebalances_before;

    std::printf("[pg-lock] lock held %.1f s, produced during it %zu; reads %d/%d answered 200; /readyz 503 %d/%d "
                "(%s); RSS max %lld KiB\n",
                it::seconds_since(lock_t0) - it::seconds_since(release_t0), sent_at_release - sent_at_lock, w.reads_ok,
                w.reads, ready_503, w.probes, w.last_reasons.c_str(), w.rss_max);
    std::printf("[pg-lock] recovery: backlog stored %.2f s after the release (history %lld); rebalance lines %zu\n",
                catchup_s, at_release, rebalances);
    it::print_history_check("pg-lock", audit);

    EXPECT_EQ(w.reads_ok, w.reads) << "a read failed while history was locked: " << w.bad_read;
    // Issue 3 item 4: "PostgreSQL goes away (stopped, or a lock that stalls writes): ... /readyz
    // turns 503 with the reason". A write stalled for more than 5 s must show.
    EXPECT_GE(ready_503_pg_late, 1) << "/readyz never answered 503 naming postgres while writes were stalled by "
                                       "the lock for more than 5 s";
    EXPECT_LT(w.rss_max, k_rss_bound_kib);
    EXPECT_GE(at_release, static_cast<long long>(sent_at_release)) << "the backlog was not stored within 60 s";
    EXPECT_EQ(rebalances, 0u) << "the stalled writes caused a rebalance";
    it::expect_each_event_once(audit);
    it::report_mismatches("user_activity_latest after the lock", it::settled_latest(dsn, producer));

    it::finish_test(daemon, "pg-lock", test_t0);
}
