// Scale-out (README, "Guarantees and faults"): two `sluice` daemons in one consumer group, sharing
// PostgreSQL and Redis, split the partitions of an 8-partition topic; stopping one of them
// (kill -9, or SIGTERM) moves its partitions to the other with nothing lost and nothing doubled,
// and the survivor answers for the keys of every partition with their newest values.
//
// The order of events is chosen to expose a known risk of the in-memory latest index: daemon A
// starts alone and owns every partition while each key gets a first event (so A's memory holds
// every key); then B joins and takes half the partitions, and the keys of B's partitions move
// on in PostgreSQL and Redis while A's memory copy would stay behind. The test checks A's and
// B's answers for every key at that point, and again at the end on the survivor, after the
// stop, when only the even keys get new events: an odd key of B's former partitions is then
// served from whatever A kept in memory since the start, unless A dropped it when the partition
// was revoked.
//
// Sizes (CI defaults): SLUICE_IT_SCALE_MESSAGES (30000) over SLUICE_IT_SCALE_STREAM_MS (15000),
// SLUICE_IT_SCALE_KEYS (1000), SLUICE_IT_SESSION_TIMEOUT_MS (3000), SLUICE_IT_SEED (random).

#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/audit.hpp"
#include "integration/support/stream.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int k_partitions = 8;
using steady = std::chrono::steady_clock;

// One variant's private corner of the shared stack.
struct variant {
    const char* name;    // for the printed figures
    const char* topic;
    const char* schema;  // PostgreSQL schema
    const char* redis_prefix;
    bool crash;  // kill -9 (true) or SIGTERM (false)
};

constexpr variant k_kill{"scale-kill", "scale-kill-events", "scale_kill", "scalekill", true};
constexpr variant k_term{"scale-term", "scale-term-events", "scale_term", "scaleterm", false};

json daemon_config(const it::test_stack& s, const variant& v, const std::string& group, int http_port) {
    json cfg = it::user_activity_config(s, group, http_port, v.topic);
    const long long session_ms = it::env_int("SLUICE_IT_SESSION_TIMEOUT_MS", 3000);
    cfg["kafka"]["properties"]["session.timeout.ms"] = std::to_string(session_ms);
    cfg["kafka"]["properties"]["heartbeat.interval.ms"] = std::to_string(std::max(100LL, session_ms / 4));
    cfg["postgres"]["schema"] = v.schema;
    cfg["redis"]["key_prefix"] = v.redis_prefix;
    return cfg;
}

// What the last rebalance gave one daemon: the sum of the last `consumers` "assigned N
// partitions" lines of its log after byte `from` (one line per consumer thread and rebalance).
struct assignment_view {
    std::size_t lines = 0;  // assigned/revoked lines after `from`
    int held = -1;          // -1: fewer assigned lines than consumers
};

assignment_view assignment_of(const it::daemon_process& d, std::size_t from, int consumers) {
    std::string text = it::read_file(d.log_path());
    text = from < text.size() ? text.substr(from) : std::string();
    const auto counts = it::assigned_counts(text);
    assignment_view v;
    std::size_t revoked = 0;
    for (std::size_t pos = text.find("revoked "); pos != std::string::npos; pos = text.find("revoked ", pos + 1)) {
        ++revoked;
    }
    v.lines = counts.size() + revoked;
    if (static_cast<int>(counts.size()) >= consumers) {
        v.held = 0;
        for (int i = 0; i < consumers; ++i) v.held += counts[counts.size() - 1 - static_cast<std::size_t>(i)];
    }
    return v;
}

std::string per_partition_text(const it::api_check& c) {
    std::string out;
    for (const auto& [p, nw] : c.per_partition) {
        out += " p" + std::to_string(p) + ":" + std::to_string(nw.second) + "/" + std::to_string(nw.first);
    }
    return out;
}

}  // namespace

class ScaleOut : public it::stack_suite<ScaleOut> {
public:
    static std::vector<it::topic_spec> topics() { return {{k_kill.topic, k_partitions}, {k_term.topic, k_partitions}}; }

protected:
    void run(const variant& v);
};

void ScaleOut::run(const variant& v) {
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string group = std::string(v.name) + "-" + it::random_suffix();
    const int port_a = it::free_port();
    int port_b = it::free_port();
    while (port_b == port_a) port_b = it::free_port();
    const auto total = static_cast<std::size_t>(it::env_int("SLUICE_IT_SCALE_MESSAGES", 30000));
    const auto stream_ms = std::chrono::milliseconds(it::env_int("SLUICE_IT_SCALE_STREAM_MS", 15000));
    const int keys = static_cast<int>(it::env_int("SLUICE_IT_SCALE_KEYS", 1000));
    const auto seed = static_cast<std::uint64_t>(it::env_int("SLUICE_IT_SEED", std::random_device{}() & 0x7fffffff));
    const char* tag = v.name;
    std::printf("[%s] seed=%" PRIu64 " (SLUICE_IT_SEED) messages=%zu+%d stream=%.1f s keys=%d group=%s http A=%d B=%d\n",
                tag, seed, total, keys, std::chrono::duration<double>(stream_ms).count(), keys, group.c_str(), port_a,
                port_b);
    std::fflush(stdout);
    std::mt19937_64 rng(seed);
    it::event_stream stream(s.kafka, v.topic, keys, seed ^ 0x5ca1e, it::now_ms() - 2 * 3600 * 1000);

    auto wait_stored = [&](std::size_t n, std::chrono::seconds timeout) {
        const long long rows = it::wait_history(dsn, v.schema, v.topic, static_cast<long long>(n), timeout, nullptr, 200ms);
        const bool ok = rows >= static_cast<long long>(n);
        if (!ok) ADD_FAILURE() << "history did not reach " << n << " rows within " << timeout.count() << " s (has " << rows << ")";
        return ok;
    };

    const json cfg_a = daemon_config(s, v, group, port_a);
    const int consumers = cfg_a["kafka"]["consumer_threads"].get<int>();
    it::daemon_process a(cfg_a);
    it::daemon_process b(daemon_config(s, v, group, port_b));

    // ---- phase 1: A alone owns every partition; every key gets a first event -------------------
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(a, port_a, "A: "));
    for (int k = 0; k < keys; ++k) stream.send(k);
    ASSERT_NO_THROW(stream.flush());
    ASSERT_TRUE(wait_stored(stream.size(), 60s));
    const auto a_alone = assignment_of(a, 0, consumers);
    std::printf("[%s] phase 1: %zu events stored by A alone (A holds %d partitions)\n", tag, stream.size(), a_alone.held);

    // ---- B joins: wait until the group has settled with partitions on both ---------------------
    const std::size_t a_mark = it::read_file(a.log_path()).size();
    const auto t_join = steady::now();
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(b, port_b, "B: "));
    assignment_view va, vb;
    std::size_t last_lines = 0;
    auto stable_since = steady::now();
    const bool settled = it::wait_until(60s, [&] {
        va = assignment_of(a, a_mark, consumers);
        vb = assignment_of(b, 0, consumers);
        const std::size_t lines = va.lines + vb.lines;
        if (lines != last_lines) {
            last_lines = lines;
            stable_since = steady::now();
        }
        return va.held > 0 && vb.held > 0 && steady::now() - stable_since >= 3s;
    }, 250ms);
    std::printf("[%s] B joined: A holds %d, B holds %d partitions after %.2f s%s\n", tag, va.held, vb.held,
                it::seconds_since(t_join), settled ? "" : " (NOT settled)");
    std::fflush(stdout);
    ASSERT_TRUE(settled) << "the group did not settle with partitions on both daemons within 60 s (A holds " << va.held
                         << ", B holds " << vb.held << ")";
    EXPECT_EQ(va.held + vb.held, k_partitions) << "the two daemons' assignments do not add up to the topic";

    // ---- phase 2: both consume; then every key must read the same on both -------------------
    const std::size_t phase2 = total / 3;
    const auto phase2_ms = stream_ms / 3;
    auto t_phase = steady::now();
    for (std::size_t start = stream.size();;) {
        const std::size_t due = start + it::paced_due(phase2, phase2_ms, steady::now() - t_phase);
        while (stream.size() < due) stream.send_random();
        if (stream.size() == start + phase2) break;
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_NO_THROW(stream.flush());
    ASSERT_TRUE(wait_stored(stream.size(), 60s));
    ASSERT_TRUE(a.running() && b.running()) << "a daemon exited during phase 2";
    {
        const auto newest = stream.newest();
        const auto bad = it::wait_latest(dsn, v.schema, newest, it::latest_scope::whole_table, 10s);
        it::report_mismatches("latest after phase 2", bad);
        const auto api_a = it::check_api(port_a, newest);
        const auto api_b = it::check_api(port_b, newest);
        std::printf("[%s] phase 2: %zu stored; latest mismatches %zu; API A: %zu mismatches (wrong/keys per partition:%s); "
                    "API B: %zu mismatches\n",
                    tag, stream.size(), bad.size(), api_a.bad.size(), per_partition_text(api_a).c_str(), api_b.bad.size());
        std::fflush(stdout);
        it::report_mismatches("GET /v1/features on A while B owns half the partitions (A's memory index serves "
                              "values older than PostgreSQL's latest?)",
                              api_a.bad);
        it::report_mismatches("GET /v1/features on B", api_b.bad);
    }

    // ---- phase 3: stream on; B stops at a random moment; afterwards only even keys move -------
    const std::size_t phase3 = total - phase2;
    const auto phase3_ms = stream_ms - phase2_ms;
    std::uniform_real_distribution<double> at(0.25, 0.6);
    const auto stop_after = std::chrono::duration_cast<std::chrono::milliseconds>(phase3_ms * at(rng));
    std::vector<int> even;
    for (int k = 0; k < keys; k += 2) even.push_back(k);
    bool stopped = false;
    std::optional<it::exit_status> b_status;
    double stop_call_s = 0;
    steady::time_point t_stop{};
    std::size_t produced_before_stop = 0;
    std::map<std::int32_t, std::int64_t> targets;  // partition -> last offset produced before the stop
    double takeover_s = -1;
    auto last_poll = steady::now();
    t_phase = steady::now();
    const std::size_t start3 = stream.size();
    for (;;) {
        const auto now = steady::now();
        const std::size_t due = start3 + it::paced_due(phase3, phase3_ms, now - t_phase);
        while (stream.size() < due) {
            if (stopped) {
                stream.send_random_of(even);
            } else {
                stream.send_random();
            }
        }
        if (!stopped && now - t_phase >= stop_after) {
            stopped = true;
            produced_before_stop = stream.size();
            t_stop = steady::now();
            if (v.crash) {
                b_status = b.kill9();
            } else {
                b_status = b.terminate(30s);
            }
            stop_call_s = it::seconds_since(t_stop);
            std::printf("[%s] B stopped (%s) %.2f s into phase 3 with %zu produced: %s in %.2f s\n", tag,
                        v.crash ? "kill -9" : "SIGTERM", std::chrono::duration<double>(now - t_phase).count(),
                        produced_before_stop, b_status ? b_status->describe().c_str() : "no exit", stop_call_s);
            std::fflush(stdout);
        }
        if (stopped && takeover_s < 0 && now - last_poll >= 200ms) {
            last_poll = now;
            stream.resolve();
            if (targets.empty()) {
                bool all = true;
                for (std::size_t i = 0; i < produced_before_stop; ++i) {
                    const auto& e = stream.events()[i];
                    if (e.partition < 0) {
                        all = false;
                        break;
                    }
                    targets[e.partition] = std::max(targets[e.partition], e.offset);
                }
                if (!all) targets.clear();
            }
            if (!targets.empty()) {
                std::map<std::int32_t, std::int64_t> stored;
                for (const auto& r : it::pg_query(dsn, std::string("SELECT src_partition, max(src_offset) FROM ") +
                                                           v.schema + ".user_activity_history WHERE src_topic = $1 "
                                                           "GROUP BY src_partition",
                                                  {v.topic})) {
                    stored[std::stoi(r[0])] = std::stoll(r[1]);
                }
                bool done = true;
                for (const auto& [p, off] : targets) done = done && stored.count(p) && stored[p] >= off;
                if (done) takeover_s = std::chrono::duration<double>(now - t_stop).count();
            }
        }
        if (stream.size() == start3 + phase3) break;
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_NO_THROW(stream.flush());
    const bool converged = wait_stored(stream.size(), 120s);
    const double converge_s = it::seconds_since(t_stop);
    if (takeover_s < 0 && converged) takeover_s = converge_s;

    // ---- the stopped daemon -----------------------------------------------------------------
    ASSERT_TRUE(b_status.has_value()) << "B did not exit within 30 s of SIGTERM";
    if (v.crash) {
        EXPECT_TRUE(!b_status->exited && b_status->signal == SIGKILL) << "B: " << b_status->describe();
    } else {
        EXPECT_TRUE(b_status->ok()) << "B after SIGTERM: " << b_status->describe();
    }
    ASSERT_TRUE(a.running()) << "A exited";
    std::this_thread::sleep_for(1s);  // anything beyond the produced count would show up now

    // ---- history: every message exactly once ------------------------------------------------
    const it::history_check h = it::check_history(dsn, v.schema, v.topic, stream.events());
    ASSERT_EQ(h.error, "") << "history could not be checked";
    std::printf("[%s] produced=%zu stored=%lld distinct=%lld missing=%zu duplicates=%zu unexpected=%zu wrong=%zu; "
                "B's partitions taken over %.2f s after the stop, the whole stream stored %.2f s after it\n",
                tag, stream.size(), h.rows, h.distinct_src, h.missing, h.duplicates, h.unexpected, h.wrong, takeover_s,
                converge_s);
    std::fflush(stdout);
    EXPECT_TRUE(converged);
    it::expect_each_event_once(h);  // as many rows as stream.size()

    // ---- latest, Redis, and the survivor's API for the keys of every partition ---------------
    const auto newest = stream.newest();
    it::expect_latest_and_redis(tag, dsn, v.schema, s.redis.port(), v.redis_prefix, newest);
    const auto api = it::check_api(port_a, newest);
    std::printf("[%s] API of the survivor A: %zu keys, %zu mismatches (wrong/keys per partition:%s)\n", tag,
                newest.size(), api.bad.size(), per_partition_text(api).c_str());
    EXPECT_EQ(api.per_partition.size(), static_cast<std::size_t>(k_partitions)) << "keys do not cover every partition";
    it::report_mismatches("GET /v1/features on the survivor (its memory index serves values older than "
                          "PostgreSQL's latest?)",
                          api.bad);

    // ---- SIGTERM the survivor: exit 0, offsets at the end everywhere ------------------------
    const auto st = a.terminate(30s);
    ASSERT_TRUE(st.has_value()) << "A: no exit within 30 s of SIGTERM";
    EXPECT_TRUE(st->ok()) << "A: " << st->describe();
    it::expect_offsets_at_end(s.kafka, dsn, v.schema, group, v.topic, k_partitions);
    std::fflush(stdout);
}

TEST_F(ScaleOut, two_daemons_split_partitions_and_kill9_of_one_moves_them_losing_nothing) { run(k_kill); }

TEST_F(ScaleOut, two_daemons_split_partitions_and_sigterm_of_one_moves_them_losing_nothing) { run(k_term); }
