#include "sluice/core/sketches.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace sluice {

namespace {

constexpr double smallest_magnitude = 1e-9;  // below it a value counts as zero
constexpr int hll_bits = 11;
constexpr std::size_t hll_registers = std::size_t{1} << hll_bits;

}  // namespace

// ---------------------------------------------------------------------------------------------
// quantile_sketch

quantile_sketch::quantile_sketch(double relative_accuracy, std::size_t max_buckets)
    : alpha_(std::clamp(relative_accuracy, 1e-4, 0.5)),
      gamma_((1 + alpha_) / (1 - alpha_)),
      log_gamma_(std::log(gamma_)),
      max_buckets_(std::max<std::size_t>(16, max_buckets)) {}

int quantile_sketch::index_of(double magnitude) const {
    return static_cast<int>(std::ceil(std::log(magnitude) / log_gamma_));
}

// The value of bucket i, (gamma^(i-1), gamma^i]: within alpha of both ends, relatively.
double quantile_sketch::value_of(int index) const { return 2 * std::pow(gamma_, index) / (gamma_ + 1); }

void quantile_sketch::store::add(int index, std::uint64_t n, std::size_t max_buckets) {
    if (counts.empty()) {
        offset = index;
        counts.assign(1, 0);
    }
    const int top = std::max(offset + static_cast<int>(counts.size()) - 1, index);
    // The smallest magnitudes give way: a bucket below what max_buckets keeps joins the lowest kept.
    index = std::max(index, top - static_cast<int>(max_buckets) + 1);
    if (index < offset) {
        counts.insert(counts.begin(), static_cast<std::size_t>(offset - index), 0);
        offset = index;
    } else if (index >= offset + static_cast<int>(counts.size())) {
        counts.resize(static_cast<std::size_t>(index - offset + 1), 0);
    }
    counts[static_cast<std::size_t>(index - offset)] += n;
    if (counts.size() > max_buckets) {
        const std::size_t excess = counts.size() - max_buckets;
        std::uint64_t folded = 0;
        for (std::size_t i = 0; i < excess; ++i) folded += counts[i];
        counts.erase(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(excess));
        counts[0] += folded;
        offset += static_cast<int>(excess);
    }
}

void quantile_sketch::add(double x) {
    if (!std::isfinite(x)) return;
    ++count_;
    const double m = std::fabs(x);
    if (m < smallest_magnitude) {
        ++zeros_;
        return;
    }
    (x > 0 ? positive_ : negative_).add(index_of(m), 1, max_buckets_);
}

void quantile_sketch::merge(const quantile_sketch& other) {
    if (std::fabs(other.alpha_ - alpha_) > 1e-12)
        throw std::invalid_argument("quantile sketches of different accuracy do not merge");
    const auto fold = [this](store& into, const store& from) {
        for (std::size_t i = 0; i < from.counts.size(); ++i)
            if (from.counts[i] > 0) into.add(from.offset + static_cast<int>(i), from.counts[i], max_buckets_);
    };
    fold(positive_, other.positive_);
    fold(negative_, other.negative_);
    zeros_ += other.zeros_;
    count_ += other.count_;
}

double quantile_sketch::quantile(double q) const {
    if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
    q = std::clamp(q, 0.0, 1.0);
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1));
    std::uint64_t seen = 0;
    // Ascending values: the negatives from the largest magnitude down, zero, the positives up.
    for (std::size_t i = negative_.counts.size(); i-- > 0;) {
        seen += negative_.counts[i];
        if (seen > rank) return -value_of(negative_.offset + static_cast<int>(i));
    }
    seen += zeros_;
    if (seen > rank) return 0;
    for (std::size_t i = 0; i < positive_.counts.size(); ++i) {
        seen += positive_.counts[i];
        if (seen > rank) return value_of(positive_.offset + static_cast<int>(i));
    }
    return positive_.counts.empty() ? 0 : value_of(positive_.offset + static_cast<int>(positive_.counts.size()) - 1);
}

double quantile_sketch::rank_fraction(double x) const {
    if (count_ == 0) return 0;
    std::uint64_t at_or_below = 0;
    for (std::size_t i = 0; i < negative_.counts.size(); ++i)
        if (-value_of(negative_.offset + static_cast<int>(i)) <= x) at_or_below += negative_.counts[i];
    if (x >= 0) at_or_below += zeros_;
    for (std::size_t i = 0; i < positive_.counts.size(); ++i)
        if (value_of(positive_.offset + static_cast<int>(i)) <= x) at_or_below += positive_.counts[i];
    return static_cast<double>(at_or_below) / static_cast<double>(count_);
}

nlohmann::json quantile_sketch::to_json() const {
    const auto side = [](const store& s) {
        nlohmann::json a = nlohmann::json::array();
        if (s.counts.empty()) return a;
        a.push_back(s.offset);
        for (auto c : s.counts) a.push_back(c);
        return a;
    };
    return {{"a", alpha_}, {"z", zeros_}, {"p", side(positive_)}, {"n", side(negative_)}};
}

quantile_sketch quantile_sketch::from_json(const nlohmann::json& j) {
    quantile_sketch s(j.value("a", 0.01));
    s.zeros_ = j.value("z", std::uint64_t{0});
    s.count_ = s.zeros_;
    const auto read = [&s](store& into, const nlohmann::json& a) {
        if (!a.is_array() || a.empty()) return;
        const int offset = a[0].get<int>();
        for (std::size_t i = 1; i < a.size(); ++i) {
            const auto n = a[i].get<std::uint64_t>();
            if (n == 0) continue;
            into.add(offset + static_cast<int>(i - 1), n, s.max_buckets_);
            s.count_ += n;
        }
    };
    read(s.positive_, j.contains("p") ? j["p"] : nlohmann::json());
    read(s.negative_, j.contains("n") ? j["n"] : nlohmann::json());
    return s;
}

// ---------------------------------------------------------------------------------------------
// distinct_counter

std::uint64_t hash_bytes(std::string_view bytes) {
    std::uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    // murmur3's finalizer: FNV alone leaves the high bits (the register index) poorly mixed.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

distinct_counter::distinct_counter() : registers_(hll_registers, 0) {}

void distinct_counter::add(std::string_view item) {
    const std::uint64_t h = hash_bytes(item);
    const std::size_t index = static_cast<std::size_t>(h >> (64 - hll_bits));
    const std::uint64_t rest = (h << hll_bits) | (std::uint64_t{1} << (hll_bits - 1));
    const auto rank = static_cast<std::uint8_t>(std::countl_zero(rest) + 1);
    if (rank > registers_[index]) registers_[index] = rank;
}

void distinct_counter::merge(const distinct_counter& other) {
    for (std::size_t i = 0; i < registers_.size(); ++i) registers_[i] = std::max(registers_[i], other.registers_[i]);
}

double distinct_counter::estimate() const {
    const double m = static_cast<double>(registers_.size());
    double sum = 0;
    std::size_t zeros = 0;
    for (auto r : registers_) {
        sum += std::ldexp(1.0, -r);
        zeros += r == 0;
    }
    const double raw = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (raw <= 2.5 * m && zeros > 0) return m * std::log(m / static_cast<double>(zeros));  // linear counting
    return raw;
}

// ---------------------------------------------------------------------------------------------
// top_values

top_values::top_values(std::size_t capacity) : capacity_(std::max<std::size_t>(1, capacity)) {}

void top_values::add(std::string_view item, std::uint64_t n) {
    total_ += n;
    if (auto it = counts_.find(item); it != counts_.end()) {
        it->second.first += n;
        return;
    }
    if (counts_.size() < capacity_) {
        counts_.emplace(std::string(item), std::pair{n, std::uint64_t{0}});
        return;
    }
    // The least counted gives its place; the newcomer inherits its count as possible overstatement.
    auto least = counts_.begin();
    for (auto it = counts_.begin(); it != counts_.end(); ++it)
        if (it->second.first < least->second.first) least = it;
    const std::uint64_t floor = least->second.first;
    counts_.erase(least);
    counts_.emplace(std::string(item), std::pair{floor + n, floor});
}

void top_values::merge(const top_values& other) {
    for (const auto& [item, c] : other.counts_) {
        add(item, c.first);
        total_ -= c.first;  // add() counted it; the total is the sum of both totals
    }
    total_ += other.total_;
}

std::vector<top_values::entry> top_values::top(std::size_t n) const {
    std::vector<entry> out;
    out.reserve(counts_.size());
    for (const auto& [item, c] : counts_) out.push_back({item, c.first, c.second});
    std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) {
        return a.count != b.count ? a.count > b.count : a.value < b.value;
    });
    if (out.size() > n) out.resize(n);
    return out;
}

}  // namespace sluice
