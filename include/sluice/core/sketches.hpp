#pragma once
// Summaries of a stream that fit in a few kilobytes and merge: quantiles with a relative error
// bound, a distinct count, and the most frequent values. The data quality monitor keeps one of
// each per field and window (sluice/store/quality_monitor.hpp).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice {

/// Quantiles of doubles with a relative error bound (DDSketch: Masson, Rim and Lee, VLDB 2019):
/// quantile(q) is within relative_accuracy * |x| of x, the q-quantile of the values added (the
/// value of rank floor(q * (n - 1)) in sorted order), for any distribution. Values fall into
/// logarithmic buckets (gamma = (1 + a) / (1 - a)); a bucket answers with the value whose relative
/// distance to both its ends is a. Memory: one counter per bucket between the smallest and the
/// largest magnitude seen, at most max_buckets per sign (beyond it the smallest magnitudes are
/// merged, which coarsens only the quantiles that fall among them). Zero and values below 1e-9 in
/// magnitude count as 0; NaN and infinities are not added.
class quantile_sketch {
public:
    explicit quantile_sketch(double relative_accuracy = 0.01, std::size_t max_buckets = 2048);

    void add(double x);
    /// Adds another sketch's values (same relative_accuracy; throws std::invalid_argument if not).
    void merge(const quantile_sketch& other);
    std::uint64_t count() const { return count_; }
    /// NaN when empty; q is clamped to [0, 1].
    double quantile(double q) const;
    double relative_accuracy() const { return alpha_; }
    /// The share of the values at or below x (by bucket: within the same relative error); 0 when empty.
    double rank_fraction(double x) const;

    /// {"a": accuracy, "z": zeros, "p": [offset, c0, c1, ...], "n": [offset, ...]}: what the
    /// monitor stores to build drift baselines from; from_json reads it back.
    nlohmann::json to_json() const;
    static quantile_sketch from_json(const nlohmann::json& j);

private:
    struct store {
        int offset = 0;                     // bucket index of counts[0]
        std::vector<std::uint64_t> counts;
        void add(int index, std::uint64_t n, std::size_t max_buckets);
    };
    int index_of(double magnitude) const;
    double value_of(int index) const;

    double alpha_;
    double gamma_;
    double log_gamma_;
    std::size_t max_buckets_;
    store positive_, negative_;
    std::uint64_t zeros_ = 0;
    std::uint64_t count_ = 0;
};

/// Distinct values, estimated (HyperLogLog with 2^11 registers: a standard error of about 2.3 %;
/// exact-ish below a few hundred through linear counting). Mergeable.
class distinct_counter {
public:
    distinct_counter();
    void add(std::string_view item);
    void merge(const distinct_counter& other);
    double estimate() const;

private:
    std::vector<std::uint8_t> registers_;
};

/// The most frequent values (Space-Saving, Metwally et al. 2005) among at most `capacity` tracked:
/// a value tracked has a count between count - error and count; any value seen more than
/// n / capacity times is tracked. Exact while there are no more distinct values than capacity.
class top_values {
public:
    explicit top_values(std::size_t capacity = 32);
    void add(std::string_view item, std::uint64_t n = 1);
    void merge(const top_values& other);
    struct entry {
        std::string value;
        std::uint64_t count = 0;
        std::uint64_t error = 0;  // count may be overstated by at most this
    };
    /// The tracked values, most frequent first (ties by value).
    std::vector<entry> top(std::size_t n) const;
    std::uint64_t total() const { return total_; }

private:
    std::size_t capacity_;
    std::uint64_t total_ = 0;
    // Looked up by string_view without a copy (heterogeneous lookup).
    struct text_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::pair<std::uint64_t, std::uint64_t>, text_hash, std::equal_to<>>
        counts_;  // value → count, error
};

/// 64-bit hash of bytes (FNV-1a, then a finalizer that spreads every bit): for the distinct counter.
std::uint64_t hash_bytes(std::string_view bytes);

}  // namespace sluice
