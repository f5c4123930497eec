#pragma once
// One config key as data (name, description, default, type, bounds, allowed values, how to store
// it, which keys sit inside it), the builders the key tables are written with, and the one
// generic routine that reads a JSON object through a table of them. The same specs describe the
// schema (sluice/config/schema.hpp). Private to the config module; used on the loading thread.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json_reader.hpp"
#include "sluice/config/schema.hpp"

namespace sluice::config_detail {

using kind = config_value_type;

/// The words an error message uses for a kind: "integer", ..., "any value".
const char* kind_name(kind k);

bool has_kind(kind k, const json& v);

template <class S>
using apply_fn = std::function<void(S&, const json&, const std::string& path, diagnostics&)>;

/// Checks a string and may normalize it in place; returns the complaint, or nothing when it is fine.
using string_check = std::function<std::optional<std::string>(std::string&)>;

/// Appends the schema entries of the keys inside a key's value, under the key's path.
using describe_fn = std::function<void(const std::string& path, std::vector<config_key>& out)>;

/// A key's default: the JSON text of the value a config without the key gets, or, when no
/// single value says it, a note of what leaving it out means.
struct key_default {
    std::string value_json;
    std::string note;
};

inline key_default value_default(std::string value_json) { return {std::move(value_json), {}}; }
inline key_default noted_default(std::string note) { return {{}, std::move(note)}; }
inline key_default no_default() { return {}; }

/// What a key is, apart from where its value goes: everything the schema shows.
struct key_info {
    std::string name;
    std::string description;
    key_default default_value;
    kind type = kind::any;
    bool required = false;
    bool nullable = false;  // null is accepted besides the type (an optional store section)
    bool bounded = false;   // integer and number keys: lo <= value <= hi
    double lo = 0;
    double hi = 0;
    std::string min_json;   // bounds as the schema shows them, in the key's own type
    std::string max_json;
    std::vector<std::string> allowed;
    describe_fn nested;     // the keys inside its value, if any
};

/// One config key of a struct S: what it is, and how its value is stored into S.
template <class S>
struct key_spec : key_info {
    apply_fn<S> apply;
};

/// The schema entry of a key at `path`.
config_key describe_key(const key_info& k, const std::string& path);

/// Appends the schema entries of a table's keys (and of the keys inside them) under `prefix`.
template <class S>
void describe_table(const std::vector<key_spec<S>>& table, const std::string& prefix, std::vector<config_key>& out) {
    for (const auto& k : table) {
        const std::string path = prefix.empty() ? k.name : prefix + "." + k.name;
        out.push_back(describe_key(k, path));
        if (k.nested) k.nested(path, out);
    }
}

/// Describes the keys of `table` inside a key: suffix "" for an object, "[]" for the elements of
/// an array, ".*" for the values of an object whose member names are the user's.
template <class T>
describe_fn keys_of(const std::vector<key_spec<T>>& (*table)(), std::string suffix = {}) {
    return [table, suffix = std::move(suffix)](const std::string& path, std::vector<config_key>& out) {
        describe_table(table(), path + suffix, out);
    };
}

// ---------------------------------------------------------------------------------------------
// Builders

template <class S>
key_spec<S> required(key_spec<S> k) {
    k.required = true;
    k.default_value = no_default();
    return k;
}

template <class S>
key_spec<S> with_nested(key_spec<S> k, describe_fn nested) {
    k.nested = std::move(nested);
    return k;
}

template <class S>
key_spec<S> with_allowed(key_spec<S> k, std::vector<std::string> allowed) {
    k.allowed = std::move(allowed);
    return k;
}

/// Inclusive bounds as the schema shows them, for keys whose own check enforces them (durations).
template <class S>
key_spec<S> with_range_text(key_spec<S> k, const std::string& lo_text, const std::string& hi_text) {
    k.min_json = quote(lo_text);
    k.max_json = quote(hi_text);
    return k;
}

template <class S, class T>
key_spec<S> integer_key(std::string name, std::string description, T S::*member, double lo, double hi) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_value = value_default(std::to_string(S{}.*member));
    k.type = kind::integer;
    k.bounded = true;
    k.lo = lo;
    k.hi = hi;
    k.min_json = std::to_string(static_cast<long long>(lo));
    k.max_json = std::to_string(static_cast<long long>(hi));
    k.apply = [member](S& s, const json& v, const std::string&, diagnostics&) {
        s.*member = static_cast<T>(v.get<std::int64_t>());
    };
    return k;
}

template <class S>
key_spec<S> number_key(std::string name, std::string description, double S::*member, double lo, double hi) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_value = value_default(format_number(S{}.*member));
    k.type = kind::number;
    k.bounded = true;
    k.lo = lo;
    k.hi = hi;
    k.min_json = format_number(lo);
    k.max_json = format_number(hi);
    k.apply = [member](S& s, const json& v, const std::string&, diagnostics&) { s.*member = v.get<double>(); };
    return k;
}

template <class S>
key_spec<S> bool_key(std::string name, std::string description, bool S::*member) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_value = value_default(S{}.*member ? "true" : "false");
    k.type = kind::boolean;
    k.apply = [member](S& s, const json& v, const std::string&, diagnostics&) { s.*member = v.get<bool>(); };
    return k;
}

template <class S>
key_spec<S> string_key(std::string name, std::string description, std::string S::*member, string_check check = {}) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_value = value_default(quote(S{}.*member));
    k.type = kind::string;
    k.apply = [member, check](S& s, const json& v, const std::string& path, diagnostics& d) {
        std::string text = v.get<std::string>();
        if (check) {
            if (auto complaint = check(text)) {
                d.add(path, std::move(*complaint));
                return;
            }
        }
        s.*member = std::move(text);
    };
    return k;
}

/// A key whose value goes wherever `apply` puts it.
template <class S>
key_spec<S> custom_key(std::string name, std::string description, key_default dflt, kind type, apply_fn<S> apply) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_value = std::move(dflt);
    k.type = type;
    k.apply = std::move(apply);
    return k;
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Out-of-range message for a bounded key, or nothing when the value is inside its bounds.
std::optional<std::string> bounds_complaint(const key_info& k, const json& v);

/// A number or boolean written as "${VAR}" arrives as a string; read it as the key's type.
std::optional<json> from_environment(kind k, const json& v);

/// The complaint for a key that is not in the table, with a suggestion when one is close.
std::string unknown_key_complaint(const std::string& key, const std::vector<std::string>& names);

/// Reads one JSON object through its key table into `out`.
template <class S>
void read_object(const json& j, const std::string& path, const std::vector<key_spec<S>>& table, S& out,
                 diagnostics& d) {
    if (!j.is_object()) {
        d.add(path, expected("object", j));
        return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string p = child_path(path, it.key());
        const auto spec = std::find_if(table.begin(), table.end(), [&](const auto& k) { return k.name == it.key(); });
        if (spec == table.end()) {
            std::vector<std::string> names;
            for (const auto& k : table) names.push_back(k.name);
            d.add(p, unknown_key_complaint(it.key(), names));
            continue;
        }
        const json* v = &it.value();
        std::optional<json> converted;
        if (d.substituted(p) && (converted = from_environment(spec->type, *v))) v = &*converted;
        if (!has_kind(spec->type, *v) && !(spec->nullable && v->is_null())) {
            d.add(p, expected(kind_name(spec->type), *v));
            continue;
        }
        if (auto complaint = bounds_complaint(*spec, *v)) {
            d.add(p, std::move(*complaint));
            continue;
        }
        spec->apply(out, *v, p, d);
    }
    for (const auto& k : table)
        if (k.required && !j.contains(k.name)) d.add(child_path(path, k.name), "required key is missing");
}

}  // namespace sluice::config_detail
