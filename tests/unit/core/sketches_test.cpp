// The sketches against exact computation on random data: every quantile asked within the
// documented relative error, merged sketches answering like one, the distinct estimate within its
// error, and the top values exact below capacity and finding heavy hitters above it.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sluice/core/sketches.hpp"

namespace sluice {
namespace {

// Every quantile asked is within the sketch's relative error of the exact one, the value of rank
// floor(q * (n - 1)) in sorted order.
void expect_within_error(const quantile_sketch& s, const std::vector<double>& values, const char* what) {
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
        const double exact = sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
        const double got = s.quantile(q);
        const double bound = s.relative_accuracy() * std::fabs(exact) + 1e-9;
        EXPECT_LE(std::fabs(got - exact), bound) << what << " q=" << q << " exact=" << exact << " got=" << got;
    }
}

TEST(QuantileSketch, EveryQuantileIsWithinTheRelativeErrorOnManyDistributions) {
    std::mt19937_64 rng(42);
    struct dist {
        const char* name;
        std::function<double()> draw;
    };
    std::normal_distribution<double> normal(100, 15);
    std::lognormal_distribution<double> lognormal(0, 2);
    std::uniform_real_distribution<double> signed_uniform(-1000, 1000);
    std::exponential_distribution<double> exponential(0.001);
    std::uniform_int_distribution<int> small_ints(0, 5);
    const std::vector<dist> dists = {
        {"normal", [&] { return normal(rng); }},
        {"lognormal (heavy tail)", [&] { return lognormal(rng); }},
        {"uniform around zero", [&] { return signed_uniform(rng); }},
        {"exponential", [&] { return exponential(rng); }},
        {"few integers, zeros included", [&] { return static_cast<double>(small_ints(rng)); }},
    };
    for (const auto& d : dists) {
        quantile_sketch s(0.01);
        std::vector<double> values;
        for (int i = 0; i < 50000; ++i) {
            values.push_back(d.draw());
            s.add(values.back());
        }
        EXPECT_EQ(s.count(), values.size());
        expect_within_error(s, values, d.name);
    }
}

TEST(QuantileSketch, MergedSketchesAnswerLikeOneAndSurviveTheirJson) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> a(-50, 10), b(300, 40);
    quantile_sketch left(0.02), right(0.02), whole(0.02);
    std::vector<double> values;
    for (int i = 0; i < 20000; ++i) {
        const double x = i % 3 ? a(rng) : b(rng);
        values.push_back(x);
        (i % 2 ? left : right).add(x);
        whole.add(x);
    }
    left.merge(right);
    expect_within_error(left, values, "merged");
    for (double q : {0.1, 0.5, 0.9}) EXPECT_DOUBLE_EQ(left.quantile(q), whole.quantile(q));
    const auto back = quantile_sketch::from_json(left.to_json());
    EXPECT_EQ(back.count(), left.count());
    for (double q : {0.0, 0.3, 0.77, 1.0}) EXPECT_DOUBLE_EQ(back.quantile(q), left.quantile(q));
    EXPECT_THROW(left.merge(quantile_sketch(0.05)), std::invalid_argument);
}

TEST(QuantileSketch, EmptyNanAndInfinitiesAreNotValues) {
    quantile_sketch s;
    EXPECT_TRUE(std::isnan(s.quantile(0.5)));
    s.add(std::nan(""));
    s.add(INFINITY);
    EXPECT_EQ(s.count(), 0u);
    s.add(3.0);
    EXPECT_NEAR(s.quantile(0.5), 3.0, 0.03);
}

TEST(QuantileSketch, ABoundedNumberOfBucketsCoarsensOnlyTheSmallestMagnitudes) {
    quantile_sketch s(0.01, 64);  // 64 buckets of 2 % span a factor of about 3.6
    std::vector<double> values;
    for (int i = 1; i <= 100000; ++i) {
        values.push_back(i);
        s.add(i);
    }
    std::sort(values.begin(), values.end());
    for (double q : {0.9, 0.99, 1.0})
        EXPECT_LE(std::fabs(s.quantile(q) - values[static_cast<std::size_t>(q * (values.size() - 1))]),
                  0.01 * values[static_cast<std::size_t>(q * (values.size() - 1))] + 1e-9);
    EXPECT_LE(s.quantile(0.0), 100000.0) << "the folded lowest values answer within the kept range";
}

TEST(DistinctCounter, EstimatesAreWithinThreeStandardErrors) {
    for (int n : {1, 10, 100, 1000, 20000, 300000}) {
        distinct_counter c;
        for (int i = 0; i < n; ++i) {
            c.add("value-" + std::to_string(i));
            if (i % 3 == 0) c.add("value-" + std::to_string(i));  // repeats change nothing
        }
        EXPECT_NEAR(c.estimate(), n, std::max(1.0, 0.07 * n)) << n;
    }
    distinct_counter a, b;
    for (int i = 0; i < 5000; ++i) (i < 3000 ? a : b).add(std::to_string(i));
    for (int i = 2000; i < 3000; ++i) b.add(std::to_string(i));
    a.merge(b);
    EXPECT_NEAR(a.estimate(), 5000, 350);
}

TEST(TopValues, ExactBelowCapacityAndHeavyHittersFoundAboveIt) {
    top_values t(8);
    for (int i = 0; i < 100; ++i) t.add(i % 4 == 0 ? "DE" : i % 4 == 1 ? "FR" : "US");
    const auto top = t.top(3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].value, "US");
    EXPECT_EQ(top[0].count, 50u);
    EXPECT_EQ(top[1].value, "DE");
    EXPECT_EQ(top[1].count, 25u);
    EXPECT_EQ(top[0].error, 0u);

    // 1000 rare values and one that is 20 % of the stream: it is tracked and counted within error.
    top_values many(16);
    std::mt19937_64 rng(3);
    std::uniform_int_distribution<int> rare(0, 999);
    std::uint64_t heavy = 0;
    for (int i = 0; i < 50000; ++i) {
        if (i % 5 == 0) {
            many.add("heavy");
            ++heavy;
        } else {
            many.add("r" + std::to_string(rare(rng)));
        }
    }
    const auto hit = many.top(1);
    ASSERT_EQ(hit.size(), 1u);
    EXPECT_EQ(hit[0].value, "heavy");
    EXPECT_GE(hit[0].count, heavy);
    EXPECT_LE(hit[0].count - hit[0].error, heavy);
    EXPECT_EQ(many.total(), 50000u);
}

}  // namespace
}  // namespace sluice
