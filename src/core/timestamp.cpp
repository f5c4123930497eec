#include "sluice/core/timestamp.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "sluice/core/clock.hpp"

namespace sluice {

namespace {

constexpr std::int64_t max_event_time_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z
constexpr std::int64_t seconds_below = 100000000000;         // 10^11: smaller numbers are epoch seconds

template <class T>
std::optional<std::int64_t> drop_error(const std::variant<std::int64_t, T>& r) {
    if (const auto* ms = std::get_if<std::int64_t>(&r)) return *ms;
    return std::nullopt;
}

}  // namespace

const char* describe(timestamp_error e) {
    switch (e) {
        case timestamp_error::out_of_range: return " is outside years 1970..9999";
        case timestamp_error::not_finite: return " is not a finite number";
        case timestamp_error::sub_millisecond:
            return " has a fraction of a millisecond (only epoch seconds may have a fraction)";
        case timestamp_error::not_a_time: return " is neither RFC 3339 nor epoch seconds or milliseconds";
    }
    return " is not a time";
}

bool parse_int_text(std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    const char* first = s.data();
    if (*first == '+') ++first;
    if (first == s.data() + s.size() || (*first == '-' && first != s.data())) return false;
    auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
}

bool parse_double_text(std::string_view s, double& out) {
    if (s.empty()) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
}

std::variant<std::int64_t, timestamp_error> epoch_ms_from_int(std::int64_t x) {
    if (x < 0) return timestamp_error::out_of_range;
    const std::int64_t ms = x < seconds_below ? x * 1000 : x;
    if (ms > max_event_time_ms) return timestamp_error::out_of_range;
    return ms;
}

std::variant<std::int64_t, timestamp_error> epoch_ms_from_double(double x, bool round_ms) {
    if (!std::isfinite(x)) return timestamp_error::not_finite;
    if (x < 0) return timestamp_error::out_of_range;
    double ms;
    if (x < static_cast<double>(seconds_below)) {
        ms = std::round(x * 1000);
    } else {
        if (!round_ms && std::trunc(x) != x) return timestamp_error::sub_millisecond;
        ms = std::round(x);
    }
    if (ms > static_cast<double>(max_event_time_ms)) return timestamp_error::out_of_range;
    return static_cast<std::int64_t>(ms);
}

std::variant<std::int64_t, timestamp_error> epoch_ms_from_text(std::string_view s, bool round_ms) {
    if (auto t = parse_rfc3339(s)) {
        if (*t < 0 || *t > max_event_time_ms) return timestamp_error::out_of_range;
        return *t;
    }
    std::int64_t i;
    if (parse_int_text(s, i)) return epoch_ms_from_int(i);
    double d;
    // A decimal number only: from_chars would also take "inf" and "nan", which are no times.
    const bool decimal = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+';
    });
    if (decimal && parse_double_text(s, d)) return epoch_ms_from_double(d, round_ms);
    return timestamp_error::not_a_time;
}

std::optional<std::int64_t> epoch_number_to_ms(double x, bool round_ms) { return drop_error(epoch_ms_from_double(x, round_ms)); }
std::optional<std::int64_t> epoch_number_to_ms(std::int64_t x) { return drop_error(epoch_ms_from_int(x)); }
std::optional<std::int64_t> parse_timestamp_text(std::string_view text, bool round_ms) {
    return drop_error(epoch_ms_from_text(text, round_ms));
}

}  // namespace sluice
