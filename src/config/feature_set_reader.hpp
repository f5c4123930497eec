#pragma once
// Reading feature sets: their fields, transforms, aggregations and dedup, and the checks that
// need a whole set (a transform or aggregation names a field that may come later in the file).
// The key tables (key_tables.hpp) say which keys each of these takes; this is what is done with
// them. Private to the config module; used on the loading thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json_reader.hpp"
#include "sluice/config/config.hpp"

namespace sluice::config_detail {

/// The longest feature set, field and aggregation name.
constexpr std::size_t max_name_len = 48;
constexpr std::int64_t minute_ms = 60 * 1000;
/// The widest aggregation window, and the most allowed lateness.
constexpr std::int64_t max_window_ms = 30LL * 86400 * 1000;
constexpr std::size_t max_aggregations = 64;  // per feature set; each one costs memory per key
constexpr std::size_t max_transforms = 256;   // per feature set

// A field as read, before its default can be coerced: the default depends on the type, which
// may come after it in the file.
struct field_draft {
    field_config cfg;
    bool type_ok = false;
    const json* default_json = nullptr;  // points into the parsed document, alive while loading
    const json* allowed_json = nullptr;
};

/// The most expectations per feature set.
constexpr std::size_t max_expectations = 64;

// One expectation as read: which keys it has, and the bounds and values that need its kind and
// its field's type to judge (copies: a bound written as "${VAR}" lives only while it is read).
struct expectation_draft {
    expectation_config cfg;
    bool kind_ok = false;
    std::vector<std::string> keys;  // keys given besides "expect", in file order
    std::optional<json> min;
    std::optional<json> max;
    std::optional<json> values;
};

/// The names of the expectation kinds, in to_string order.
const std::vector<std::pair<std::string, expectation_kind>>& expectation_kinds();

// One transform as read: which keys it has, and the values that need the field's type to judge.
struct transform_draft {
    transform_config cfg;
    bool op_ok = false;
    std::string op_name;
    std::vector<std::string> keys;  // keys given besides "op", in file order
    const json* value = nullptr;    // default
    // clamp: copies, not pointers into the document, since a bound written as "${VAR}" is read
    // from a number converted only for the duration of the read.
    std::optional<json> min;
    std::optional<json> max;
    const json* operand = nullptr;  // filter: the first condition's value
    std::string condition;          // filter: the first condition's key
    bool to_ok = false;             // cast: "to" names a type
};

/// A filter's conditions by name, and what each keeps (for the schema's descriptions).
struct condition_name {
    const char* name;
    filter_op op;
    const char* keeps;
};
inline constexpr condition_name conditions[] = {
    {"equals", filter_op::equals, "equals this"},         {"not_equals", filter_op::not_equals, "does not equal this"},
    {"in", filter_op::in, "is one of these"},             {"not_in", filter_op::not_in, "is none of these"},
    {"gt", filter_op::gt, "is greater than this"},        {"gte", filter_op::gte, "is at least this"},
    {"lt", filter_op::lt, "is less than this"},           {"lte", filter_op::lte, "is at most this"}};

/// A transform op by name, with the keys it takes besides "op".
struct op_name {
    const char* name;
    transform_op op;
    std::vector<std::string> keys;
};

/// Every transform op, in the order the docs list them.
const std::vector<op_name>& transform_ops();

/// The field types by the names a config writes them with ("int", "double", ...).
const std::vector<std::pair<std::string, field_type>>& type_names();

// Where the key tables hand over to this reader.

/// JSON "fields": each field through the field table, then checked whole; a bad one is left out.
void apply_fields(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d);

/// JSON "aggregations": one entry per element, checked once the whole set has been read.
void apply_aggregations(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d);

/// JSON "feature_sets": every set, its whole-set checks, and unique names and topics.
void apply_feature_sets(config& c, const json& v, const std::string& path, diagnostics& d);

}  // namespace sluice::config_detail
