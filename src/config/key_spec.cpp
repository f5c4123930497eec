// The non-template half of a key spec: kinds, bounds, values from the environment, unknown keys,
// and a key's schema entry.

#include "key_spec.hpp"

namespace sluice::config_detail {

const char* kind_name(kind k) {
    switch (k) {
        case kind::integer: return "integer";
        case kind::number: return "number";
        case kind::boolean: return "boolean";
        case kind::string: return "string";
        case kind::object: return "object";
        case kind::array: return "array";
        case kind::any: return "any value";
    }
    return "value";
}

bool has_kind(kind k, const json& v) {
    switch (k) {
        case kind::integer: return v.is_number_integer();
        case kind::number: return v.is_number();
        case kind::boolean: return v.is_boolean();
        case kind::string: return v.is_string();
        case kind::object: return v.is_object();
        case kind::array: return v.is_array();
        case kind::any: return true;
    }
    return false;
}

config_key describe_key(const key_info& k, const std::string& path) {
    config_key out;
    out.path = path;
    out.type = k.type;
    out.required = k.required;
    out.default_json = k.default_value.value_json;
    out.default_note = k.default_value.note;
    out.min_json = k.min_json;
    out.max_json = k.max_json;
    out.allowed = k.allowed;
    out.description = k.description;
    return out;
}

std::optional<std::string> bounds_complaint(const key_info& k, const json& v) {
    if (!k.bounded) return std::nullopt;
    const auto between = [&](const std::string& got) {
        if (k.type == kind::integer)
            return "must be between " + std::to_string(static_cast<long long>(k.lo)) + " and " +
                   std::to_string(static_cast<long long>(k.hi)) + ", got " + got;
        return "must be between " + format_number(k.lo) + " and " + format_number(k.hi) + ", got " + got;
    };
    if (v.is_number_integer() && !fits_int64(v)) return between(compact(v));
    if (k.type == kind::integer) {
        const std::int64_t x = v.get<std::int64_t>();
        if (static_cast<double>(x) < k.lo || static_cast<double>(x) > k.hi) return between(std::to_string(x));
    } else {
        const double x = v.get<double>();
        if (!(x >= k.lo && x <= k.hi)) return between(compact(v));
    }
    return std::nullopt;
}

// A number or boolean written as "${VAR}" arrives as a string; read it as the key's type.
std::optional<json> from_environment(kind k, const json& v) {
    if (!v.is_string() || (k != kind::integer && k != kind::number && k != kind::boolean)) return std::nullopt;
    json parsed = json::parse(v.get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !has_kind(k, parsed)) return std::nullopt;
    return parsed;
}

std::string unknown_key_complaint(const std::string& key, const std::vector<std::string>& names) {
    const auto hint = suggest(key, names);
    return hint ? "unknown key (did you mean \"" + *hint + "\"?)" : "unknown key";
}

}  // namespace sluice::config_detail
