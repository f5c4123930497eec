#pragma once
// Turns one raw event into a typed record of its feature set, a dead letter with the reason, or
// a skipped item (filtered out). The deduplicator, which drops repeated event ids after parsing,
// has its own header, included here for the callers that use both.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/preprocess/deduplicator.hpp"

namespace sluice {

/// Validates, coerces and transforms events of all feature sets. Stateless after construction:
/// any number of preprocess workers may share one instance. The constructor resolves the
/// transforms' fields by name and throws std::invalid_argument for a config the loader would
/// have refused (start-up only); parse() never throws.
///
/// Where values come from:
///  - A field's value is at its `source`, a JSON pointer (RFC 6901: "/device/os", "~1" for "/",
///    "~0" for "~", a decimal token indexes an array); "" means "/<field name>".
///  - The set's `key` and `event_time` name a top-level member, or are a JSON pointer when they
///    start with "/".
///  - Members an event has but the set does not read are ignored.
///
/// Coercion rules (a failure names the field and the reason):
///  - int:       JSON integer in int64 range; a number with no fraction (42.0); a decimal string ("42").
///  - double:    any finite JSON number; a numeric string ("3.5"). NaN and infinities are refused.
///  - bool:      true/false; the strings "true"/"false"; the integers 0/1.
///  - string:    a JSON string; a number or bool becomes its JSON text. Objects and arrays are refused.
///  - timestamp: an RFC 3339 string; or a number (JSON number or decimal string) of epoch
///               milliseconds, read as epoch SECONDS when it is below 10^11 (10^11 ms is only
///               1973-03-03, 10^11 s is year 5138). Seconds may have a fraction, rounded to the
///               nearest millisecond; milliseconds may not. Must fall in years 1970..9999.
///  - json:      any JSON value, kept as compact text.
///  - null or absent: the field's default (or null); an error when the field is required.
///  - min/max and allowed: checked on the final value (after the field's transforms); null passes.
///    A value outside `allowed` is refused naming the field and the allowed values.
/// The key is a non-empty string (or an integer, kept as its decimal text) of at most 1024 bytes.
/// The event time follows the timestamp rule. When it is absent or null and the set says
/// "event_time_fallback": "kafka_timestamp", the Kafka message timestamp is used instead (a
/// message without one, e.g. an HTTP push, is still a dead letter).
///
/// Transforms ("transforms": [...] of the set) run in this order, which the loader enforces in
/// the file (renames first, filters last, a cast first among its field's transforms):
///  1. rename {from, to}: on the raw event, in file order: the top-level member `from` becomes
///     `to` (replacing any `to`). `to` must be read by a field, the key or the event time.
///  2. Each field is read from its source. cast {field, to} (to = the field's own type) first
///     converts the raw value leniently: int truncates 42.9 → 42 and reads " 42.9 "; double reads
///     " 3.5 " and true → 1; bool reads 0/non-zero and "yes"/"no"/"y"/"n"/"on"/"off"/"1"/"0"
///     (any case); string takes objects and arrays as compact JSON text; timestamp rounds
///     fractional milliseconds. Otherwise the strict coercion above applies.
///  3. The field's value transforms, in file order: default {field, value} (a null becomes the
///     value), clamp {field, min, max} (int/double), lower, upper, trim (ASCII only, string
///     fields; null stays null), hash {field, salt} (string → lowercase hex SHA-256 of salt +
///     value). Then min/max and allowed are checked.
///  4. filter {field, equals|not_equals|in|not_in|gt|gte|lt|lte: operand}: in file order; the
///     first that fails makes the event `skipped` (it writes nothing; its offset counts).
///     Comparisons with null are false except not_equals and not_in (and equals null).
///     Filters are decided before anything else is read: an event of another kind on a shared
///     topic is skipped even when it lacks the key or other fields; only the filtered fields'
///     own errors make it a dead letter.
///  5. drop {field}: the field is read, checked and seen by filters, but stored as null.
/// Every transform except rename works on one declared field, so the order matters only among
/// the transforms of the same field.
class record_parser {
public:
    explicit record_parser(const config& cfg);
    ~record_parser();

    /// Parses a Kafka message: size limit, tombstone, JSON, then the set's schema and transforms.
    processed parse(const raw_message& msg, std::int64_t now_ms) const;

    struct set_plan;  // the compiled form of one feature set (src/preprocess/parser/plan.hpp)

private:
    processed parse_event(const raw_message& msg, std::int64_t now_ms) const;
    std::string quarantine_rule(const record& r, const raw_message& msg) const;

    const config& cfg_;
    std::shared_ptr<const std::vector<set_plan>> plans_;
};

/// A parser owning its config (a live reload's: the config lives as long as the parser).
std::shared_ptr<const record_parser> make_parser(std::shared_ptr<const config> cfg);

}  // namespace sluice
