#pragma once
// Type coercion of the record parser: a raw JSON value into a field's type, strictly (coerce) or
// leniently (cast_value, the cast transform), and the texts and comparisons of values that the
// parser's error messages, checks and filters share. The rules are in record_parser.hpp.
//
// Pure functions of their arguments: any preprocess worker calls them at once.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/core/field_type.hpp"
#include "sluice/core/record.hpp"

namespace sluice::parser {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Text

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

inline std::string_view trim_view(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
inline char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

/// A raw value as an error message quotes it: its JSON text, cut to 64 bytes.
std::string describe(const json& v);
/// A double as JSON prints it.
std::string number_text(double d);
/// A value as JSON text, for messages: "DE", 42, 3.5, true, null.
std::string value_text(const value& v);
/// Values as a comma-separated list, at most 10 of them quoted.
std::string list_text(const std::vector<value>& values);
/// Error texts may quote input bytes (the JSON parser does): this keeps them valid UTF-8 without
/// NULs, or the dead letter itself could not be stored.
std::string sanitize_utf8(const std::string& s);

// ---------------------------------------------------------------------------------------------
// Comparison

/// a <=> b for numbers (int64 exactly, else as doubles) and strings; nothing for other pairs.
std::optional<int> compare(const value& a, const value& b);
/// Equal by compare() where it applies, else by type and value.
bool same(const value& a, const value& b);

// ---------------------------------------------------------------------------------------------
// Coercion

/// A coercion failure: the reason only; the caller adds the field name.
struct coerce_error {
    std::string reason;
};

/// The timestamp rule (sluice/core/timestamp.hpp) on a raw value; round_ms for a lenient cast.
std::variant<std::int64_t, coerce_error> to_timestamp(const json& v, bool round_ms = false);

/// Strict coercion into the field's type (no transforms).
std::variant<value, coerce_error> coerce(field_type type, const json& v);

/// Lenient conversion (the cast transform): into the field's own type, accepting more shapes.
std::variant<value, coerce_error> cast_value(field_type type, const json& v);

}  // namespace sluice::parser
