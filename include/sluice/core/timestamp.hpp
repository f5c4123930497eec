#pragma once
// The timestamp rule, shared by event times, timestamp fields and the config loader: an RFC 3339
// time, or a number of epoch milliseconds, or of epoch seconds when below 10^11.

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

namespace sluice {

/// Why a value is not a time under the rule.
enum class timestamp_error {
    out_of_range,     // outside years 1970..9999
    not_finite,       // NaN or infinite
    sub_millisecond,  // milliseconds with a fraction (only epoch seconds may have one)
    not_a_time,       // text that is neither RFC 3339 nor a decimal number
};

/// The end of an error message that starts with the value quoted: " is outside years 1970..9999".
const char* describe(timestamp_error e);

/// Epoch milliseconds from a number under the rule: seconds below 10^11 (their fraction rounded
/// to the millisecond), milliseconds otherwise (no fraction, unless round_ms: a lenient cast).
std::variant<std::int64_t, timestamp_error> epoch_ms_from_int(std::int64_t x);
std::variant<std::int64_t, timestamp_error> epoch_ms_from_double(double x, bool round_ms = false);
/// From text: RFC 3339, or a decimal number under the rule above.
std::variant<std::int64_t, timestamp_error> epoch_ms_from_text(std::string_view text, bool round_ms = false);

/// The same, with the error dropped.
std::optional<std::int64_t> epoch_number_to_ms(double x, bool round_ms = false);
std::optional<std::int64_t> epoch_number_to_ms(std::int64_t x);
std::optional<std::int64_t> parse_timestamp_text(std::string_view text, bool round_ms = false);

/// Strict decimal parsing of a whole string ("+5" allowed for integers; no spaces).
bool parse_int_text(std::string_view s, std::int64_t& out);
bool parse_double_text(std::string_view s, double& out);

}  // namespace sluice
