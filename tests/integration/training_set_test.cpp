// Point-in-time training sets (README, "Train on what you serve") against the real binary with
// PostgreSQL, Redis and the Kafka protocol:
//
//   1. a real-time stream with out-of-order events, late events within and beyond the lateness,
//      identical re-sends, keys whose records expire by TTL, and aggregations; 10,000 random
//      (key, timestamp) rows exported over HTTP, plainly and as known at each row's time: every
//      value and status equals a brute force over the produced events (written here, independently
//      of the daemon; arrival times read from history's ingested_at), and equals the online as_of
//      answer for a sample of the same keys and moments; known-at mode differs from plain mode on
//      exactly the rows the brute force says a not-yet-arrived record decides (counted);
//   2. one record that arrives a minute after its event time: plain mode sees it from its event
//      time, known-at mode only from its arrival;
//   3. the forms and their edges: CSV in and out, rows from a PostgreSQL table, `sluice export` to a
//      file (atomic: nothing at the name on failure), a bad row in the first chunk (400 naming it)
//      and after it (the transfer is cut off, not ended cleanly), the body limit (413), the cap on
//      concurrent exports (429).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/aggregation_support.hpp"
#include "integration/support/audit.hpp"
#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/process.hpp"
#include "integration/support/stream.hpp"
#include "integration/support/suite.hpp"
#include "integration/support/temp_dir.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;
using it::agg_kind;
using it::agg_source;

namespace {

constexpr std::int64_t k_sec = 1000;
constexpr std::int64_t k_min = 60 * k_sec;
constexpr const char* k_stream_topic = "train-stream";
constexpr const char* k_late_topic = "train-late";
constexpr const char* k_forms_topic = "train-forms";
const char* const k_features = "user_activity:clicks,user_activity:spend,user_activity:country,user_activity:premium,"
                               "user_activity:spend_sum_1h,user_activity:clicks_count_10m,user_activity:spend_last_30m,"
                               "user_activity:country_last_1h";

class TrainingSets : public it::stack_suite<TrainingSets> {
public:
    static std::vector<it::topic_spec> topics() { return {{k_stream_topic, 2}, {k_late_topic, 1}, {k_forms_topic, 1}}; }
};

std::vector<it::agg_spec> test_aggs() {
    return {it::make_agg("spend_sum_1h", agg_source::spend, agg_kind::sum, "1h"),
            it::make_agg("clicks_count_10m", agg_source::clicks, agg_kind::count, "10m"),
            it::make_agg("spend_last_30m", agg_source::spend, agg_kind::last, "30m"),
            it::make_agg("country_last_1h", agg_source::country, agg_kind::last, "1h")};
}

json training_config(it::test_stack& s, const std::string& group, int http_port, const std::string& topic,
                     const std::string& schema) {
    json cfg = it::aggregation_config(s, group, http_port, topic, schema, test_aggs(), "10m");
    cfg["feature_sets"][0]["ttl"] = "30m";
    return cfg;
}

std::uint64_t test_seed() {
    const long long fixed = it::env_int("SLUICE_IT_SEED", 0);
    return fixed > 0 ? static_cast<std::uint64_t>(fixed) : std::random_device{}();
}

it::stream_event random_event(std::mt19937_64& rng, const std::string& key, std::int64_t ts) {
    // Strings PostgreSQL's array text quotes and escapes too.
    static const char* const countries[] = {"DE", "FR", "US", "??", "JP", "a \"b\", c\\d", "NULL", "{x}"};
    it::stream_event e;
    e.key = key;
    e.ts = ts;
    e.clicks = static_cast<std::int64_t>(rng() % 500);
    e.spend = static_cast<double>(rng() % 50001) / 100.0;
    e.country = countries[rng() % 8];
    if (rng() % 3 != 0) e.premium = rng() % 2 == 0;
    return e;
}

// The events of one key the daemon accepted, in production order, with their arrival times.
struct keyed {
    std::vector<it::model_event> events;
    std::vector<std::int64_t> arrived_ms;  // ingested_at, parallel to events
};

struct model {
    std::map<std::string, keyed> keys;
    std::size_t accepted = 0, late = 0;
};

model build_model(const std::vector<it::stream_event>& produced, std::int64_t lateness_ms) {
    model m;
    std::map<std::string, std::int64_t> newest;
    for (const auto& e : produced) {
        auto n = newest.find(e.key);
        if (n != newest.end() && e.ts < n->second - lateness_ms) {
            ++m.late;
            continue;
        }
        auto& k = m.keys[e.key];
        k.events.push_back({&e, k.events.size()});
        ++m.accepted;
        newest[e.key] = n == newest.end() ? e.ts : std::max(n->second, e.ts);
    }
    return m;
}

// ingested_at of every history row of the topic, by (partition, offset).
std::map<std::pair<int, long long>, std::int64_t> arrival_times(const std::string& dsn, const std::string& schema,
                                                                const std::string& topic) {
    std::map<std::pair<int, long long>, std::int64_t> out;
    for (const auto& r : it::pg_query(dsn,
                                      "SELECT src_partition, src_offset, (extract(epoch from ingested_at) * 1000)::bigint "
                                      "FROM " + schema + ".user_activity_history WHERE src_topic = $1",
                                      {topic}))
        out[{std::stoi(r[0]), std::stoll(r[1])}] = std::stoll(r[2]);
    return out;
}

// What a training-set row must hold for (key, at): the newest accepted event at or before `at`
// (known_at: among those arrived by then), its status, and the aggregations over the same events.
struct expected_row {
    std::string status = "NOT_FOUND";
    json values = json::object();  // the seven features, null unless PRESENT
};

expected_row brute_force(const keyed* k, std::int64_t at, bool known_at, const std::vector<it::agg_spec>& aggs,
                         std::int64_t ttl_ms) {
    expected_row out;
    for (const char* f : {"clicks", "spend", "country", "premium", "spend_sum_1h", "clicks_count_10m", "spend_last_30m",
                          "country_last_1h"})
        out.values[f] = nullptr;
    if (k == nullptr) return out;
    std::vector<it::model_event> seen;
    for (std::size_t i = 0; i < k->events.size(); ++i)
        if (!known_at || k->arrived_ms[i] <= at) seen.push_back({k->events[i].e, seen.size()});
    const it::stream_event* newest = it::newest_at(seen, at);
    if (newest == nullptr) return out;
    if (at - newest->ts > ttl_ms) {
        out.status = "EXPIRED";
        return out;
    }
    out.status = "PRESENT";
    const json fields = newest->values(), tiled = it::tiled_values(aggs, seen, at);
    for (const auto& [name, v] : fields.items()) out.values[name] = v;
    for (const auto& [name, v] : tiled.items()) out.values[name] = v;
    return out;
}

// Mismatches between an exported row (statuses asked) and what it must hold.
std::vector<std::string> row_mismatches(const json& row, const expected_row& want, const std::vector<it::agg_spec>& aggs,
                                        const std::string& what) {
    std::vector<std::string> bad;
    for (const auto& [name, v] : want.values.items()) {
        const std::string status = row.value(name + "__status", std::string("<missing>"));
        if (status != want.status) bad.push_back(what + " " + name + ": status " + status + ", expected " + want.status);
        const auto agg = std::find_if(aggs.begin(), aggs.end(), [&](const it::agg_spec& a) { return a.name == name; });
        if (agg != aggs.end() && !v.is_null()) {
            if (auto m = it::agg_mismatch(*agg, v, row.value(name, json())); m) bad.push_back(what + " " + *m);
        } else if (row.value(name, json()) != v) {
            bad.push_back(what + " " + name + ": " + row.value(name, json()).dump() + ", expected " + v.dump());
        }
    }
    return bad;
}

std::vector<json> ndjson_lines(const std::string& text) {
    std::vector<json> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        out.push_back(json::parse(text.substr(pos, nl - pos), nullptr, false));
        pos = nl + 1;
    }
    return out;
}

it::http_response export_rows(int port, const std::string& rows, const std::string& query,
                              const std::string& type = "application/x-ndjson") {
    return it::http_request(port, "POST", "/v1/training-sets?" + query, rows, {{"Content-Type", type}}, 120s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_F(TrainingSets, export_equals_brute_force_and_online_as_of_and_known_at_differs_only_on_late_records) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn(), schema = "train_prop", group = "train-prop-" + it::random_suffix();
    const int http_port = it::free_port();
    const std::uint64_t seed = test_seed();
    const auto aggs = test_aggs();
    constexpr std::int64_t k_lateness = 10 * k_min, k_ttl = 30 * k_min;
    std::printf("[train] seed=%llu (SLUICE_IT_SEED reproduces it)\n", static_cast<unsigned long long>(seed));
    it::daemon_process daemon(training_config(s, group, http_port, k_stream_topic, schema));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[train] "));

    std::mt19937_64 rng(seed);
    std::vector<it::stream_event> produced;
    produced.reserve(8000);
    std::size_t resends = 0, late_within = 0, beyond = 0;
    // Stale keys: a few events 90 to 40 minutes old (older than the TTL by now).
    const std::int64_t t0 = it::now_ms();
    for (int k = 0; k < 20; ++k)
        for (int i = 0; i < 3; ++i) {
            produced.push_back(random_event(rng, "stale-" + std::to_string(k), t0 - (90 - 20 * i) * k_min + k * k_sec));
            it::produce_event(s.kafka, k_stream_topic, produced.back());
        }
    // The live stream, paced over ~12 s: event times just before the moment they are produced,
    // 12 % late by 2-30 s (within the lateness), 2 % by 15-20 min (beyond it, when the key has
    // anything newer), 4 % sent twice.
    const std::int64_t stream_from = it::now_ms();
    const auto until = std::chrono::steady_clock::now() + 12s;
    while (std::chrono::steady_clock::now() < until) {
        for (int i = 0; i < 8; ++i) {
            const std::string key = "k-" + std::to_string(rng() % 300);
            const std::uint64_t dice = rng() % 100;
            std::int64_t delay = static_cast<std::int64_t>(rng() % 300);
            if (dice < 12) delay = 2 * k_sec + static_cast<std::int64_t>(rng() % (28 * k_sec)), ++late_within;
            else if (dice < 14) delay = 15 * k_min + static_cast<std::int64_t>(rng() % (5 * k_min)), ++beyond;
            produced.push_back(random_event(rng, key, it::now_ms() - delay));
            it::produce_event(s.kafka, k_stream_topic, produced.back());
            if (rng() % 25 == 0) {
                produced.push_back(produced.back());
                it::produce_event(s.kafka, k_stream_topic, produced.back());
                ++resends;
            }
        }
        std::this_thread::sleep_for(20ms);
    }
    const std::int64_t stream_to = it::now_ms();
    ASSERT_NO_THROW({
        s.kafka.flush();
        it::record_deliveries(s.kafka, produced);
    });
    model m = build_model(produced, k_lateness);
    it::wait_history(dsn, schema, k_stream_topic, static_cast<long long>(m.accepted), 90s, &daemon);
    it::wait_dead_letters(dsn, schema, k_stream_topic, static_cast<long long>(m.late), 30s, &daemon);
    const auto arrivals = arrival_times(dsn, schema, k_stream_topic);
    ASSERT_EQ(arrivals.size(), m.accepted) << "history holds every accepted event once";
    std::size_t arrived_late = 0;  // accepted events that arrived more than a second after their event time
    for (auto& [key, k] : m.keys)
        for (const auto& me : k.events) {
            const auto a = arrivals.find({me.e->partition, me.e->offset});
            ASSERT_NE(a, arrivals.end()) << "no history row for " << key << " at offset " << me.e->offset;
            k.arrived_ms.push_back(a->second);
            arrived_late += a->second - me.e->ts > k_sec;
        }
    std::printf("[train] produced %zu events (%zu re-sent, %zu late within the lateness, %zu beyond it), %zu accepted, "
                "%zu dead letters, %zu arrived > 1 s after their event time\n",
                produced.size(), resends, late_within, beyond, m.accepted, m.late, arrived_late);

    // 10,000 entity rows: 70 % at moments around the stream, 30 % over the last 100 minutes; 10 % of
    // the keys unknown; a label passed through.
    std::vector<std::pair<std::string, std::int64_t>> rows;
    std::string body;
    for (int i = 0; i < 10000; ++i) {
        std::string key = rng() % 10 == 0 ? "ghost-" + std::to_string(rng() % 50)
                          : rng() % 8 == 0 ? "stale-" + std::to_string(rng() % 20)
                                           : "k-" + std::to_string(rng() % 300);
        const std::int64_t at = rng() % 10 < 7 ? stream_from - 30 * k_sec +
                                                     static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(stream_to - stream_from + 35 * k_sec))
                                               : t0 - 100 * k_min + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(100 * k_min));
        body += json{{"user_id", key}, {"event_timestamp", i % 2 == 0 ? json(it::rfc3339_ms(at)) : json(at)}, {"label", i % 3}}.dump() + "\n";
        rows.emplace_back(std::move(key), at);
    }
    const auto t_export = std::chrono::steady_clock::now();
    const auto plain = export_rows(http_port, body, std::string("statuses=true&features=") + k_features);
    const double plain_s = it::seconds_since(t_export);
    const auto known = export_rows(http_port, body, std::string("statuses=true&as_known_at=true&features=") + k_features);
    ASSERT_EQ(plain.status, 200) << plain.error << plain.body.substr(0, 500);
    ASSERT_EQ(known.status, 200) << known.error << known.body.substr(0, 500);
    EXPECT_EQ(plain.headers.at("content-type"), "application/x-ndjson");
    EXPECT_EQ(plain.trailers.at("x-sluice-rows"), "10000");
    const auto plain_rows = ndjson_lines(plain.body), known_rows = ndjson_lines(known.body);
    ASSERT_EQ(plain_rows.size(), rows.size());
    ASSERT_EQ(known_rows.size(), rows.size());

    std::vector<std::string> bad;
    std::size_t present = 0, expired = 0, not_found = 0, differ = 0, differ_expected = 0;
    std::set<std::string> deciding_late;  // (key, offset) of the not-yet-arrived records that decided a difference
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& [key, at] = rows[i];
        const auto k = m.keys.find(key);
        const keyed* events = k == m.keys.end() ? nullptr : &k->second;
        const std::string what = "row " + std::to_string(i + 1) + " (" + key + " @" + it::rfc3339_ms(at) + ")";
        if (plain_rows[i].value("user_id", "") != key || plain_rows[i].value("label", -1) != static_cast<int>(i % 3)) {
            bad.push_back(what + ": out of order or lost its columns: " + plain_rows[i].dump());
            continue;
        }
        const expected_row p = brute_force(events, at, false, aggs, k_ttl), q = brute_force(events, at, true, aggs, k_ttl);
        auto b1 = row_mismatches(plain_rows[i], p, aggs, what + " plain");
        auto b2 = row_mismatches(known_rows[i], q, aggs, what + " known-at");
        bad.insert(bad.end(), b1.begin(), b1.end());
        bad.insert(bad.end(), b2.begin(), b2.end());
        present += p.status == "PRESENT";
        expired += p.status == "EXPIRED";
        not_found += p.status == "NOT_FOUND";
        const bool rows_differ = plain_rows[i] != known_rows[i];
        const bool model_differs = p.status != q.status || p.values != q.values;
        differ += rows_differ;
        differ_expected += model_differs;
        if (rows_differ != model_differs) bad.push_back(what + ": known-at and plain differ in the export but not in the model, or the other way");
        if (model_differs && events != nullptr)
            for (std::size_t e = 0; e < events->events.size(); ++e)
                if (events->events[e].e->ts <= at && events->arrived_ms[e] > at)
                    deciding_late.insert(key + "@" + std::to_string(events->events[e].e->offset));
    }
    std::printf("[train] 10,000 rows exported in %.2f s: %zu present, %zu expired, %zu not found; known-at differs on "
                "%zu rows (the brute force: %zu), decided by %zu records not yet arrived at the row's time\n",
                plain_s, present, expired, not_found, differ, differ_expected, deciding_late.size());
    it::report_mismatches("training set vs the brute force over the produced events", bad);
    EXPECT_GT(present, 3000u);
    EXPECT_GT(expired, 100u) << "the stale keys' rows in their last 70 minutes";
    EXPECT_GT(not_found, 500u);
    EXPECT_GT(differ, 50u) << "rows whose moment falls between a late record's event time and its arrival";

    // The online as_of answer for the same key and moment, for every present row.
    bad.clear();
    std::size_t compared = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (plain_rows[i].value("clicks__status", "") != "PRESENT") continue;
        const auto a = it::get_features(http_port, rows[i].first, "as_of=" + std::to_string(rows[i].second));
        ++compared;
        if (a.status != 200) {
            bad.push_back("as_of " + rows[i].first + ": status " + std::to_string(a.status));
            continue;
        }
        for (const auto& [name, v] : a.body["values"].items()) {
            const auto agg = std::find_if(aggs.begin(), aggs.end(), [&](const it::agg_spec& x) { return x.name == name; });
            if (agg != aggs.end()) {
                if (auto mm = it::agg_mismatch(*agg, v, plain_rows[i][name]); mm) bad.push_back("as_of vs export row " + std::to_string(i + 1) + ": " + *mm);
            } else if (plain_rows[i][name] != v) {
                bad.push_back("as_of vs export row " + std::to_string(i + 1) + " " + name + ": as_of " + v.dump() + ", export " +
                              plain_rows[i][name].dump());
            }
        }
    }
    std::printf("[train] the online as_of equals the export on %zu/%zu present rows\n", compared - std::min(compared, bad.size()), compared);
    EXPECT_EQ(compared, present);
    it::report_mismatches("training set vs the online as_of", bad);
    it::finish_test(daemon, "train", test_t0);
}

// ---------------------------------------------------------------------------------------------
TEST_F(TrainingSets, a_record_arriving_late_is_seen_by_plain_mode_from_its_event_time_and_by_known_at_from_its_arrival) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn(), schema = "train_late";
    const int http_port = it::free_port();
    it::daemon_process daemon(training_config(s, "train-late-" + it::random_suffix(), http_port, k_late_topic, schema));
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[train-late] "));

    std::vector<it::stream_event> produced(1);
    it::stream_event& e = produced[0];
    e.key = "late-1";
    e.ts = it::now_ms() - 60 * k_sec;  // it happened a minute ago, and arrives now
    e.clicks = 7;
    e.spend = 12.5;
    EXPECT_EQ(it::get_features(http_port, "late-1").status, 404) << "nothing was served before it arrived";
    it::produce_event(s.kafka, k_late_topic, e);
    s.kafka.flush();
    it::wait_history(dsn, schema, k_late_topic, 1, 30s, &daemon);
    const std::int64_t arrived = std::stoll(it::pg_query(dsn, "SELECT (extract(epoch from ingested_at) * 1000)::bigint FROM " +
                                                                  schema + ".user_activity_history")[0][0]);
    ASSERT_GT(arrived - e.ts, 50 * k_sec);

    const std::vector<std::int64_t> moments = {e.ts - 1, e.ts, e.ts + 30 * k_sec, arrived - 1, arrived, arrived + 1000};
    std::string body;
    for (auto at : moments) body += json{{"user_id", "late-1"}, {"event_timestamp", at}}.dump() + "\n";
    const auto plain = export_rows(http_port, body, "statuses=true&features=user_activity:clicks,user_activity:spend_sum_1h");
    const auto known = export_rows(http_port, body, "statuses=true&as_known_at=true&features=user_activity:clicks,user_activity:spend_sum_1h");
    ASSERT_EQ(plain.status, 200) << plain.body;
    ASSERT_EQ(known.status, 200) << known.body;
    const auto p = ndjson_lines(plain.body), k = ndjson_lines(known.body);
    ASSERT_EQ(p.size(), moments.size());
    ASSERT_EQ(k.size(), moments.size());
    const std::vector<std::string> plain_expected = {"NOT_FOUND", "PRESENT", "PRESENT", "PRESENT", "PRESENT", "PRESENT"};
    const std::vector<std::string> known_expected = {"NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "PRESENT", "PRESENT"};
    for (std::size_t i = 0; i < moments.size(); ++i) {
        const std::string at = it::rfc3339_ms(moments[i]);
        EXPECT_EQ(p[i]["clicks__status"], plain_expected[i]) << "plain at " << at;
        EXPECT_EQ(k[i]["clicks__status"], known_expected[i]) << "known-at at " << at;
        if (p[i]["clicks__status"] == "PRESENT") {
            EXPECT_EQ(p[i]["clicks"], 7);
            EXPECT_EQ(p[i]["spend_sum_1h"], 12.5);
        }
        if (k[i]["clicks__status"] == "NOT_FOUND") {
            EXPECT_TRUE(k[i]["clicks"].is_null());
            EXPECT_TRUE(k[i]["spend_sum_1h"].is_null()) << "no aggregation over records not yet arrived";
        }
    }
    std::printf("[train-late] event time %s, arrival %s (+%.1f s): plain sees it from its event time, known-at from "
                "its arrival\n",
                it::rfc3339_ms(e.ts).c_str(), it::rfc3339_ms(arrived).c_str(), static_cast<double>(arrived - e.ts) / 1000);
    it::finish_test(daemon, "train-late", test_t0);
}

// ---------------------------------------------------------------------------------------------
namespace {

// Sends a request's head and the first part of its body, and keeps the connection open.
struct open_upload {
    int fd = -1;
    open_upload(int port, const std::string& head_and_part) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::send(fd, head_and_part.data(), head_and_part.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(head_and_part.size())) {
            ::close(fd);
            fd = -1;
        }
    }
    ~open_upload() {
        if (fd >= 0) ::close(fd);
    }
    // Sends the rest and reads the answer to the end.
    std::string finish(const std::string& rest) {
        ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
        std::string in;
        char buf[8192];
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (true) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            in.append(buf, static_cast<std::size_t>(n));
        }
        return in;
    }
};

}  // namespace

TEST_F(TrainingSets, csv_tables_the_cli_bad_rows_the_body_limit_and_the_export_cap) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    const std::string dsn = s.postgres.dsn(), schema = "train_forms";
    const int http_port = it::free_port();
    json cfg = training_config(s, "train-forms-" + it::random_suffix(), http_port, k_forms_topic, schema);
    cfg["training"] = {{"chunk_rows", 50}, {"max_concurrent", 1}, {"body_limit_bytes", 200000}};
    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "[train-forms] "));

    std::vector<it::stream_event> produced;
    const std::int64_t now = it::now_ms();
    for (int k = 0; k < 20; ++k) {
        it::stream_event e;
        e.key = k == 0 ? "a,\"quoted\" key" : "f-" + std::to_string(k);
        e.ts = now - 10 * k_min + k * k_sec;
        e.clicks = k;
        e.spend = k * 1.5;
        e.country = k % 2 ? "DE" : "FR";
        produced.push_back(e);
        it::produce_event(s.kafka, k_forms_topic, produced.back());
    }
    s.kafka.flush();
    it::wait_history(dsn, schema, k_forms_topic, 20, 30s, &daemon);

    // The same 200 rows as NDJSON, CSV and a PostgreSQL table: the same answers.
    std::string ndjson, csv = "label,user_id,event_timestamp\n";
    it::pg_query(dsn, "CREATE TABLE public.train_rows (label int, user_id text, event_timestamp timestamptz)");
    for (int i = 0; i < 200; ++i) {
        const std::string key = i % 20 == 0 ? "a,\"quoted\" key" : "f-" + std::to_string(i % 20);
        const std::int64_t at = now - 12 * k_min + i * 5 * k_sec;
        ndjson += json{{"label", i}, {"user_id", key}, {"event_timestamp", it::rfc3339_ms(at)}}.dump() + "\n";
        std::string quoted = key.find(',') != std::string::npos ? "\"a,\"\"quoted\"\" key\"" : key;
        csv += std::to_string(i) + "," + quoted + "," + it::rfc3339_ms(at) + "\n";
        it::pg_query(dsn, "INSERT INTO public.train_rows VALUES ($1, $2, $3)", {std::to_string(i), key, it::rfc3339_ms(at)});
    }
    const std::string features = "features=user_activity:clicks,user_activity:country,user_activity:spend_sum_1h";
    const auto from_ndjson = export_rows(http_port, ndjson, features);
    const auto from_csv = export_rows(http_port, csv, features, "text/csv");
    const auto from_table = it::http_request(
        http_port, "POST", "/v1/training-sets",
        json{{"features", {"user_activity:clicks", "user_activity:country", "user_activity:spend_sum_1h"}},
             {"entity_query", "SELECT label, user_id, event_timestamp FROM public.train_rows ORDER BY label"}}
            .dump(),
        {}, 60s);
    const auto csv_out = export_rows(http_port, ndjson, features + "&format=csv&full_feature_names=true");
    ASSERT_EQ(from_ndjson.status, 200) << from_ndjson.body;
    ASSERT_EQ(from_csv.status, 200) << from_csv.body;
    ASSERT_EQ(from_table.status, 200) << from_table.body;
    ASSERT_EQ(csv_out.status, 200) << csv_out.body;
    const auto a = ndjson_lines(from_ndjson.body), b = ndjson_lines(from_csv.body), c = ndjson_lines(from_table.body);
    ASSERT_EQ(a.size(), 200u);
    std::size_t present = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i], b[i]) << "CSV in, row " << i + 1;
        EXPECT_EQ(a[i], c[i]) << "entity_query, row " << i + 1;
        present += !a[i]["clicks"].is_null();
    }
    EXPECT_GT(present, 100u);
    EXPECT_EQ(a[0]["user_id"], "a,\"quoted\" key");
    EXPECT_EQ(csv_out.headers.at("content-type"), "text/csv; charset=utf-8");
    EXPECT_EQ(csv_out.body.substr(0, csv_out.body.find('\n')),
              "user_id,event_timestamp,label,user_activity__clicks,user_activity__country,user_activity__spend_sum_1h");
    EXPECT_NE(csv_out.body.find("\n\"a,\"\"quoted\"\" key\","), std::string::npos) << csv_out.body.substr(0, 300);

    // sluice export: the same rows to a file, byte for byte what the route answers.
    it::temp_dir dir("train-cli");
    std::ofstream(dir.path() / "rows.csv") << csv;
    const auto out_file = dir.path() / "train.ndjson";
    const auto cli = it::run_command({it::sluice_binary(), "export", "--config", daemon.config_path().string(), "--features",
                                      "user_activity:clicks,user_activity:country,user_activity:spend_sum_1h", "--entities",
                                      (dir.path() / "rows.csv").string(), "--output", out_file.string()},
                                     60s);
    EXPECT_EQ(cli.status.code, 0) << cli.output;
    EXPECT_NE(cli.output.find("sluice export: 200 rows to " + out_file.string()), std::string::npos) << cli.output;
    std::ifstream written(out_file);
    const std::string file_text((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
    EXPECT_EQ(file_text, from_ndjson.body);
    // A failing export leaves nothing at the name, and no temporary file beside it.
    std::ofstream(dir.path() / "bad.csv") << csv << "x,f-1,not a time\n";
    const auto failed = it::run_command({it::sluice_binary(), "export", "--config", daemon.config_path().string(), "--features",
                                         "user_activity:clicks", "--entities", (dir.path() / "bad.csv").string(), "--output",
                                         (dir.path() / "bad.ndjson").string()},
                                        60s);
    EXPECT_EQ(failed.status.code, 1) << failed.output;
    EXPECT_NE(failed.output.find("entity row 201: the timestamp column \"event_timestamp\""), std::string::npos) << failed.output;
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "bad.ndjson"));
    std::size_t leftovers = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir.path())) leftovers += f.path().filename().string()[0] == '.';
    EXPECT_EQ(leftovers, 0u);

    // A bad row in the first chunk: 400 naming it. After the first chunk: the transfer is cut off.
    std::size_t third_line_end = 0;
    for (int i = 0; i < 3; ++i) third_line_end = ndjson.find('\n', third_line_end) + 1;
    const auto early = export_rows(http_port, ndjson.substr(0, third_line_end) + "{\"user_id\":\"x\"}\n", features);
    EXPECT_EQ(early.status, 400);
    EXPECT_NE(early.body.find("entity row 4: the timestamp column \\\"event_timestamp\\\" is missing"), std::string::npos)
        << early.body;
    const auto late = export_rows(http_port, ndjson + "{\"user_id\":\"x\"}\n", features);
    EXPECT_EQ(late.status, 0) << "a cut-off transfer, not a clean end: " << late.body.size() << " bytes";
    EXPECT_EQ(late.error, "connection closed before the end of the body");
    // The body limit (200,000 bytes here) is its own, above the ordinary 1 MiB one... and below it.
    std::string big = "user_id,event_timestamp,pad\n";
    while (big.size() < 250000) big += "f-1," + std::to_string(now) + "," + std::string(4000, 'p') + "\n";
    const auto too_big = export_rows(http_port, big, features, "text/csv");
    EXPECT_EQ(too_big.status, 413) << too_big.body;
    EXPECT_NE(too_big.body.find("training.body_limit_bytes"), std::string::npos) << too_big.body;

    // One export at a time (training.max_concurrent 1): a second gets 429 while the first streams.
    const std::string head = "POST /v1/training-sets?" + features + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                             "Content-Length: " + std::to_string(ndjson.size()) + "\r\n\r\n";
    open_upload first(http_port, head + ndjson.substr(0, 100));
    ASSERT_GE(first.fd, 0);
    std::this_thread::sleep_for(300ms);
    const auto second = export_rows(http_port, ndjson, features);
    EXPECT_EQ(second.status, 429) << second.body;
    EXPECT_NE(second.body.find("too_many_exports"), std::string::npos);
    const std::string answer = first.finish(ndjson.substr(100));
    EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer.substr(0, 200);
    EXPECT_NE(answer.find("X-Sluice-Rows: 200"), std::string::npos) << "the trailer";
    const auto third = export_rows(http_port, ndjson, features);
    EXPECT_EQ(third.status, 200) << "the slot is free again";

    // Each export is an activity row.
    EXPECT_GE(it::pg_count(dsn, "SELECT count(*) FROM " + schema + ".activity WHERE action = 'training_set'"), 6);
    it::finish_test(daemon, "train-forms", test_t0);
}
