#pragma once
// The config schema as data: every key the loader accepts, with its type, default, bounds and
// description. It is read from the same key tables that drive the loader, so what
// `sluice --describe-config`, the README's config reference and config/sluice.example.json show
// is what the loader does.

#include <string>
#include <vector>

namespace sluice {

/// The JSON type a config key takes.
enum class config_value_type { integer, number, boolean, string, object, array, any };

/// "integer", "number", "boolean", "string", "object", "array", "any".
const char* to_string(config_value_type t);

/// One key the loader accepts, e.g. {"http.read_timeout_ms", integer, default "10000", 100..3600000}.
struct config_key {
    /// Where the key sits: "http.read_timeout_ms". "[]" stands for every element of an array
    /// ("feature_sets[].name") and "*" for every member of an object whose member names are the
    /// user's ("feature_sets[].fields.*.type").
    std::string path;
    config_value_type type = config_value_type::any;
    bool required = false;
    /// JSON text of the value a config that leaves the key out gets ("10000", "\"info\"", "{}",
    /// "null"); empty for a required key and where no single value says it (see default_note).
    std::string default_json;
    /// When default_json is empty and the key is optional: what leaving it out means ("none",
    /// "off", "\"/<field name>\"").
    std::string default_note;
    /// Inclusive bounds as JSON text in the key's own type ("1", "0.1", "\"1m\""); empty = none.
    std::string min_json;
    std::string max_json;
    /// The only values a string key (or the elements of an array key) may take; empty = any.
    std::vector<std::string> allowed;
    std::string description;
};

/// Every key, depth first in the order of the key tables (a section, then the keys inside it).
/// Built once on first use; safe to call from any thread after that.
const std::vector<config_key>& config_schema();

/// The schema as a text table, one key per line under a header line.
std::string describe_config_text();

/// The schema as a JSON array, one object per key: {"path", "type", "required", "default" (when
/// default_json is set), "default_note", "min", "max", "allowed" (when set), "description"}.
std::string describe_config_json();

}  // namespace sluice
