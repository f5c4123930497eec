// The quality monitor without PostgreSQL, on a clock of the test's own: each expectation kind on
// its edges, drift against the first full window, larger windows made of the smallest, and what
// the report says.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "sluice/config/loader.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/store/quality_monitor.hpp"

namespace sluice {
namespace {

// One set "s" with an int, a double, a string and a bool field, and the expectations given.
config load(const std::string& expectations) {
    const std::string text = R"({"kafka": {"brokers": "embedded"}, "quality": {"windows": ["1s", "4s"]},
        "feature_sets": [{"name": "s", "topic": "t", "key": "k", "event_time": "ts",
          "fields": {"n": {"type": "int"}, "x": {"type": "double"}, "c": {"type": "string"}, "b": {"type": "bool"}},
          "expectations": [)" + expectations + "]}]}";
    auto loaded = load_config_text(text);
    EXPECT_TRUE(loaded.ok()) << format_errors(loaded.errors);
    return loaded.cfg;
}

record make(std::int64_t n, std::optional<double> x, std::string c, std::int64_t event_ms = 0, std::int64_t arrival_ms = 0) {
    record r;
    r.key = "k" + std::to_string(n);
    r.event_time_ms = event_ms;
    r.ingested_at_ms = arrival_ms;
    r.values = {value{n}, x ? value{*x} : value{}, value{std::move(c)}, value{true}};
    return r;
}

// A monitor whose first (partial) window is closed: the next window starts at t0.
struct fixture {
    explicit fixture(const std::string& expectations) : cfg(load(expectations)), monitor(cfg, nullptr) {
        EXPECT_TRUE(monitor.prepare().ok());
        t = (now_ms() / 4000 + 1) * 4000;  // a multiple of both sizes, after the open windows' ends
        monitor.close_due(t);
    }
    void feed(const std::vector<record>& records) {
        write_batch b;
        b.records = records;
        monitor.observe(b);
    }
    // Ends the current 1 s window; its verdicts.
    std::vector<nlohmann::json> close() {
        t += 1000;
        monitor.close_due(t);
        const auto report = monitor.report(0, 0, 0);
        std::vector<nlohmann::json> out;
        for (const auto& r : report["windows"][0]["closed"][0]["expectations"]) out.push_back(r);
        return out;
    }
    config cfg;
    quality_monitor monitor;
    std::int64_t t = 0;
};

TEST(QualityMonitor, NullRateFailsOnlyTheWindowAboveIt) {
    fixture f(R"({"expect": "null_rate", "field": "x", "max": 0.1, "window": "1s"})");
    std::vector<record> clean, ten_percent, thirty_percent;
    for (int i = 0; i < 100; ++i) {
        clean.push_back(make(i, 1.0, "a"));
        ten_percent.push_back(make(i, i % 10 == 0 ? std::nullopt : std::optional<double>(1.0), "a"));
        thirty_percent.push_back(make(i, i % 10 < 3 ? std::nullopt : std::optional<double>(1.0), "a"));
    }
    f.feed(clean);
    auto r = f.close();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_TRUE(r[0]["evaluated"]);
    EXPECT_TRUE(r[0]["passed"]);
    f.feed(ten_percent);
    r = f.close();
    EXPECT_TRUE(r[0]["passed"]) << "exactly at the bound passes: " << r[0].dump();
    EXPECT_DOUBLE_EQ(r[0]["observed"].get<double>(), 0.1);
    f.feed(thirty_percent);
    r = f.close();
    EXPECT_FALSE(r[0]["passed"]);
    EXPECT_DOUBLE_EQ(r[0]["observed"].get<double>(), 0.3);
    r = f.close();
    EXPECT_FALSE(r[0]["evaluated"]) << "an empty window has nothing to judge";
    const auto report = f.monitor.report(0, 0, 0);
    EXPECT_EQ(report["expectations"][0]["failed_windows"], 1);
    EXPECT_EQ(report["expectations"][0]["id"], "null_rate:x@1s");
}

TEST(QualityMonitor, RangeAndAllowedCountTheShareOutsideWithTheBoundsInside) {
    fixture f(R"({"expect": "range", "field": "x", "min": 0, "max": 10, "max_outside": 0.1, "window": "1s"},
                 {"expect": "allowed", "field": "c", "values": ["DE", "FR"], "window": "1s"})");
    std::vector<record> batch;
    for (int i = 0; i < 100; ++i) batch.push_back(make(i, i < 10 ? 11.0 : (i % 2 ? 0.0 : 10.0), "DE"));
    f.feed(batch);
    auto r = f.close();
    EXPECT_TRUE(r[0]["passed"]) << r[0].dump();
    EXPECT_DOUBLE_EQ(r[0]["observed"].get<double>(), 0.1);
    EXPECT_TRUE(r[1]["passed"]);
    batch.clear();
    for (int i = 0; i < 100; ++i) batch.push_back(make(i, i < 11 ? -0.5 : 5.0, i == 0 ? "US" : "FR"));
    f.feed(batch);
    r = f.close();
    EXPECT_FALSE(r[0]["passed"]);
    EXPECT_DOUBLE_EQ(r[0]["observed"].get<double>(), 0.11);
    EXPECT_FALSE(r[1]["passed"]) << "one value of 100 outside, none allowed";
}

TEST(QualityMonitor, MeanDistinctRecordsAndFreshness) {
    fixture f(R"({"expect": "mean", "field": "x", "min": 4, "max": 6, "window": "1s"},
                 {"expect": "distinct", "field": "c", "min": 3, "window": "1s"},
                 {"expect": "records", "min": 50, "window": "1s"},
                 {"expect": "freshness", "max": "2s", "window": "1s"})");
    std::vector<record> batch;
    for (int i = 0; i < 60; ++i) batch.push_back(make(i, static_cast<double>(i % 11), "v" + std::to_string(i % 3), 0, 1000 + i));
    f.feed(batch);
    auto r = f.close();
    for (const auto& x : r) EXPECT_TRUE(x["passed"]) << x.dump();
    EXPECT_DOUBLE_EQ(r[2]["observed"].get<double>(), 60);
    EXPECT_NEAR(r[3]["observed"].get<double>(), 1059, 11) << "p99 of arrival - event time, within 1 %";
    batch.clear();
    for (int i = 0; i < 10; ++i) batch.push_back(make(i, 9.0, "same", 0, 5000));
    f.feed(batch);
    r = f.close();
    for (const auto& x : r) EXPECT_FALSE(x["passed"]) << x.dump();
    r = f.close();
    EXPECT_FALSE(r[2]["passed"]) << "a window with no records fails records >= 50";
    EXPECT_TRUE(r[3]["evaluated"]) << "freshness of a silent window: the newest event's age";
}

TEST(QualityMonitor, DriftIsSmallForTheSameDistributionAndLargeForAShiftedOne) {
    fixture f(R"({"expect": "drift", "field": "x", "max": 0.25, "window": "1s"},
                 {"expect": "drift", "field": "c", "max": 0.25, "window": "1s"})");
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal(100, 10);
    const char* const cats[] = {"DE", "FR", "US", "JP"};
    const auto window = [&](double shift, bool new_category) {
        std::vector<record> batch;
        for (int i = 0; i < 5000; ++i)
            batch.push_back(make(i, normal(rng) + shift, new_category && i % 2 ? "CN" : cats[i % 4]));
        f.feed(batch);
        return f.close();
    };
    auto r = window(0, false);
    EXPECT_FALSE(r[0]["evaluated"]) << "the first full window is the baseline";
    r = window(0, false);
    EXPECT_TRUE(r[0]["passed"]) << r[0].dump();
    EXPECT_LT(r[0]["observed"].get<double>(), 0.05);
    EXPECT_TRUE(r[1]["passed"]) << r[1].dump();
    r = window(20, true);  // the mean moved by two standard deviations; half the values a new category
    EXPECT_FALSE(r[0]["passed"]) << r[0].dump();
    EXPECT_GT(r[0]["observed"].get<double>(), 0.25);
    EXPECT_FALSE(r[1]["passed"]) << r[1].dump();
}

TEST(QualityMonitor, TheLargerWindowIsTheSumOfTheSmallOnesAndStatisticsAreRight) {
    fixture f("");
    std::vector<double> xs;
    for (int w = 0; w < 4; ++w) {
        std::vector<record> batch;
        for (int i = 0; i < 250; ++i) {
            const double x = w * 250 + i;
            xs.push_back(x);
            batch.push_back(make(i, x, i % 5 ? "a" : "b"));
        }
        f.feed(batch);
        f.close();
    }
    const auto report = f.monitor.report(0, 0, 0);
    const auto& big = report["windows"][1]["closed"][0];
    EXPECT_EQ(big["records"], 1000);
    EXPECT_FALSE(big["partial"]);
    const auto& x = big["stats"]["fields"]["x"];
    EXPECT_EQ(x["min"], 0.0);
    EXPECT_EQ(x["max"], 999.0);
    EXPECT_DOUBLE_EQ(x["mean"].get<double>(), 499.5);
    EXPECT_NEAR(x["stddev"].get<double>(), 288.82, 0.01);
    EXPECT_NEAR(x["p90"].get<double>(), 899, 9);
    const auto& c = big["stats"]["fields"]["c"];
    EXPECT_EQ(c["distinct"], 2);
    EXPECT_EQ(c["top"][0][0], "a");
    EXPECT_EQ(c["top"][0][1], 800);
}

}  // namespace
}  // namespace sluice
