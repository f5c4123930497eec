#pragma once
// Turns one raw event into a typed record of its feature set, or a dead letter with the reason.

#include <string_view>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

/// Validates and coerces events of all feature sets. Stateless after construction: any number
/// of preprocess workers may share one instance.
///
/// Coercion rules (a failure names the field and the reason):
///  - int:       JSON integer in int64 range; a number with no fraction (42.0); a decimal string ("42").
///  - double:    any finite JSON number; a numeric string ("3.5"). NaN and infinities are refused.
///  - bool:      true/false; the strings "true"/"false"; the integers 0/1.
///  - string:    a JSON string; a number or bool becomes its JSON text. Objects and arrays are refused.
///  - timestamp: an RFC 3339 string, or epoch milliseconds as an integer or a decimal string.
///  - json:      any JSON value, kept as compact text.
///  - null or absent: the field's default (or null); an error when the field is required.
///  - min/max:   checked after coercion, for int and double fields.
/// The key is a non-empty string (or an integer, kept as its decimal text) of at most 1024 bytes.
/// The event time follows the timestamp rule and must fall between years 1970 and 9999.
class record_parser {
public:
    explicit record_parser(const config& cfg);

    /// Parses a Kafka message: size limit, tombstone, JSON, then the set's schema.
    processed parse(const raw_message& msg, std::int64_t now_ms) const;

private:
    const config& cfg_;
};

}  // namespace sluice
