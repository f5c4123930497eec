// Data quality on the real pipeline (binary, PostgreSQL, Redis, the Kafka protocol), with 2 s
// windows: a null rate that jumps halfway fails its expectation in the windows after the jump and
// not before; a stream that stops fails the volume and freshness expectations; a shifted
// distribution trips drift while an unshifted control set beside it does not; windows written
// survive a restart; the gate and `sluice quality` agree with the windows.

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "integration/support/faults.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string new_topic(it::test_stack& s, const std::string& name) {
    const std::string topic = name + "-" + it::random_suffix();
    s.kafka.create_topic(topic, 2);
    return topic;
}

json quality_config(it::test_stack& s, const std::string& topic, const std::string& schema, int port) {
    json cfg = it::user_activity_config(s, "quality-" + it::random_suffix(), port, topic);
    cfg["postgres"]["schema"] = schema;
    cfg["redis"]["key_prefix"] = schema;
    cfg["quality"] = {{"windows", {"2s", "10s"}}};
    cfg["feature_sets"][0]["expectations"] = json::array(
        {{{"expect", "null_rate"}, {"field", "spend"}, {"max", 0.1}, {"window", "2s"}},
         {{"expect", "records"}, {"min", 100}, {"window", "2s"}},
         {{"expect", "freshness"}, {"max", "3s"}, {"window", "2s"}},
         {{"expect", "drift"}, {"field", "spend"}, {"max", 0.25}, {"window", "2s"}}});
    return cfg;
}

// Produces `per_second` events a second for `how_long`; spend null in a `null_share` of them,
// spend drawn around `mean`.
void stream(it::test_stack& s, const std::string& topic, int per_second, std::chrono::milliseconds how_long,
            double null_share, double mean) {
    const auto end = std::chrono::steady_clock::now() + how_long;
    int n = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int i = 0; i < per_second / 10; ++i, ++n) {
            json e = {{"user_id", "u" + std::to_string(n % 200)}, {"ts", it::now_ms()}, {"clicks", n}};
            if ((n % 100) >= null_share * 100) e["spend"] = mean + (n % 21) - 10;
            s.kafka.produce(topic, e["user_id"].get<std::string>(), e.dump());
        }
        s.kafka.flush();
        std::this_thread::sleep_for(100ms);
    }
}

json quality(int port, const std::string& set, const std::string& query = "") {
    const auto r = it::http_get(port, "/v1/feature-sets/" + set + "/quality" + query);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
}

// The verdicts of expectation `id` in the closed 2 s windows, oldest first: {start ms, evaluated, passed}.
struct verdict {
    std::int64_t start = 0;
    bool evaluated = false;
    bool passed = true;
    std::int64_t records = 0;
};
std::vector<verdict> verdicts(const json& report, const std::string& id) {
    std::vector<verdict> out;
    for (const auto& w : report["windows"][0]["closed"])
        for (const auto& e : w["expectations"])
            if (e["id"] == id)
                out.insert(out.begin(), {it::parse_rfc3339_ms(w["start"].get<std::string>()), e["evaluated"].get<bool>(),
                                         e["passed"].get<bool>(), w["records"].get<std::int64_t>()});
    return out;
}

}  // namespace

class Quality : public it::stack_suite<Quality> {
public:
    static std::vector<it::topic_spec> topics() { return {}; }
};

TEST_F(Quality, ANullJumpAndAStallFailTheirWindowsAndWindowsSurviveARestart) {
    auto& s = *stack_;
    const std::string schema = "quality_flow";
    const std::string topic = new_topic(s, "quality-flow");
    const int port = it::free_port();
    const json cfg = quality_config(s, topic, schema, port);
    auto daemon = std::make_unique<it::daemon_process>(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(*daemon, port, "daemon"));
    const auto t0 = std::chrono::steady_clock::now();

    stream(s, topic, 200, 8s, 0.0, 50);
    const std::int64_t jump = it::now_ms();
    stream(s, topic, 200, 8s, 0.3, 50);
    const std::int64_t stall = it::now_ms();
    std::this_thread::sleep_for(7s);  // nothing arrives

    const json report = quality(port, "user_activity");
    const auto nulls = verdicts(report, "null_rate:spend@2s");
    ASSERT_GE(nulls.size(), 8u) << report.dump();
    int before = 0, after = 0;
    for (const auto& v : nulls) {
        if (v.start + 2000 <= jump && v.records > 0) {
            ++before;
            EXPECT_TRUE(v.evaluated && v.passed) << "a window before the jump failed: " << it::rfc3339_ms(v.start);
        }
        if (v.start >= jump + 500 && v.start + 2000 <= stall) {
            ++after;
            EXPECT_TRUE(v.evaluated && !v.passed) << "a window after the jump passed: " << it::rfc3339_ms(v.start);
        }
    }
    EXPECT_GE(before, 2);
    EXPECT_GE(after, 2);
    // The stall: windows without records fail the volume and, once the newest event is 3 s old, freshness.
    const auto volume = verdicts(report, "records@2s");
    const auto fresh = verdicts(report, "freshness@2s");
    ASSERT_FALSE(volume.empty());
    EXPECT_FALSE(volume.back().passed) << "the last window, with no records, fails records >= 100";
    EXPECT_EQ(volume.back().records, 0);
    EXPECT_FALSE(fresh.back().passed) << "nothing for 7 s: freshness fails";
    const auto metrics = it::http_get(port, "/metrics");
    EXPECT_NE(metrics.body.find("sluice_quality_expectation_passing{environment=\"default\",feature_set=\"user_activity\","
                                "expectation=\"records@2s\"} 0"),
              std::string::npos);
    EXPECT_NE(metrics.body.find("sluice_quality_null_ratio{environment=\"default\",feature_set=\"user_activity\",field=\"spend\""),
              std::string::npos);
    // Each change of verdict is a row of the activity log.
    EXPECT_GE(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema +
                                                 ".activity WHERE action = 'expectation' AND outcome = 'failing' AND target LIKE "
                                                 "'user_activity null_rate:spend@2s'"),
              1);
    // The gate over the whole run fails; over the clean part it passes (the route and the CLI).
    EXPECT_EQ(report["gate"]["passed"], false);
    const auto clean = quality(port, "user_activity", "?from=" + std::to_string(jump - 6000) + "&to=" + std::to_string(jump - 2000));
    EXPECT_EQ(clean["gate"]["passed"], true) << clean["gate"].dump();
    EXPECT_GE(clean["gate"]["windows"].get<int>(), 2);

    const auto st = daemon->terminate();
    ASSERT_TRUE(st && st->ok());
    const long long written = it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".quality_windows WHERE window_ms = 2000");
    EXPECT_GE(written, static_cast<long long>(nulls.size()));
    EXPECT_GE(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".quality_windows WHERE partial"), 1)
        << "the window open at the stop is written, marked partial";
    it::temp_dir dir("sluice-quality-");
    it::write_file(dir / "q.json", cfg.dump());
    const auto cli = it::run_command({it::sluice_binary(), "quality", "--config", (dir / "q.json").string(), "--set",
                                      "user_activity", "--window", "1h"},
                                     60s);
    EXPECT_EQ(cli.status.code, 3) << cli.output;
    EXPECT_NE(cli.output.find("null rate at most 0.1"), std::string::npos) << cli.output;

    // A restart reads the windows back.
    daemon = std::make_unique<it::daemon_process>(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(*daemon, port, "restarted daemon"));
    const auto again = verdicts(quality(port, "user_activity"), "null_rate:spend@2s");
    EXPECT_GE(again.size(), nulls.size()) << "the windows written before the restart are shown again";
    it::finish_test(*daemon, "quality flow", t0);
}

TEST_F(Quality, AShiftedDistributionTripsDriftAndTheControlDoesNot) {
    auto& s = *stack_;
    const std::string schema = "quality_drift";
    const std::string shifted = new_topic(s, "quality-shifted");
    const std::string control = new_topic(s, "quality-control");
    const int port = it::free_port();
    json cfg = quality_config(s, shifted, schema, port);
    json control_set = cfg["feature_sets"][0];
    control_set["name"] = "control";
    control_set["topic"] = control;
    cfg["feature_sets"].push_back(control_set);
    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "daemon"));
    const auto t0 = std::chrono::steady_clock::now();

    // Both at spend ~ 50 (the baselines), then the first moves to ~ 80 (about three of its
    // standard deviations) while the control stays.
    std::thread other([&] { stream(s, control, 200, 14s, 0, 50); });
    stream(s, shifted, 200, 7s, 0, 50);
    const std::int64_t shift = it::now_ms();
    stream(s, shifted, 200, 7s, 0, 80);
    other.join();
    std::this_thread::sleep_for(2500ms);

    const auto moved = verdicts(quality(port, "user_activity"), "drift:spend@2s");
    const auto steady = verdicts(quality(port, "control"), "drift:spend@2s");
    int failed_after = 0, judged_before = 0;
    for (const auto& v : moved) {
        if (v.evaluated && v.start + 2000 <= shift) {
            ++judged_before;
            EXPECT_TRUE(v.passed) << "drift before the shift at " << it::rfc3339_ms(v.start);
        }
        if (v.start >= shift + 500 && v.records > 0) failed_after += v.evaluated && !v.passed;
    }
    EXPECT_GE(judged_before, 1);
    EXPECT_GE(failed_after, 2);
    int control_judged = 0;
    for (const auto& v : steady)
        if (v.evaluated && v.records > 0) {
            ++control_judged;
            EXPECT_TRUE(v.passed) << "the control drifted at " << it::rfc3339_ms(v.start);
        }
    EXPECT_GE(control_judged, 3);
    const auto metrics = it::http_get(port, "/metrics");
    EXPECT_NE(metrics.body.find("sluice_quality_drift_psi{environment=\"default\",feature_set=\"control\",field=\"spend\""),
              std::string::npos);
    it::finish_test(daemon, "quality drift", t0);
}

// Records breaking a quarantine expectation are held, not served, listed for review, and after a
// release are in history exactly once (a second release of the same rows releases nothing).
TEST_F(Quality, QuarantinedRecordsAreHeldUntilReleasedAndThenWrittenOnce) {
    auto& s = *stack_;
    const std::string schema = "quality_quarantine";
    const std::string topic = new_topic(s, "quality-quarantine");
    const int port = it::free_port();
    json cfg = quality_config(s, topic, schema, port);
    cfg["feature_sets"][0]["expectations"] = json::array(
        {{{"expect", "range"}, {"field", "clicks"}, {"max", 1000}, {"window", "2s"}, {"severity", "quarantine"}}});
    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "daemon"));
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t t = it::now_ms() - 60'000;
    for (int i = 0; i < 100; ++i) {
        const json e = {{"user_id", "q" + std::to_string(i)}, {"ts", t + i}, {"clicks", i % 10 == 0 ? 5000 + i : i},
                        {"spend", 1.5}};
        s.kafka.produce(topic, "q" + std::to_string(i), e.dump());
    }
    s.kafka.flush();
    const auto history = [&] {
        return it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".user_activity_history");
    };
    const auto held = [&] {
        return it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".quarantine WHERE released_at IS NULL");
    };
    ASSERT_TRUE(it::wait_until(30s, [&] { return history() == 90 && held() == 10; }))
        << "history " << history() << ", held " << held();
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity/q10").status, 404) << "a held record is not served";
    EXPECT_NE(it::http_get(port, "/metrics").body.find(
                  "sluice_quarantined_records_total{environment=\"default\",feature_set=\"user_activity\"} 10"),
              std::string::npos);
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity/q11").status, 200);

    const auto list = it::http_get(port, "/v1/admin/quarantine/user_activity");
    ASSERT_EQ(list.status, 200) << list.body;
    const json rows = json::parse(list.body)["rows"];
    ASSERT_EQ(rows.size(), 10u);
    EXPECT_NE(rows[0]["rule"].get<std::string>().find("clicks: values at most 1000"), std::string::npos) << rows[0].dump();
    EXPECT_NE(rows[0]["payload"].get<std::string>().find("\"clicks\""), std::string::npos);

    std::vector<std::int64_t> some;
    for (std::size_t i = 0; i < 5; ++i) some.push_back(rows[i]["id"].get<std::int64_t>());
    const auto first = it::http_request(port, "POST", "/v1/admin/quarantine/user_activity/release", json{{"ids", some}}.dump());
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(json::parse(first.body)["released"], 5);
    const auto again = it::http_request(port, "POST", "/v1/admin/quarantine/user_activity/release", json{{"ids", some}}.dump());
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(json::parse(again.body)["released"], 0) << "released rows are not released twice";
    const auto rest = it::http_request(port, "POST", "/v1/admin/quarantine/user_activity/release", "{}");
    ASSERT_EQ(rest.status, 200) << rest.body;
    EXPECT_EQ(json::parse(rest.body)["released"], 5);

    ASSERT_TRUE(it::wait_until(15s, [&] { return history() == 100; })) << history();
    EXPECT_EQ(held(), 0);
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(DISTINCT src_topic) FROM " + schema +
                                                 ".user_activity_history WHERE src_topic LIKE 'quarantine:%'"),
              10);
    const auto served = it::http_get(port, "/v1/features/user_activity/q10");
    ASSERT_EQ(served.status, 200) << served.body;
    EXPECT_EQ(json::parse(served.body)["values"]["clicks"], 5010);
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema +
                                                 ".activity WHERE action = 'quarantine_release'"),
              2) << "two releases released something";
    it::finish_test(daemon, "quarantine", t0);
}
