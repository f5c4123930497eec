// Windowed aggregations end to end (README, "Config"), against the real
// `sluice` binary with PostgreSQL 15, Redis 7 and the librdkafka mock cluster:
//
//   1. a seeded random stream (out of order within the lateness, gaps, identical re-sends, a few
//      events later than the lateness) through the real pipeline; every aggregation served online
//      and as of many moments equals a brute-force computation over the produced events with the
//      same tiled definition (aggregation_support.hpp, written independently of the daemon), and
//      the tile error against an exact sliding window is printed and bounded by one tile;
//   2. `as_of` answers from history equal the online answers captured during a paced stream;
//   3. aggregation state survives kill -9 and restart;
//   4. events later than allowed_lateness are dead letters ("late event ...") that change nothing;
//      events within it update the aggregations;
//   5. windows move with time: a 1-minute sum falls to 0 without new events;
//   6. an instance that takes over another's partition (SIGTERM of the other) rebuilds that
//      partition's state from the history rows the other one wrote.
//
// Each test has its own topic, PostgreSQL schema and Redis key prefix on the suite's one stack.
// SLUICE_IT_SEED fixes the seed of the random streams (it is printed either way).

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/aggregation_support.hpp"
#include "integration/support/audit.hpp"
#include "integration/support/faults.hpp"
#include "integration/support/stream.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;
using it::agg_kind;
using it::agg_source;

namespace {

constexpr std::int64_t k_sec = 1000;
constexpr std::int64_t k_min = 60 * k_sec;

constexpr const char* k_prop_topic = "agg-prop";
constexpr const char* k_asof_topic = "agg-asof";
constexpr const char* k_restart_topic = "agg-restart";
constexpr const char* k_late_topic = "agg-late";
constexpr const char* k_move_topic = "agg-move";
constexpr const char* k_takeover_topic = "agg-takeover";

std::uint64_t test_seed() {
    const long long fixed = it::env_int("SLUICE_IT_SEED", 0);
    return fixed > 0 ? static_cast<std::uint64_t>(fixed) : std::random_device{}();
}

// An event with random values (spend in cents, so its text round-trips exactly).
it::stream_event random_event(std::mt19937_64& rng, const std::string& key, std::int64_t ts) {
    static const char* const countries[] = {"DE", "FR", "US", "??", "JP"};
    it::stream_event e;
    e.key = key;
    e.ts = ts;
    e.clicks = static_cast<std::int64_t>(rng() % 1051) - 50;
    e.spend = static_cast<double>(rng() % 50001) / 100.0;
    e.country = countries[rng() % 5];
    switch (rng() % 3) {
        case 0: e.premium = std::nullopt; break;
        case 1: e.premium = true; break;
        default: e.premium = false; break;
    }
    return e;
}

// The accepted events per key (in production order) and the late ones, by the lateness rule: an
// event older than its key's newest accepted event by more than `lateness_ms` is a dead letter.
struct model {
    std::map<std::string, std::vector<it::model_event>> accepted;
    std::vector<const it::stream_event*> late;
    std::size_t accepted_count = 0;
    std::size_t out_of_order = 0;        // accepted with an event time below its key's newest so far
    std::int64_t max_disorder_ms = 0;    // how far below
};

model build_model(const std::vector<it::stream_event>& produced, std::int64_t lateness_ms) {
    model m;
    std::map<std::string, std::int64_t> newest;
    for (const auto& e : produced) {
        auto n = newest.find(e.key);
        if (n != newest.end() && e.ts < n->second - lateness_ms) {
            m.late.push_back(&e);
            continue;
        }
        auto& list = m.accepted[e.key];
        list.push_back({&e, list.size()});
        ++m.accepted_count;
        if (n == newest.end()) {
            newest[e.key] = e.ts;
        } else {
            if (e.ts < n->second) {
                ++m.out_of_order;
                m.max_disorder_ms = std::max(m.max_disorder_ms, n->second - e.ts);
            }
            n->second = std::max(n->second, e.ts);
        }
    }
    return m;
}

std::vector<it::stream_event> accepted_events(const model& m) {
    std::vector<it::stream_event> out;
    for (const auto& [key, list] : m.accepted)
        for (const auto& me : list) out.push_back(*me.e);
    return out;
}

std::string as_of_query(std::int64_t at_ms, bool as_text) {
    return "as_of=" + (as_text ? it::url_encode(it::rfc3339_ms(at_ms)) : std::to_string(at_ms));
}

// The "values" object of an API answer (an empty object when there is none).
const json& values_of(const json& body) {
    static const json empty = json::object();
    if (body.is_object()) {
        auto v = body.find("values");
        if (v != body.end() && v->is_object()) return *v;
    }
    return empty;
}

void append(std::vector<std::string>& to, const std::vector<std::string>& more) {
    to.insert(to.end(), more.begin(), more.end());
}

// Dead letters of a topic: (partition, offset) → error.
std::map<it::location, std::string> dead_letters(const std::string& dsn, const std::string& schema,
                                                 const std::string& topic) {
    std::map<it::location, std::string> out;
    for (const auto& r : it::pg_query(dsn,
                                      "SELECT src_partition, src_offset, error FROM " + schema +
                                          ".dead_letters WHERE src_topic = $1",
                                      {topic})) {
        out[{std::stoi(r[0]), std::stoll(r[1])}] = r[2];
    }
    return out;
}

// Expects the dead letters of `topic` to be exactly `late`, each with an error starting "late event".
void expect_late_dead_letters(const std::string& tag, const std::string& dsn, const std::string& schema,
                              const std::string& topic, const std::vector<const it::stream_event*>& late) {
    const auto dead = dead_letters(dsn, schema, topic);
    std::set<it::location> want;
    for (const auto* e : late) want.insert({e->partition, e->offset});
    std::size_t good = 0;
    for (const auto& [where, error] : dead) {
        if (!want.count(where)) {
            ADD_FAILURE() << "[" << tag << "] unexpected dead letter at " << it::describe(where) << ": " << error;
            continue;
        }
        if (error.rfind("late event", 0) != 0)
            ADD_FAILURE() << "[" << tag << "] dead letter at " << it::describe(where)
                          << " does not start with \"late event\": " << error;
        else
            ++good;
    }
    for (const auto& w : want)
        if (!dead.count(w)) ADD_FAILURE() << "[" << tag << "] no dead letter for the late event at " << it::describe(w);
    std::printf("[%s] dead letters: %zu (expected late %zu, with a \"late event\" error %zu)\n", tag.c_str(),
                dead.size(), late.size(), good);
    if (!dead.empty()) std::printf("[%s]   e.g. %s\n", tag.c_str(), dead.begin()->second.c_str());
}

// Waits until GET latest of `e.key` shows event time e.ts (the write is visible).
bool wait_visible(int http_port, const it::stream_event& e, std::chrono::steady_clock::duration timeout) {
    const std::string want = it::rfc3339_ms(e.ts);
    return it::wait_until(timeout, [&] {
        const auto a = it::get_features(http_port, e.key, "fields=clicks");
        return a.status == 200 && a.body.is_object() && a.body.value("event_time", std::string()) == want;
    }, 20ms);
}

// The field value of the stream event an additive aggregation reads (clicks, spend: never null).
long double additive_value(const it::agg_spec& a, const it::stream_event& e) {
    if (a.op == agg_kind::count) return 1;
    return a.field == agg_source::clicks ? static_cast<long double>(e.clicks) : static_cast<long double>(e.spend);
}

// Tile error of one additive aggregation (count, sum) over the moments checked.
struct tile_error {
    std::size_t moments = 0;
    std::size_t affected = 0;             // tiled != exact
    long double max_abs = 0;              // max |tiled - exact| (model)
    long double max_served_abs = 0;      // max |served - exact|
    std::size_t max_tile_events = 0;      // most events of the one partial tile
    std::size_t not_one_tile = 0;         // exact - tiled is not the partial tile's part
};

void record_tile_error(tile_error& t, const it::agg_spec& a, const std::vector<it::model_event>& evs,
                       std::int64_t at_ms, const json& served) {
    const std::int64_t tile = a.window_ms / 60;
    const std::int64_t at_tile = at_ms >= 0 ? at_ms / tile : -((-at_ms + tile - 1) / tile);
    long double part = 0;
    std::size_t part_n = 0;
    for (const auto& me : evs) {
        const std::int64_t t = me.e->ts;
        const std::int64_t t_tile = t >= 0 ? t / tile : -((-t + tile - 1) / tile);
        if (t_tile == at_tile - 60 && t > at_ms - a.window_ms && t <= at_ms) {
            part += additive_value(a, *me.e);
            ++part_n;
        }
    }
    const auto exact = static_cast<long double>(it::exact_value(a, evs, at_ms).get<double>());
    const auto tiled = static_cast<long double>(it::tiled_value(a, evs, at_ms).get<double>());
    ++t.moments;
    if (exact != tiled) ++t.affected;
    t.max_abs = std::max(t.max_abs, std::fabs(exact - tiled));
    if (served.is_number())
        t.max_served_abs = std::max(t.max_served_abs, std::fabs(static_cast<long double>(served.get<double>()) - exact));
    t.max_tile_events = std::max(t.max_tile_events, part_n);
    if (std::fabs((exact - tiled) - part) > 1e-6L * std::max<long double>(1, std::fabs(part))) ++t.not_one_tile;
}

}  // namespace

class Aggregation : public it::stack_suite<Aggregation> {
public:
    static std::vector<it::topic_spec> topics() {
        return {{k_prop_topic, 4}, {k_asof_topic, 2}, {k_restart_topic, 2}, {k_late_topic, 1}, {k_move_topic, 1},
                {k_takeover_topic, 2}};
    }
};

// ---------------------------------------------------------------------------------------------
// 1. Property: a random stream through the real pipeline, each aggregation at many moments
//    equals the tiled brute force.
TEST_F(Aggregation, random_stream_matches_tiled_brute_force_online_and_as_of) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_prop";
    const std::string group = "agg-prop-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::uint64_t seed = test_seed();
    constexpr int k_keys = 50;
    constexpr std::int64_t k_lateness = 60 * k_min;
    std::printf("[agg-prop] seed=%llu (SLUICE_IT_SEED=%llu reproduces it) group=%s http=%d\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), group.c_str(), http_port);

    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
        it::make_agg("spend_avg_1h", agg_source::spend, agg_kind::avg, "1h"),
        it::make_agg("spend_min_1h", agg_source::spend, agg_kind::min, "1h"),
        it::make_agg("spend_max_1h", agg_source::spend, agg_kind::max, "1h"),
        it::make_agg("clicks_count_7d", agg_source::clicks, agg_kind::count, "7d"),
        it::make_agg("clicks_sum_2h", agg_source::clicks, agg_kind::sum, "2h"),
        it::make_agg("clicks_avg_30m", agg_source::clicks, agg_kind::avg, "30m"),
        it::make_agg("clicks_max_10m", agg_source::clicks, agg_kind::max, "10m"),
        it::make_agg("clicks_min_15m", agg_source::clicks, agg_kind::min, "15m"),
        it::make_agg("spend_last_30m", agg_source::spend, agg_kind::last, "30m"),
        it::make_agg("country_last_1h", agg_source::country, agg_kind::last, "1h"),
        it::make_agg("premium_count_1h", agg_source::premium, agg_kind::count, "1h"),
        it::make_agg("premium_last_2h", agg_source::premium, agg_kind::last, "2h"),
    };
    it::daemon_process daemon(it::aggregation_config(s, group, http_port, k_prop_topic, schema, aggs, "1h"));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-prop] "));

    // ---- the stream: per key, event times over the last 2 h with a gap, produced out of order
    //     (arrival = event time + up to 40 min; 1 in 50 up to 120 min: some of those are late),
    //      1 in 20 re-sent as an identical message (a new offset: a new event) ------------------
    std::mt19937_64 rng(seed);
    const std::int64_t now0 = it::now_ms();
    struct planned {
        it::stream_event e;
        std::int64_t arrival;
    };
    std::vector<planned> plan;
    std::size_t resends = 0;
    for (int k = 0; k < k_keys; ++k) {
        const std::string key = "prop-" + std::to_string(k);
        const int n = 4 + static_cast<int>(rng() % 40);
        const std::int64_t gap_from = now0 - 120 * k_min + static_cast<std::int64_t>(rng() % (100 * k_min));
        const std::int64_t gap_to = gap_from + (10 + static_cast<std::int64_t>(rng() % 30)) * k_min;
        std::set<std::int64_t> used;
        for (int i = 0; i < n; ++i) {
            std::int64_t ts = 0;
            do {
                ts = now0 - 120 * k_min + static_cast<std::int64_t>(rng() % (120 * k_min - 5 * k_sec));
            } while ((ts >= gap_from && ts < gap_to) || used.count(ts));
            used.insert(ts);
            const std::int64_t delay = rng() % 50 == 0 ? 70 * k_min + static_cast<std::int64_t>(rng() % (50 * k_min))
                                                       : static_cast<std::int64_t>(rng() % (40 * k_min));
            plan.push_back({random_event(rng, key, ts), ts + delay});
            if (rng() % 20 == 0) {
                plan.push_back({plan.back().e, ts + delay + static_cast<std::int64_t>(rng() % (10 * k_min))});
                ++resends;
            }
        }
    }
    std::stable_sort(plan.begin(), plan.end(), [](const planned& a, const planned& b) { return a.arrival < b.arrival; });
    std::vector<it::stream_event> produced;
    produced.reserve(plan.size());
    const auto t_produce = std::chrono::steady_clock::now();
    for (const auto& p : plan) {
        produced.push_back(p.e);
        it::produce_event(s.kafka, k_prop_topic, produced.back(), produced.size() % 7 == 0);
    }
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    const model m = build_model(produced, k_lateness);
    std::printf("[agg-prop] produced %zu events for %d keys (%zu identical re-sends), %zu accepted "
                "(%zu out of order, up to %.1f min), %zu expected late\n",
                produced.size(), k_keys, resends, m.accepted_count, m.out_of_order,
                static_cast<double>(m.max_disorder_ms) / k_min, m.late.size());

    // ---- drain --------------------------------------------------------------------------------
    const long long stored =
        it::wait_history(dsn, schema, k_prop_topic, static_cast<long long>(m.accepted_count), 90s, &daemon);
    it::wait_dead_letters(dsn, schema, k_prop_topic, static_cast<long long>(m.late.size()), 30s, &daemon);
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(daemon.running()) << "the daemon exited while draining";
    std::printf("[agg-prop] history %lld rows after %.2f s\n", stored, it::seconds_since(t_produce));
    const it::history_check h = it::check_history(dsn, schema, k_prop_topic, accepted_events(m));
    it::print_history_check("agg-prop", h);
    it::expect_each_event_once(h);
    expect_late_dead_letters("agg-prop", dsn, schema, k_prop_topic, m.late);

    // ---- online: GET latest of every key (computed at now) ---------------------------------
    std::vector<std::string> bad;
    std::size_t latest_checked = 0;
    for (const auto& [key, evs] : m.accepted) {
        const auto a = it::get_features(http_port, key);
        if (a.status != 200) {
            bad.push_back("latest " + key + ": status " + std::to_string(a.status) + " " + a.raw);
            continue;
        }
        append(bad, it::field_mismatches(a.body, *it::newest_at(evs, now0), "latest " + key));
        append(bad, it::compare_aggs(aggs, values_of(a.body), evs, a.sent_ms, a.received_ms, "latest " + key));
        ++latest_checked;
    }
    const std::size_t latest_bad = bad.size();
    it::report_mismatches("GET latest aggregations vs the tiled brute force", bad);

    // ---- as_of: now-90m, now-30m, now-1m, every event's time, and 1 ms before every 4th ------
    bad.clear();
    std::size_t asof_checked = 0, asof_404 = 0;
    std::map<std::string, tile_error> errors;
    const auto t_asof = std::chrono::steady_clock::now();
    for (const auto& [key, evs] : m.accepted) {
        std::set<std::int64_t> moments = {now0 - 90 * k_min, now0 - 30 * k_min, now0 - 1 * k_min};
        for (const auto& me : evs) {
            moments.insert(me.e->ts);
            if (me.seq % 4 == 0) moments.insert(me.e->ts - 1);
        }
        std::size_t i = 0;
        for (const std::int64_t at : moments) {
            const std::string what = "as_of " + key + " @" + it::rfc3339_ms(at);
            const auto a = it::get_features(http_port, key, as_of_query(at, ++i % 2 == 0));
            const it::stream_event* newest = it::newest_at(evs, at);
            if (newest == nullptr) {
                ++asof_404;
                if (a.status != 404) bad.push_back(what + ": no event at or before, expected 404, got " +
                                                   std::to_string(a.status) + " " + a.raw);
                continue;
            }
            if (a.status != 200) {
                bad.push_back(what + ": status " + std::to_string(a.status) + " " + a.raw);
                continue;
            }
            ++asof_checked;
            append(bad, it::field_mismatches(a.body, *newest, what));
            append(bad, it::compare_aggs(aggs, values_of(a.body), evs, at, at, what));
            for (const auto& ag : aggs) {
                if (ag.op != agg_kind::count && ag.op != agg_kind::sum) continue;
                if (ag.field != agg_source::clicks && ag.field != agg_source::spend) continue;
                record_tile_error(errors[ag.name], ag, evs, at, values_of(a.body).value(ag.name, json()));
            }
        }
    }
    std::printf("[agg-prop] latest: %zu keys checked, %zu mismatches; as_of: %zu moments checked (+%zu before the "
                "first event, 404 expected), %zu mismatches, in %.2f s\n",
                latest_checked, latest_bad, asof_checked, asof_404, bad.size(), it::seconds_since(t_asof));
    for (const auto& [name, t] : errors) {
        std::printf("[agg-prop] tile error %-16s: %zu/%zu moments differ from an exact window; max |tiled-exact| = "
                    "%.6Lg (served: %.6Lg), at most %zu events in the one partial tile; not one tile: %zu\n",
                    name.c_str(), t.affected, t.moments, t.max_abs, t.max_served_abs, t.max_tile_events,
                    t.not_one_tile);
        EXPECT_EQ(t.not_one_tile, 0u) << name << ": tiled - exact is not the part of one tile";
    }
    it::report_mismatches("GET as_of aggregations vs the tiled brute force", bad);

    // ---- fields= accepts aggregation names ---------------------------------------------------
    {
        const auto a = it::get_features(http_port, "prop-0", "fields=clicks,spend_sum_1h,clicks_count_7d");
        ASSERT_EQ(a.status, 200) << a.raw;
        std::set<std::string> names;
        for (const auto& [name, v] : values_of(a.body).items()) names.insert(name);
        EXPECT_EQ(names, (std::set<std::string>{"clicks", "spend_sum_1h", "clicks_count_7d"})) << a.raw;
    }

    // ---- stored: <schema>.user_activity_latest and the Redis hashes carry the aggregations at
    //      write time. Checked for keys whose last accepted event is also their newest (then that
    //      write saw every event); computed at a moment just before updated_at. ----------------
    bad.clear();
    std::string sql = "SELECT key, (extract(epoch from updated_at) * 1000)::bigint";
    for (const auto& a : aggs) sql += ", \"" + a.name + "\"::text";
    sql += " FROM " + schema + ".user_activity_latest";
    std::size_t stored_checked = 0;
    it::redis_client redis(s.redis.port());
    for (const auto& row : it::pg_query(dsn, sql)) {
        auto found = m.accepted.find(row[0]);
        if (found == m.accepted.end()) {
            bad.push_back("latest row for an unknown key " + row[0]);
            continue;
        }
        const auto& evs = found->second;
        bool last_is_newest = true;
        for (std::size_t i = 0; i + 1 < evs.size(); ++i) last_is_newest &= evs[i].e->ts < evs.back().e->ts;
        if (!last_is_newest) continue;
        ++stored_checked;
        const std::int64_t updated = std::stoll(row[1]);
        json pg_values = json::object(), redis_values = json::object();
        const auto hash = redis.hgetall(schema + ":user_activity:" + row[0]);
        for (std::size_t i = 0; i < aggs.size(); ++i) {
            pg_values[aggs[i].name] = it::pg_text_to_json(aggs[i], row[2 + i]);
            auto r = hash.find(aggs[i].name);
            if (r != hash.end()) redis_values[aggs[i].name] = json::parse(r->second, nullptr, false);
        }
        append(bad, it::compare_aggs(aggs, pg_values, evs, updated - 2000, updated, "PostgreSQL latest " + row[0]));
        append(bad, it::compare_aggs(aggs, redis_values, evs, updated - 2000, updated, "Redis " + row[0]));
    }
    std::printf("[agg-prop] stored aggregations: %zu keys checked in PostgreSQL latest and Redis, %zu mismatches\n",
                stored_checked, bad.size());
    it::report_mismatches("stored aggregations (latest table, Redis) vs the brute force at write time", bad);

    it::finish_test(daemon, "agg-prop", test_t0);
}

// ---------------------------------------------------------------------------------------------
// 2. as_of equals what the online path served at that moment.
TEST_F(Aggregation, as_of_equals_online_answers_captured_during_a_stream) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_asof";
    const std::string group = "agg-asof-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::uint64_t seed = test_seed() + 2;
    constexpr int k_keys = 16;
    std::printf("[agg-asof] seed=%llu group=%s http=%d\n", static_cast<unsigned long long>(seed), group.c_str(),
                http_port);
    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
        it::make_agg("spend_avg_1h", agg_source::spend, agg_kind::avg, "1h"),
        it::make_agg("spend_max_1h", agg_source::spend, agg_kind::max, "1h"),
        it::make_agg("clicks_count_7d", agg_source::clicks, agg_kind::count, "7d"),
        it::make_agg("clicks_sum_10m", agg_source::clicks, agg_kind::sum, "10m"),
        it::make_agg("spend_sum_1m", agg_source::spend, agg_kind::sum, "1m"),
        it::make_agg("clicks_min_1m", agg_source::clicks, agg_kind::min, "1m"),
        it::make_agg("spend_last_1h", agg_source::spend, agg_kind::last, "1h"),
        it::make_agg("country_last_1h", agg_source::country, agg_kind::last, "1h"),
    };
    it::daemon_process daemon(it::aggregation_config(s, group, http_port, k_asof_topic, schema, aggs, "1h"));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-asof] "));

    std::mt19937_64 rng(seed);
    std::vector<it::stream_event> produced;
    produced.reserve(4096);
    auto key_of = [](int k) { return "asof-" + std::to_string(k); };

    // ---- history before the stream: 6 events per key over the last 50 min, in time order ------
    const std::int64_t now0 = it::now_ms();
    for (int k = 0; k < k_keys; ++k) {
        std::set<std::int64_t> times;
        while (times.size() < 6) times.insert(now0 - 50 * k_min + static_cast<std::int64_t>(rng() % (48 * k_min)));
        for (const std::int64_t ts : times) {
            produced.push_back(random_event(rng, key_of(k), ts));
            it::produce_event(s.kafka, k_asof_topic, produced.back());
        }
    }
    ASSERT_NO_THROW(s.kafka.flush());
    it::wait_history(dsn, schema, k_asof_topic, static_cast<long long>(produced.size()), 60s, &daemon);

    // ---- the paced stream: one event every 50 ms at event time = now; about every 1.2 s the
    //      newest event's key is read online once its write is visible -----------------------
    struct capture {
        std::string key;
        std::int64_t at = 0;  // the moment just before the request
        json body;
    };
    std::vector<capture> captures;
    std::vector<std::string> bad;
    const auto stream_t0 = std::chrono::steady_clock::now();
    auto next_capture = stream_t0 + 1200ms;
    std::size_t retries = 0;
    while (std::chrono::steady_clock::now() - stream_t0 < 20s) {
        const int k = static_cast<int>(rng() % k_keys);
        produced.push_back(random_event(rng, key_of(k), it::now_ms()));
        it::produce_event(s.kafka, k_asof_topic, produced.back());
        if (std::chrono::steady_clock::now() >= next_capture) {
            next_capture += 1200ms;
            const it::stream_event& e = produced.back();
            ASSERT_NO_THROW(s.kafka.flush(10s));
            if (!wait_visible(http_port, e, 10s)) {
                bad.push_back("event of " + e.key + " at " + it::rfc3339_ms(e.ts) + " not visible within 10 s");
                continue;
            }
            for (int attempt = 0; attempt < 4; ++attempt) {
                const auto a = it::get_features(http_port, e.key);
                if (a.status != 200) {
                    bad.push_back("online " + e.key + ": status " + std::to_string(a.status) + " " + a.raw);
                    break;
                }
                if (it::tile_edge_between(aggs, a.sent_ms, a.received_ms)) {
                    ++retries;  // a window moved during the request: the moment is ambiguous
                    continue;
                }
                captures.push_back({e.key, a.sent_ms, a.body});
                break;
            }
            std::this_thread::sleep_for(2ms);  // the next event's time is after the captured moment
        }
        std::this_thread::sleep_for(50ms);
    }
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    const model m = build_model(produced, 60 * k_min);
    ASSERT_TRUE(m.late.empty());
    std::printf("[agg-asof] produced %zu events (%zu during the %.1f s stream), %zu online answers captured "
                "(%zu re-read at a tile edge)\n",
                produced.size(), produced.size() - 6 * k_keys, it::seconds_since(stream_t0), captures.size(), retries);
    EXPECT_GE(captures.size(), 10u);
    const long long stored =
        it::wait_history(dsn, schema, k_asof_topic, static_cast<long long>(produced.size()), 60s, &daemon);
    EXPECT_EQ(stored, static_cast<long long>(produced.size()));

    // ---- as_of = each captured moment ------------------------------------------------------
    std::size_t equal = 0, bit_equal = 0, compared_values = 0;
    double max_rel = 0;
    for (std::size_t i = 0; i < captures.size(); ++i) {
        const capture& c = captures[i];
        const std::string what = "as_of " + c.key + " @" + it::rfc3339_ms(c.at);
        const auto a = it::get_features(http_port, c.key, as_of_query(c.at, i % 2 == 0));
        if (a.status != 200) {
            bad.push_back(what + ": status " + std::to_string(a.status) + " " + a.raw);
            continue;
        }
        const std::size_t before = bad.size();
        if (a.body.value("event_time", std::string("?")) != c.body.value("event_time", std::string("!")))
            bad.push_back(what + ": event_time " + a.body.value("event_time", std::string("?")) + ", online " +
                          c.body.value("event_time", std::string("?")));
        const json& online = values_of(c.body);
        const json& past = values_of(a.body);
        for (const auto& [name, v] : online.items()) {
            ++compared_values;
            if (!past.contains(name)) {
                bad.push_back(what + ": no " + name);
                continue;
            }
            if (past[name] == v) {
                ++bit_equal;
                continue;
            }
            auto spec = std::find_if(aggs.begin(), aggs.end(), [&](const it::agg_spec& x) { return x.name == name; });
            if (spec == aggs.end()) {
                bad.push_back(what + ": field " + name + " " + past[name].dump() + ", online " + v.dump());
            } else if (auto mm = it::agg_mismatch(*spec, v, past[name])) {
                bad.push_back(what + " vs online: " + *mm);
            } else if (v.is_number() && past[name].is_number() && v.get<double>() != 0) {
                max_rel = std::max(max_rel, std::fabs(past[name].get<double>() / v.get<double>() - 1));
            }
        }
        // Both also equal the brute force at that moment.
        const auto& evs = m.accepted.at(c.key);
        append(bad, it::compare_aggs(aggs, online, evs, c.at, c.at, "online " + c.key + " @" + it::rfc3339_ms(c.at)));
        append(bad, it::compare_aggs(aggs, past, evs, c.at, c.at, what));
        if (bad.size() == before) ++equal;
    }
    std::printf("[agg-asof] as_of = online for %zu/%zu captured answers (%zu/%zu values bit-identical, max relative "
                "difference of the rest %.3g)\n",
                equal, captures.size(), bit_equal, compared_values, max_rel);
    it::report_mismatches("as_of vs the online answers", bad);

    it::finish_test(daemon, "agg-asof", test_t0);
}

// ---------------------------------------------------------------------------------------------
// Tests 3 and 6: event times in the last 40 min (well inside every window for the minutes a test
// takes), 8-14 per key, in two rounds: each key's newest event and about half of the others
// first, the rest (all older than the newest) in the second. So the aggregations stored at the
// newest event's write miss the second round, and only state rebuilt from history serves them.
std::array<std::vector<it::stream_event>, 2> two_rounds(std::mt19937_64& rng, const std::string& key_prefix, int keys,
                                                        std::int64_t now0) {
    std::array<std::vector<it::stream_event>, 2> rounds;
    for (int k = 0; k < keys; ++k) {
        std::set<std::int64_t> times;
        const std::size_t n = 8 + rng() % 7;
        while (times.size() < n) times.insert(now0 - 40 * k_min + static_cast<std::int64_t>(rng() % (38 * k_min)));
        std::vector<it::stream_event> of_key;
        for (const std::int64_t ts : times) of_key.push_back(random_event(rng, key_prefix + std::to_string(k), ts));
        rounds[0].push_back(of_key.back());  // the newest
        of_key.pop_back();
        std::shuffle(of_key.begin(), of_key.end(), rng);
        for (std::size_t i = 0; i < of_key.size(); ++i) rounds[i % 2 == 0 ? 0 : 1].push_back(of_key[i]);
    }
    for (auto& round : rounds) std::shuffle(round.begin(), round.end(), rng);
    return rounds;
}

// Produces `events` to `topic` (appended to `produced`) and waits until history holds all of
// `produced`.
void produce_and_store(it::test_stack& s, const std::string& schema, const std::string& topic,
                       std::vector<it::stream_event>& events, std::vector<it::stream_event>& produced,
                       it::daemon_process& daemon) {
    for (auto& e : events) {
        produced.push_back(e);
        it::produce_event(s.kafka, topic, produced.back());
    }
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    it::wait_history(s.postgres.dsn(), schema, topic, static_cast<long long>(produced.size()), 60s, &daemon);
}

// For keys <prefix>0..9, one new event at now and one 20 min back; once history holds them, the
// aggregations `http_port` serves for those keys are checked against the brute force (into `bad`).
void new_events_add_up(it::test_stack& s, const std::string& schema, const std::string& topic,
                       const std::string& key_prefix, std::mt19937_64& rng, std::vector<it::stream_event>& produced,
                       it::daemon_process& daemon, int http_port, const std::vector<it::agg_spec>& aggs,
                       std::vector<std::string>& bad) {
    for (int k = 0; k < 10; ++k) {
        const std::string key = key_prefix + std::to_string(k);
        produced.push_back(random_event(rng, key, it::now_ms() - 1000 - k));
        it::produce_event(s.kafka, topic, produced.back());
        produced.push_back(random_event(rng, key, it::now_ms() - 20 * k_min - k));
        it::produce_event(s.kafka, topic, produced.back());
    }
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    const long long stored =
        it::wait_history(s.postgres.dsn(), schema, topic, static_cast<long long>(produced.size()), 60s, &daemon);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(stored, static_cast<long long>(produced.size())) << "history with the new events";
    const model m = build_model(produced, 60 * k_min);
    for (int k = 0; k < 10; ++k) {
        const std::string key = key_prefix + std::to_string(k);
        const auto a = it::get_features(http_port, key);
        if (a.status != 200) {
            bad.push_back("new events " + key + ": status " + std::to_string(a.status));
            continue;
        }
        append(bad, it::compare_aggs(aggs, values_of(a.body), m.accepted.at(key), a.sent_ms, a.received_ms,
                                     "new events " + key));
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Aggregation state survives kill -9.
TEST_F(Aggregation, state_survives_kill9_and_restart) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_restart";
    const std::string group = "agg-restart-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::uint64_t seed = test_seed() + 3;
    constexpr int k_keys = 30;
    std::printf("[agg-restart] seed=%llu group=%s http=%d\n", static_cast<unsigned long long>(seed), group.c_str(),
                http_port);
    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
        it::make_agg("spend_avg_1h", agg_source::spend, agg_kind::avg, "1h"),
        it::make_agg("spend_min_1h", agg_source::spend, agg_kind::min, "1h"),
        it::make_agg("spend_max_1h", agg_source::spend, agg_kind::max, "1h"),
        it::make_agg("clicks_count_7d", agg_source::clicks, agg_kind::count, "7d"),
        it::make_agg("clicks_sum_7d", agg_source::clicks, agg_kind::sum, "7d"),
        it::make_agg("spend_last_1h", agg_source::spend, agg_kind::last, "1h"),
        it::make_agg("country_last_7d", agg_source::country, agg_kind::last, "7d"),
        it::make_agg("premium_count_7d", agg_source::premium, agg_kind::count, "7d"),
    };
    it::daemon_process daemon(it::aggregation_config(s, group, http_port, k_restart_topic, schema, aggs, "1h"));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-restart] "));

    // The two rounds of two_rounds(), the second once the first is stored.
    std::mt19937_64 rng(seed);
    std::vector<it::stream_event> produced;
    produced.reserve(1024);
    const std::int64_t now0 = it::now_ms();
    auto rounds = two_rounds(rng, "restart-", k_keys, now0);
    for (auto& round : rounds) ASSERT_NO_FATAL_FAILURE(produce_and_store(s, schema, k_restart_topic, round, produced, daemon));
    model m = build_model(produced, 60 * k_min);
    ASSERT_TRUE(m.late.empty());
    std::printf("[agg-restart] %zu events for %d keys in two rounds of %zu and %zu (%zu out of order, up to %.1f "
                "min)\n",
                produced.size(), k_keys, rounds[0].size(), rounds[1].size(), m.out_of_order,
                static_cast<double>(m.max_disorder_ms) / k_min);

    // ---- before: every key, online ----------------------------------------------------------
    std::vector<std::string> bad;
    std::map<std::string, json> before;
    for (const auto& [key, evs] : m.accepted) {
        const auto a = it::get_features(http_port, key);
        if (a.status != 200) {
            bad.push_back("before " + key + ": status " + std::to_string(a.status) + " " + a.raw);
            continue;
        }
        before[key] = a.body;
        append(bad, it::compare_aggs(aggs, values_of(a.body), evs, a.sent_ms, a.received_ms, "before " + key));
    }
    it::report_mismatches("aggregations before the crash vs the brute force", bad);
    {
        // How many keys' stored (write-time) aggregations differ from the online ones: the keys
        // whose right answer after the restart must come from rebuilt state.
        it::redis_client redis(s.redis.port());
        std::size_t stale = 0;
        for (const auto& [key, body] : before) {
            const auto hash = redis.hgetall(schema + ":user_activity:" + key);
            for (const auto& spec : aggs) {
                auto r = hash.find(spec.name);
                const json stored = r == hash.end() ? json() : json::parse(r->second, nullptr, false);
                if (it::agg_mismatch(spec, values_of(body).value(spec.name, json()), stored)) {
                    ++stale;
                    break;
                }
            }
        }
        std::printf("[agg-restart] before the crash: %zu/%zu keys have Redis aggregations (write time) that differ "
                    "from the online ones\n",
                    stale, before.size());
    }

    // ---- kill -9, restart, read again ------------------------------------------------------
    const auto t_kill = std::chrono::steady_clock::now();
    const std::size_t rebalances_before = it::rebalance_lines(daemon.log_path()).size();
    const auto st = daemon.kill9();
    std::printf("[agg-restart] killed: %s\n", st.describe().c_str());
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-restart] after kill -9: "));
    // An instance serves its own aggregation state only for keys of partitions it owns. The
    // killed instance's members leave the group only when their session times out, which can
    // cost the new one a second rebalance after it is ready: read once it owns both partitions
    // and no rebalance has come for longer than the session timeout (6 s).
    ASSERT_TRUE(it::wait_assignment_settled(daemon.log_path(), rebalances_before, 2, 7s, 60s))
        << "the restarted daemon did not settle on owning both partitions";
    const double restart_s = it::seconds_since(t_kill);
    {
        const std::string log = it::read_file(daemon.log_path());
        const auto at = log.rfind("aggregation state rebuilt");
        if (at != std::string::npos)
            std::printf("[agg-restart] daemon: %s\n", log.substr(at, log.find('\n', at) - at).c_str());
    }
    bad.clear();
    std::size_t equal_keys = 0, model_bad_keys = 0;
    for (const auto& [key, evs] : m.accepted) {
        const auto a = it::get_features(http_port, key);
        if (a.status != 200) {
            bad.push_back("after " + key + ": status " + std::to_string(a.status) + " " + a.raw);
            continue;
        }
        const auto b = before.find(key);
        if (b == before.end()) continue;
        const std::size_t n = bad.size();
        const json& was = values_of(b->second);
        for (const auto& spec : aggs) {
            if (auto mm = it::agg_mismatch(spec, was.value(spec.name, json()), values_of(a.body).value(spec.name, json())))
                bad.push_back("after the restart " + key + " vs before: " + *mm);
        }
        append(bad, it::field_mismatches(a.body, *it::newest_at(evs, now0), "after the restart " + key));
        if (bad.size() == n) ++equal_keys;
        const auto vs_model =
            it::compare_aggs(aggs, values_of(a.body), evs, a.sent_ms, a.received_ms, "after the restart (model) " + key);
        if (!vs_model.empty()) ++model_bad_keys;
    }
    std::printf("[agg-restart] kill -9 -> ready, owning both partitions with no rebalance for 7 s, in %.1f s; "
                "%zu/%zu keys read equal before and after (%zu keys differ from the brute force)\n",
                restart_s, equal_keys, before.size(), model_bad_keys);
    if (equal_keys != before.size()) {
        // What the read path served instead: the aggregations stored in Redis at write time?
        it::redis_client redis(s.redis.port());
        std::size_t like_redis = 0, differing = 0;
        for (const auto& [key, evs] : m.accepted) {
            const auto a = it::get_features(http_port, key);
            const auto hash = redis.hgetall(schema + ":user_activity:" + key);
            bool differs = false, same_as_redis = true;
            for (const auto& spec : aggs) {
                const json served = values_of(a.body).value(spec.name, json());
                if (it::agg_mismatch(spec, values_of(before[key]).value(spec.name, json()), served)) differs = true;
                auto r = hash.find(spec.name);
                const json stored = r == hash.end() ? json() : json::parse(r->second, nullptr, false);
                if (it::agg_mismatch(spec, stored, served)) same_as_redis = false;
            }
            if (differs) {
                ++differing;
                if (same_as_redis) ++like_redis;
            }
        }
        std::printf("[agg-restart] of the %zu keys that differ, %zu serve exactly the aggregations stored in Redis "
                    "at write time\n",
                    differing, like_redis);
    }
    it::report_mismatches("aggregations after kill -9 and restart vs before", bad);

    // ---- and new events add to the rebuilt state: for 10 keys one at now and one 20 min back --
    bad.clear();
    ASSERT_NO_FATAL_FAILURE(
        new_events_add_up(s, schema, k_restart_topic, "restart-", rng, produced, daemon, http_port, aggs, bad));
    EXPECT_EQ(it::dead_letter_rows(dsn, schema, k_restart_topic), 0);
    std::printf("[agg-restart] 20 new events after the restart: %zu mismatches with the brute force\n", bad.size());
    it::report_mismatches("aggregations of new events added to the rebuilt state", bad);

    it::finish_test(daemon, "agg-restart", test_t0);
}

// ---------------------------------------------------------------------------------------------
// 4. Later than allowed_lateness: a dead letter that changes nothing; within it: counted.
TEST_F(Aggregation, late_events_are_dead_letters_and_events_within_the_lateness_count) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_late";
    const std::string group = "agg-late-" + it::random_suffix();
    const int http_port = it::free_port();
    constexpr std::int64_t k_lateness = 10 * k_min;
    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
        it::make_agg("clicks_count_1h", agg_source::clicks, agg_kind::count, "1h"),
        it::make_agg("spend_max_1h", agg_source::spend, agg_kind::max, "1h"),
        it::make_agg("spend_last_1h", agg_source::spend, agg_kind::last, "1h"),
    };
    it::daemon_process daemon(it::aggregation_config(s, group, http_port, k_late_topic, schema, aggs, "10m"));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-late] "));

    std::vector<it::stream_event> produced;
    produced.reserve(64);
    const std::int64_t base = it::now_ms() - 2 * k_min;
    auto send = [&](const std::string& key, std::int64_t ts, double spend) {
        it::stream_event e;
        e.key = key;
        e.ts = ts;
        e.clicks = static_cast<std::int64_t>(produced.size()) + 1;
        e.spend = spend;
        produced.push_back(e);
        it::produce_event(s.kafka, k_late_topic, produced.back());
    };
    auto read = [&](const std::string& key) {
        const auto a = it::get_features(http_port, key);
        EXPECT_EQ(a.status, 200) << key << ": " << a.raw;
        return a;
    };
    auto show = [](const json& body) {
        const json& v = values_of(body);
        return "sum=" + v.value("spend_sum_1h", json()).dump() + " count=" + v.value("clicks_count_1h", json()).dump() +
               " max=" + v.value("spend_max_1h", json()).dump() + " last=" + v.value("spend_last_1h", json()).dump();
    };

    // ---- A: one event, then one 15 min older (late), then within and at the lateness edge -----
    send("late-A", base, 10.25);
    send("late-C", base - 30 * k_min, 3.0);
    send("late-C", base, 4.0);
    ASSERT_NO_THROW(s.kafka.flush());
    ASSERT_EQ(it::wait_history(dsn, schema, k_late_topic, 3, 30s, &daemon), 3);
    const auto l1 = read("late-A");
    std::printf("[agg-late] A after 1 event:             %s\n", show(l1.body).c_str());

    send("late-A", base - 15 * k_min, 100.0);  // 15 min older than the newest: late
    ASSERT_NO_THROW(s.kafka.flush());
    EXPECT_EQ(it::wait_dead_letters(dsn, schema, k_late_topic, 1, 30s, &daemon), 1);
    std::this_thread::sleep_for(300ms);
    const auto l2 = read("late-A");
    std::printf("[agg-late] A after a late event (-15m):  %s\n", show(l2.body).c_str());
    EXPECT_EQ(values_of(l2.body), values_of(l1.body)) << "a late event changed the aggregations";
    EXPECT_EQ(it::history_rows(dsn, schema, k_late_topic), 3) << "a late event reached history";

    send("late-A", base - 5 * k_min, 1.5);            // within the lateness
    send("late-A", base - k_lateness, 2.0);           // exactly the lateness: not later than it
    send("late-A", base - k_lateness - 1, 1000.0);    // 1 ms beyond: late
    // B: all at once (one batch, most likely): newest, then 11 min older (late), then 9 min older.
    send("late-B", base, 5.0);
    send("late-B", base - 11 * k_min, 50.0);
    send("late-B", base - 9 * k_min, 0.5);
    // C: the lateness counts from the key's newest event (base), not its oldest (base - 30m).
    send("late-C", base - 25 * k_min, 7.0);
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    const model m = build_model(produced, k_lateness);
    ASSERT_EQ(m.late.size(), 4u);
    ASSERT_EQ(m.accepted_count, 7u);
    const long long stored =
        it::wait_history(dsn, schema, k_late_topic, static_cast<long long>(m.accepted_count), 30s, &daemon);
    it::wait_dead_letters(dsn, schema, k_late_topic, static_cast<long long>(m.late.size()), 30s, &daemon);
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(stored, 7);
    const it::history_check h = it::check_history(dsn, schema, k_late_topic, accepted_events(m));
    it::expect_each_event_once(h);
    expect_late_dead_letters("agg-late", dsn, schema, k_late_topic, m.late);

    std::vector<std::string> bad;
    for (const auto& [key, evs] : m.accepted) {
        const auto a = read(key);
        std::printf("[agg-late] %s: %zu accepted events:  %s\n", key.c_str(), evs.size(), show(a.body).c_str());
        append(bad, it::compare_aggs(aggs, values_of(a.body), evs, a.sent_ms, a.received_ms, "latest " + key));
        const auto p = it::get_features(http_port, key, as_of_query(it::now_ms(), true));
        if (p.status != 200)
            bad.push_back("as_of now " + key + ": status " + std::to_string(p.status));
        else
            append(bad, it::compare_aggs(aggs, values_of(p.body), evs, p.sent_ms, p.sent_ms, "as_of now " + key));
    }
    const auto l3 = read("late-A");
    EXPECT_EQ(values_of(l3.body).value("clicks_count_1h", json()), json(3)) << show(l3.body);
    EXPECT_NEAR(values_of(l3.body).value("spend_sum_1h", json(0.0)).get<double>(), 10.25 + 1.5 + 2.0, 1e-9);
    it::report_mismatches("aggregations with late events vs the brute force", bad);

    it::finish_test(daemon, "agg-late", test_t0);
}

// ---------------------------------------------------------------------------------------------
// 5. Windows move with time: a 1-minute window empties without new events.
TEST_F(Aggregation, one_minute_window_falls_to_zero_without_new_events) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_move";
    const std::string group = "agg-move-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1m", agg_source::spend, agg_kind::sum, "1m"),
        it::make_agg("clicks_count_1m", agg_source::clicks, agg_kind::count, "1m"),
        it::make_agg("spend_max_1m", agg_source::spend, agg_kind::max, "1m"),
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
    };
    it::daemon_process daemon(it::aggregation_config(s, group, http_port, k_move_topic, schema, aggs, "1h"));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[agg-move] "));

    // Six events, one a second, at event time = now.
    std::vector<it::stream_event> produced;
    produced.reserve(16);
    for (int i = 0; i < 6; ++i) {
        it::stream_event e;
        e.key = "move-1";
        e.ts = it::now_ms();
        e.clicks = i;
        e.spend = 1.25 * (i + 1);
        produced.push_back(e);
        it::produce_event(s.kafka, k_move_topic, produced.back());
        ASSERT_NO_THROW(s.kafka.flush(10s));
        if (i < 5) std::this_thread::sleep_for(1s);
    }
    ASSERT_NO_THROW(it::record_deliveries(s.kafka, produced));
    const model m = build_model(produced, 60 * k_min);
    const auto& evs = m.accepted.at("move-1");
    const it::stream_event& last = produced.back();
    ASSERT_TRUE(wait_visible(http_port, last, 15s)) << "the last event never became visible";

    std::vector<std::string> bad;
    const auto first = it::get_features(http_port, "move-1");
    ASSERT_EQ(first.status, 200) << first.raw;
    append(bad, it::compare_aggs(aggs, values_of(first.body), evs, first.sent_ms, first.received_ms, "at once"));
    const double total = 1.25 * (1 + 2 + 3 + 4 + 5 + 6);
    std::printf("[agg-move] t=+%.1f s after the last event: spend_sum_1m=%s clicks_count_1m=%s (sum of all %.2f)\n",
                static_cast<double>(first.sent_ms - last.ts) / 1000, values_of(first.body).value("spend_sum_1m", json()).dump().c_str(),
                values_of(first.body).value("clicks_count_1m", json()).dump().c_str(), total);

    // The 1 m window (1 s tiles) is empty from the start of the 60th tile after the last event's.
    const std::int64_t empty_from = (last.ts / 1000 + 60) * 1000;
    while (it::now_ms() < empty_from + 1500) {
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
            8s, std::chrono::milliseconds(std::max<std::int64_t>(100, empty_from + 1500 - it::now_ms()))));
        const auto a = it::get_features(http_port, "move-1");
        if (a.status != 200) {
            bad.push_back("status " + std::to_string(a.status) + " " + a.raw);
            continue;
        }
        append(bad, it::compare_aggs(aggs, values_of(a.body), evs, a.sent_ms, a.received_ms,
                                     "+" + std::to_string((a.sent_ms - last.ts) / 1000) + " s"));
        std::printf("[agg-move] t=+%.1f s: spend_sum_1m=%s clicks_count_1m=%s spend_max_1m=%s spend_sum_1h=%s\n",
                    static_cast<double>(a.sent_ms - last.ts) / 1000, values_of(a.body).value("spend_sum_1m", json()).dump().c_str(),
                    values_of(a.body).value("clicks_count_1m", json()).dump().c_str(), values_of(a.body).value("spend_max_1m", json()).dump().c_str(),
                    values_of(a.body).value("spend_sum_1h", json()).dump().c_str());
    }
    const auto end = it::get_features(http_port, "move-1");
    ASSERT_EQ(end.status, 200) << end.raw;
    const json& v = values_of(end.body);
    EXPECT_TRUE(v.value("spend_sum_1m", json()).is_number() && v["spend_sum_1m"].get<double>() == 0.0)
        << "spend_sum_1m did not fall to 0: " << v.dump();
    EXPECT_EQ(v.value("clicks_count_1m", json()), json(0)) << v.dump();
    EXPECT_TRUE(v.value("spend_max_1m", json(0)).is_null()) << v.dump();
    EXPECT_NEAR(v.value("spend_sum_1h", json(0.0)).get<double>(), total, 1e-9) << v.dump();
    // From history, the same: everything at the last event's time, nothing now.
    const auto then = it::get_features(http_port, "move-1", as_of_query(last.ts, false));
    const auto now = it::get_features(http_port, "move-1", as_of_query(it::now_ms(), true));
    ASSERT_EQ(then.status, 200) << then.raw;
    ASSERT_EQ(now.status, 200) << now.raw;
    append(bad, it::compare_aggs(aggs, values_of(then.body), evs, last.ts, last.ts, "as_of last event"));
    append(bad, it::compare_aggs(aggs, values_of(now.body), evs, now.sent_ms, now.sent_ms, "as_of now"));
    std::printf("[agg-move] as_of last event: spend_sum_1m=%s; as_of now: spend_sum_1m=%s clicks_count_1m=%s\n",
                values_of(then.body).value("spend_sum_1m", json()).dump().c_str(), values_of(now.body).value("spend_sum_1m", json()).dump().c_str(),
                values_of(now.body).value("clicks_count_1m", json()).dump().c_str());
    it::report_mismatches("a 1-minute window moving with time", bad);

    it::finish_test(daemon, "agg-move", test_t0);
}

// ---------------------------------------------------------------------------------------------
// 6. Two instances in one group, one partition each; one stops (SIGTERM) and the other takes its
// partition over. The taking instance never saw that partition's events: what it serves for
// those keys must come from state rebuilt from the history rows the stopped one wrote.
TEST_F(Aggregation, an_instance_taking_over_a_partition_rebuilds_its_state_from_history) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn();
    const std::string schema = "agg_takeover";
    const std::string group = "agg-takeover-" + it::random_suffix();
    const int port_a = it::free_port();
    const int port_b = it::free_port();
    const std::uint64_t seed = test_seed() + 6;
    constexpr int k_keys = 30;
    std::printf("[agg-takeover] seed=%llu group=%s http=%d,%d\n", static_cast<unsigned long long>(seed), group.c_str(),
                port_a, port_b);
    const std::vector<it::agg_spec> aggs = {
        it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
        it::make_agg("spend_avg_1h", agg_source::spend, agg_kind::avg, "1h"),
        it::make_agg("spend_max_1h", agg_source::spend, agg_kind::max, "1h"),
        it::make_agg("clicks_count_7d", agg_source::clicks, agg_kind::count, "7d"),
        it::make_agg("country_last_7d", agg_source::country, agg_kind::last, "7d"),
    };
    // One consumer each, so that each instance owns one of the two partitions.
    const auto config_of = [&](int port) {
        auto cfg = it::aggregation_config(s, group, port, k_takeover_topic, schema, aggs, "1h");
        cfg["kafka"]["consumer_threads"] = 1;
        return cfg;
    };
    it::daemon_process a(config_of(port_a));
    it::daemon_process b(config_of(port_b));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(a, port_a, "[agg-takeover] a: "));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(b, port_b, "[agg-takeover] b: "));
    ASSERT_TRUE(it::wait_assignment_settled(a.log_path(), 0, 1, 3s, 60s)) << "a did not settle on one partition";
    ASSERT_TRUE(it::wait_assignment_settled(b.log_path(), 0, 1, 3s, 60s)) << "b did not settle on one partition";

    // As in test 3: the two rounds of two_rounds(), the second once the first is stored.
    std::mt19937_64 rng(seed);
    std::vector<it::stream_event> produced;
    produced.reserve(1024);
    const std::int64_t now0 = it::now_ms();
    auto rounds = two_rounds(rng, "takeover-", k_keys, now0);
    for (auto& round : rounds) ASSERT_NO_FATAL_FAILURE(produce_and_store(s, schema, k_takeover_topic, round, produced, b));
    model m = build_model(produced, 60 * k_min);
    ASSERT_TRUE(m.late.empty());

    // Before: b answers its own partition's keys from its state and a's from the stored values.
    std::size_t keys_off_before = 0;
    for (const auto& [key, evs] : m.accepted) {
        const auto r = it::get_features(port_b, key);
        if (r.status != 200 || !it::compare_aggs(aggs, values_of(r.body), evs, r.sent_ms, r.received_ms, key).empty())
            ++keys_off_before;
    }

    // a stops; b takes both partitions (counted over b's whole log: an eager rebalance revokes
    // what b had before it assigns both).
    const auto st = a.terminate(30s);
    ASSERT_TRUE(st.has_value() && st->ok()) << (st ? st->describe() : std::string("no exit within 30 s"));
    ASSERT_TRUE(it::wait_assignment_settled(b.log_path(), 0, 2, 3s, 60s)) << "b did not take a's partition";
    {
        const std::string log = it::read_file(b.log_path());
        std::size_t at = 0;
        while ((at = log.find("aggregation state caught up", at)) != std::string::npos) {
            const auto start = log.rfind('\n', at);
            std::printf("[agg-takeover] b: %s\n",
                        log.substr(start + 1, log.find('\n', at) - start - 1).c_str());
            ++at;
        }
    }

    std::vector<std::string> bad;
    for (const auto& [key, evs] : m.accepted) {
        const auto r = it::get_features(port_b, key);
        if (r.status != 200) {
            bad.push_back("after the takeover " + key + ": status " + std::to_string(r.status) + " " + r.raw);
            continue;
        }
        append(bad, it::compare_aggs(aggs, values_of(r.body), evs, r.sent_ms, r.received_ms, "after the takeover " + key));
    }
    std::printf("[agg-takeover] %zu events for %d keys; b read %zu keys off the brute force before the takeover "
                "(a's partition, stored at write time), %zu mismatches after it\n",
                produced.size(), k_keys, keys_off_before, bad.size());
    it::report_mismatches("aggregations served by b after taking a's partition over", bad);

    // New events, the second 20 min back, add to the rebuilt state.
    bad.clear();
    ASSERT_NO_FATAL_FAILURE(
        new_events_add_up(s, schema, k_takeover_topic, "takeover-", rng, produced, b, port_b, aggs, bad));
    it::report_mismatches("aggregations of new events added to the taken-over state", bad);

    it::finish_test(b, "agg-takeover", test_t0);
}
