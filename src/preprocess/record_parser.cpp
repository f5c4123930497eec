// The record parser and the deduplicator (the rules are in record_parser.hpp).
//
// The constructor compiles each feature set once: sources become JSON pointer tokens and the
// transforms are grouped by the field they work on, so parse() only walks the event. parse()
// runs on every preprocess worker at once; it touches nothing but its arguments, the compiled
// plans and its own thread's simdjson parser (the fast path), and it never throws.

#include "sluice/preprocess/record_parser.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>
#include <simdjson.h>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "sluice/core/clock.hpp"
#include "sluice/core/sha256.hpp"
#include "sluice/core/timestamp.hpp"

namespace sluice {

using json = nlohmann::json;

namespace {

constexpr std::size_t max_key_bytes = 1024;
constexpr std::int64_t max_event_time_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z
constexpr std::size_t max_listed_values = 10;                // allowed values quoted in one error

// A coercion failure: the reason only; the caller adds the field name.
struct coerce_error {
    std::string reason;
};

std::string describe(const json& v) {
    std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 64) text = text.substr(0, 61) + "...";
    return text;
}

// The value an error message quotes, described only once there is an error: describe() dumps
// the value, which would cost every valid event time and every cast as much as a small parse.
class quoted {
public:
    quoted() = default;  // quotes nothing: for callers that keep only whether it succeeded
    explicit quoted(const json& v) : v_(&v) {}
    std::string text() const { return v_ ? describe(*v_) : std::string(); }

private:
    const json* v_ = nullptr;
};

std::string number_text(double d) {
    json j = d;
    return j.dump();
}

// A value as JSON text, for messages: "DE", 42, 3.5, true, null.
std::string value_text(const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return "null";
    if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (const auto* d = std::get_if<double>(&v)) return number_text(*d);
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    return describe(json(std::get<std::string>(v)));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim_view(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

// ---------------------------------------------------------------------------------------------
// Timestamps

template <class T>
std::variant<T, coerce_error> with_quote(std::variant<T, timestamp_error> r, const quoted& shown) {
    if (auto* e = std::get_if<timestamp_error>(&r)) return coerce_error{shown.text() + describe(*e)};
    return std::get<T>(r);
}

std::variant<std::int64_t, coerce_error> ms_from_int(std::int64_t x, const quoted& shown) {
    return with_quote(epoch_ms_from_int(x), shown);
}

std::variant<std::int64_t, coerce_error> ms_from_double(double x, bool round_ms, const quoted& shown) {
    return with_quote(epoch_ms_from_double(x, round_ms), shown);
}

std::variant<std::int64_t, coerce_error> ms_from_text(std::string_view s, bool round_ms, const quoted& shown) {
    return with_quote(epoch_ms_from_text(s, round_ms), shown);
}

std::variant<std::int64_t, coerce_error> to_timestamp(const json& v, bool round_ms = false) {
    if (v.is_string()) return ms_from_text(v.get_ref<const std::string&>(), round_ms, quoted(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        return coerce_error{describe(v) + " is outside years 1970..9999"};
    if (v.is_number_integer()) return ms_from_int(v.get<std::int64_t>(), quoted(v));
    if (v.is_number_float()) return ms_from_double(v.get<double>(), round_ms, quoted(v));
    return coerce_error{"expected an RFC 3339 string or epoch seconds or milliseconds, got " + describe(v)};
}

// ---------------------------------------------------------------------------------------------
// Strict coercion (no transforms)

std::variant<std::int64_t, coerce_error> int_from_double(double d, const quoted& shown) {
    // -2^63 itself is refused too: a literal just below it rounds to exactly -2^63 as a double.
    if (!std::isfinite(d) || d <= -9.2233720368547758e18 || d >= 9.2233720368547758e18)
        return coerce_error{shown.text() + " is out of the 64-bit integer range"};
    return static_cast<std::int64_t>(d);
}

std::variant<std::int64_t, coerce_error> to_int(const json& v) {
    if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
            return coerce_error{describe(v) + " is out of the 64-bit integer range"};
        return v.get<std::int64_t>();
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!std::isfinite(d) || std::trunc(d) != d) return coerce_error{describe(v) + " is not an integer"};
        return int_from_double(d, quoted(v));
    }
    if (v.is_string()) {
        std::int64_t out;
        if (parse_int_text(v.get_ref<const std::string&>(), out)) return out;
        return coerce_error{describe(v) + " is not an integer"};
    }
    return coerce_error{"expected an integer, got " + describe(v)};
}

std::variant<double, coerce_error> to_double(const json& v) {
    double d;
    if (v.is_number()) {
        d = v.get<double>();
    } else if (v.is_string()) {
        if (!parse_double_text(v.get_ref<const std::string&>(), d)) return coerce_error{describe(v) + " is not a number"};
    } else {
        return coerce_error{"expected a number, got " + describe(v)};
    }
    if (!std::isfinite(d)) return coerce_error{describe(v) + " is not a finite number"};
    return d;
}

std::variant<bool, coerce_error> to_bool(const json& v) {
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s == "true") return true;
        if (s == "false") return false;
    }
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i == 0 || i == 1) return i == 1;
    }
    return coerce_error{"expected a bool, got " + describe(v)};
}

// True when a string or an object key anywhere in v holds a NUL character.
bool contains_nul(const json& v) {
    if (v.is_string()) return v.get_ref<const std::string&>().find('\0') != std::string::npos;
    if (v.is_object()) {
        for (const auto& [k, item] : v.items())
            if (k.find('\0') != std::string::npos || contains_nul(item)) return true;
    } else if (v.is_array()) {
        for (const auto& item : v)
            if (contains_nul(item)) return true;
    }
    return false;
}

const char* const nul_in_text = "contains a NUL character, which PostgreSQL text cannot store";
const char* const nul_in_json = "contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store";

template <class T>
std::variant<value, coerce_error> lift(std::variant<T, coerce_error> r) {
    if (auto* e = std::get_if<coerce_error>(&r)) return *e;
    return value{std::get<T>(r)};
}

std::variant<value, coerce_error> coerce(field_type type, const json& v) {
    switch (type) {
        case field_type::int64:
            return lift(to_int(v));
        case field_type::float64:
            return lift(to_double(v));
        case field_type::boolean:
            return lift(to_bool(v));
        case field_type::string:
            if (v.is_string()) {
                if (v.get_ref<const std::string&>().find('\0') != std::string::npos) return coerce_error{nul_in_text};
                return value{v.get<std::string>()};
            }
            if (v.is_number() || v.is_boolean()) return value{v.dump()};
            return coerce_error{"expected a string, got " + describe(v)};
        case field_type::timestamp:
            return lift(to_timestamp(v));
        case field_type::json:
            if (contains_nul(v)) return coerce_error{nul_in_json};
            return value{v.dump()};
    }
    return coerce_error{"unknown field type"};
}

// ---------------------------------------------------------------------------------------------
// Lenient conversion (the cast transform): into the field's own type, accepting more shapes.

std::variant<value, coerce_error> cast_value(field_type type, const json& v) {
    const auto cannot = [&] { return coerce_error{"cannot cast " + describe(v) + " to " + to_string(type)}; };
    switch (type) {
        case field_type::int64: {
            if (v.is_boolean()) return value{std::int64_t{v.get<bool>() ? 1 : 0}};
            if (v.is_number_integer()) return lift(to_int(v));
            double d;
            if (v.is_number_float()) {
                d = v.get<double>();
            } else if (v.is_string()) {
                const auto s = trim_view(v.get_ref<const std::string&>());
                std::int64_t i;
                if (parse_int_text(s, i)) return value{i};
                if (!parse_double_text(s, d) || !std::isfinite(d)) return cannot();
            } else {
                return cannot();
            }
            return lift(int_from_double(std::trunc(d), quoted(v)));
        }
        case field_type::float64: {
            if (v.is_boolean()) return value{v.get<bool>() ? 1.0 : 0.0};
            if (v.is_number()) return lift(to_double(v));
            double d;
            if (v.is_string() && parse_double_text(trim_view(v.get_ref<const std::string&>()), d) && std::isfinite(d))
                return value{d};
            return cannot();
        }
        case field_type::boolean: {
            if (v.is_boolean()) return value{v.get<bool>()};
            if (v.is_number_unsigned()) return value{v.get<std::uint64_t>() != 0};
            if (v.is_number_integer()) return value{v.get<std::int64_t>() != 0};
            if (v.is_number_float()) return value{v.get<double>() != 0.0};
            if (v.is_string()) {
                std::string s(trim_view(v.get_ref<const std::string&>()));
                std::transform(s.begin(), s.end(), s.begin(), ascii_lower);
                for (const char* t : {"true", "yes", "y", "t", "on", "1"})
                    if (s == t) return value{true};
                for (const char* f : {"false", "no", "n", "f", "off", "0"})
                    if (s == f) return value{false};
            }
            return cannot();
        }
        case field_type::string:
            if (v.is_string()) return coerce(type, v);
            if (contains_nul(v)) return coerce_error{nul_in_text};
            return value{v.dump()};
        case field_type::timestamp:
            if (v.is_string()) {
                const auto s = trim_view(v.get_ref<const std::string&>());
                return lift(ms_from_text(s, /*round_ms=*/true, quoted(v)));
            }
            return lift(to_timestamp(v, /*round_ms=*/true));
        case field_type::json:
            return coerce(type, v);
    }
    return cannot();
}

// ---------------------------------------------------------------------------------------------
// JSON pointers

using tokens = std::vector<std::string>;

// RFC 6901: "/a/b~1c" → {"a", "b/c"}; nothing when it does not start with "/" or has a bad "~".
std::optional<tokens> parse_pointer(std::string_view p) {
    if (p.empty() || p[0] != '/') return std::nullopt;
    tokens out;
    std::string current;
    for (std::size_t i = 1; i <= p.size(); ++i) {
        if (i == p.size() || p[i] == '/') {
            out.push_back(std::move(current));
            current.clear();
        } else if (p[i] == '~') {
            if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
            current += p[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            current += p[i];
        }
    }
    return out;
}

// A set's key or event time: a JSON pointer when it starts with "/", else one member name.
tokens member_or_pointer(const std::string& text, const char* what) {
    if (text.empty() || text[0] != '/') return {text};
    auto t = parse_pointer(text);
    if (!t) throw std::invalid_argument(std::string("invalid JSON pointer in ") + what + ": " + text);
    return *t;
}

// The value a pointer names, or null when the event has nothing there.
const json* find_at(const json& doc, const tokens& path) {
    const json* at = &doc;
    for (const auto& t : path) {
        if (at->is_object()) {
            const auto it = at->find(t);
            if (it == at->end()) return nullptr;
            at = &*it;
        } else if (at->is_array()) {
            // A decimal index without leading zeros; "-" (past the end) never names a value.
            if (t.empty() || (t.size() > 1 && t[0] == '0') ||
                !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return nullptr;
            std::size_t index = 0;
            auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), index);
            if (ec != std::errc{} || ptr != t.data() + t.size() || index >= at->size()) return nullptr;
            at = &(*at)[index];
        } else {
            return nullptr;
        }
    }
    return at;
}

// ---------------------------------------------------------------------------------------------
// Values

// a <=> b for numbers (int64 exactly, else as doubles) and strings; nothing for other pairs.
std::optional<int> compare(const value& a, const value& b) {
    const auto* ai = std::get_if<std::int64_t>(&a);
    const auto* bi = std::get_if<std::int64_t>(&b);
    if (ai && bi) return *ai < *bi ? -1 : *ai > *bi ? 1 : 0;
    const auto as_double = [](const value& v) -> std::optional<double> {
        if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
        if (const auto* d = std::get_if<double>(&v)) return *d;
        return std::nullopt;
    };
    const auto ad = as_double(a), bd = as_double(b);
    if (ad && bd) return *ad < *bd ? -1 : *ad > *bd ? 1 : 0;
    const auto* as = std::get_if<std::string>(&a);
    const auto* bs = std::get_if<std::string>(&b);
    if (as && bs) return as->compare(*bs) < 0 ? -1 : as->compare(*bs) > 0 ? 1 : 0;
    return std::nullopt;
}

bool same(const value& a, const value& b) {
    if (auto c = compare(a, b)) return *c == 0;
    return a == b;
}

std::string list_text(const std::vector<value>& values) {
    std::string out;
    for (std::size_t i = 0; i < values.size() && i < max_listed_values; ++i) {
        if (i) out += ", ";
        out += value_text(values[i]);
    }
    if (values.size() > max_listed_values) out += ", ... (" + std::to_string(values.size()) + " in all)";
    return out;
}

// min/max and allowed, on the final value.
std::optional<std::string> check(const field_config& f, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
    if (const auto* i = std::get_if<std::int64_t>(&v); i && f.type == field_type::int64) {
        if (f.min && static_cast<double>(*i) < *f.min)
            return std::to_string(*i) + " is below the minimum " + number_text(*f.min);
        if (f.max && static_cast<double>(*i) > *f.max)
            return std::to_string(*i) + " is above the maximum " + number_text(*f.max);
    } else if (const auto* d = std::get_if<double>(&v)) {
        if (f.min && *d < *f.min) return number_text(*d) + " is below the minimum " + number_text(*f.min);
        if (f.max && *d > *f.max) return number_text(*d) + " is above the maximum " + number_text(*f.max);
    }
    if (!f.allowed.empty() &&
        std::none_of(f.allowed.begin(), f.allowed.end(), [&](const value& a) { return same(a, v); }))
        return value_text(v) + " is not one of the allowed values " + list_text(f.allowed);
    return std::nullopt;
}

void apply_value_transform(const transform_config& t, value& v) {
    switch (t.op) {
        case transform_op::set_default:
            if (std::holds_alternative<std::monostate>(v)) v = t.default_value;
            return;
        case transform_op::clamp: {
            if (std::holds_alternative<std::monostate>(v)) return;
            const bool was_int = std::holds_alternative<std::int64_t>(v);
            bool below = false, above = false;
            if (!std::holds_alternative<std::monostate>(t.clamp_min)) {
                const auto c = compare(v, t.clamp_min);
                below = c && *c < 0;
            }
            if (!below && !std::holds_alternative<std::monostate>(t.clamp_max)) {
                const auto c = compare(v, t.clamp_max);
                above = c && *c > 0;
            }
            if (!below && !above) return;
            const value& bound = below ? t.clamp_min : t.clamp_max;
            // The loader gives the bounds the field's type; keep the type for a config built by hand.
            if (const auto* d = std::get_if<double>(&bound); d && was_int)
                v = static_cast<std::int64_t>(below ? std::ceil(*d) : std::floor(*d));
            else if (const auto* i = std::get_if<std::int64_t>(&bound); i && !was_int)
                v = static_cast<double>(*i);
            else
                v = bound;
            return;
        }
        case transform_op::lower:
            if (auto* s = std::get_if<std::string>(&v)) std::transform(s->begin(), s->end(), s->begin(), ascii_lower);
            return;
        case transform_op::upper:
            if (auto* s = std::get_if<std::string>(&v)) std::transform(s->begin(), s->end(), s->begin(), ascii_upper);
            return;
        case transform_op::trim:
            if (auto* s = std::get_if<std::string>(&v)) *s = std::string(trim_view(*s));
            return;
        case transform_op::hash:
            if (auto* s = std::get_if<std::string>(&v)) *s = sha256_hex(t.salt + *s);
            return;
        case transform_op::rename:
        case transform_op::cast:
        case transform_op::drop:
        case transform_op::filter:
            return;  // not value transforms: handled by the plan
    }
}

const char* condition_text(filter_op c) {
    switch (c) {
        case filter_op::equals:
            return "=";
        case filter_op::not_equals:
            return "!=";
        case filter_op::in:
            return "in";
        case filter_op::not_in:
            return "not in";
        case filter_op::gt:
            return ">";
        case filter_op::gte:
            return ">=";
        case filter_op::lt:
            return "<";
        case filter_op::lte:
            return "<=";
    }
    return "?";
}

bool satisfies(const value& v, filter_op c, const std::vector<value>& operands) {
    const auto any_same = [&] {
        return std::any_of(operands.begin(), operands.end(), [&](const value& o) { return same(v, o); });
    };
    if (c == filter_op::in) return any_same();
    if (c == filter_op::not_in) return !any_same();
    if (operands.empty()) return false;
    const value& o = operands.front();
    if (c == filter_op::equals) return same(v, o);
    if (c == filter_op::not_equals) return !same(v, o);
    if (std::holds_alternative<std::monostate>(v)) return false;  // null is not ordered
    const auto r = compare(v, o);
    if (!r) return false;
    switch (c) {
        case filter_op::gt:
            return *r > 0;
        case filter_op::gte:
            return *r >= 0;
        case filter_op::lt:
            return *r < 0;
        case filter_op::lte:
            return *r <= 0;
        default:
            return false;
    }
}

// ---------------------------------------------------------------------------------------------
// Dead letters

// Error texts may quote input bytes (the JSON parser does): keep them valid UTF-8 without NULs,
// or the dead letter itself could not be stored.
std::string sanitize_utf8(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        bool valid = len > 0 && i + len <= s.size() && !(len == 1 && c == 0);
        for (std::size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
        if (valid && len == 2 && c < 0xC2) valid = false;
        if (valid) {
            out.append(s, i, len);
            i += len;
        } else {
            out += '?';
            ++i;
        }
    }
    return out;
}

dead_letter make_dead_letter(const raw_message& msg, std::string error, std::int64_t now) {
    dead_letter d;
    d.set_index = msg.set_index;
    d.source = msg.source;
    d.payload = msg.payload;
    d.error = sanitize_utf8(error);
    d.received_at_ms = now;
    return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The compiled plan

namespace {

struct field_plan {
    tokens source;
    bool cast = false;                    // a cast transform converts the raw value leniently
    std::vector<transform_config> steps;  // default, clamp, lower, upper, trim, hash in file order
    bool drop = false;
};

struct filter_plan {
    std::size_t transform_index = 0;  // in the set's transforms, for the reason
    std::size_t field = 0;
    filter_op condition = filter_op::equals;
    std::vector<value> operands;
};

}  // namespace

struct record_parser::set_plan {
    std::vector<std::pair<std::string, std::string>> renames;  // from → to, in file order
    tokens key;
    tokens event_time;
    std::vector<field_plan> fields;
    std::vector<filter_plan> filters;
    std::vector<std::size_t> filter_fields;  // fields read before the filters, each once
    // The fast path (parse_members) serves a set with no renames whose fields, key and event time
    // are each one top-level member. members: those names, each once, the key's and the event
    // time's first; slot: for each read (field i is i, then the key, then the event time), the
    // index of its member.
    bool fast = false;
    std::vector<std::string> members;
    std::vector<std::size_t> slot;
};

namespace {

using set_plan = record_parser::set_plan;

// A message larger than this takes the nlohmann path: the thread's simdjson parser keeps buffers
// of about 14 bytes per byte of the largest document it has read, and events are far smaller.
constexpr std::size_t fast_path_max_bytes = 64 * 1024;

std::size_t key_read(const set_plan& plan) { return plan.fields.size(); }
std::size_t time_read(const set_plan& plan) { return plan.fields.size() + 1; }

const tokens& path_of(const set_plan& plan, std::size_t read) {
    if (read == key_read(plan)) return plan.key;
    if (read == time_read(plan)) return plan.event_time;
    return plan.fields[read].source;
}

std::size_t field_index_of(const feature_set_config& set, const std::string& name, std::size_t t) {
    for (std::size_t i = 0; i < set.fields.size(); ++i)
        if (set.fields[i].name == name) return i;
    throw std::invalid_argument("feature set " + set.name + ": transforms[" + std::to_string(t) +
                                "] names an undeclared field '" + name + "'");
}

set_plan compile(const feature_set_config& set) {
    set_plan plan;
    plan.key = member_or_pointer(set.key_field, "key");
    plan.event_time = member_or_pointer(set.event_time_field, "event_time");
    plan.fields.resize(set.fields.size());
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        const auto& f = set.fields[i];
        if (f.source.empty()) {
            plan.fields[i].source = {f.name};
        } else {
            auto t = parse_pointer(f.source);
            if (!t) throw std::invalid_argument("field " + f.name + ": invalid JSON pointer " + f.source);
            plan.fields[i].source = std::move(*t);
        }
    }
    for (std::size_t t = 0; t < set.transforms.size(); ++t) {
        const auto& tr = set.transforms[t];
        if (tr.op == transform_op::rename) {
            plan.renames.emplace_back(tr.from, tr.to);
            continue;
        }
        const std::size_t fi = field_index_of(set, tr.field, t);
        auto& fp = plan.fields[fi];
        switch (tr.op) {
            case transform_op::cast:
                fp.cast = true;
                break;
            case transform_op::drop:
                fp.drop = true;
                break;
            case transform_op::filter:
                plan.filters.push_back({t, fi, tr.condition, tr.operands});
                if (std::find(plan.filter_fields.begin(), plan.filter_fields.end(), fi) == plan.filter_fields.end())
                    plan.filter_fields.push_back(fi);
                break;
            default:
                fp.steps.push_back(tr);
                break;
        }
    }

    // Renames rewrite the event before anything is read, and a deeper pointer needs the DOM.
    plan.fast = plan.renames.empty();
    const std::size_t reads = plan.fields.size() + 2;
    plan.slot.resize(reads);
    for (std::size_t n = 0; n < reads && plan.fast; ++n) {
        // The key and the event time first: they lead most events, and the scan looks for members
        // in this order.
        const std::size_t read = n < 2 ? key_read(plan) + n : n - 2;
        const tokens& path = path_of(plan, read);
        if (path.size() != 1) {
            plan.fast = false;
            break;
        }
        const auto it = std::find(plan.members.begin(), plan.members.end(), path[0]);
        plan.slot[read] = static_cast<std::size_t>(it - plan.members.begin());
        if (it == plan.members.end()) plan.members.push_back(path[0]);
    }
    if (!plan.fast) {
        plan.members.clear();
        plan.slot.clear();
    }
    return plan;
}

// Reads one field from its raw value (null when absent): cast or coercion, value transforms,
// checks. The error names the field.
std::variant<value, std::string> read_field(const field_config& f, const field_plan& plan, const json* raw) {
    value v;
    if (raw == nullptr || raw->is_null()) {
        if (f.required) return "field '" + f.name + "' is required";
        v = f.default_value;
    } else {
        auto r = plan.cast ? cast_value(f.type, *raw) : coerce(f.type, *raw);
        if (auto* e = std::get_if<coerce_error>(&r))
            return "field '" + f.name + "' (" + to_string(f.type) + "): " + e->reason;
        v = std::move(std::get<value>(r));
    }
    for (const auto& t : plan.steps) apply_value_transform(t, v);
    if (auto complaint = check(f, v)) return "field '" + f.name + "' (" + to_string(f.type) + "): " + *complaint;
    return v;
}

// Steps 2 to 4 of parse(): filters, key, event time and fields, whichever parser read the event.
// at(read) is the raw value of a read (numbered as set_plan::slot), null when absent.
template <class Find>
processed build(const raw_message& msg, const feature_set_config& set, const set_plan& plan, const Find& at,
                std::int64_t now) {
    // 2. The filters decide first, on their fields' final values.
    std::vector<std::optional<value>> values(set.fields.size());
    for (const std::size_t fi : plan.filter_fields) {
        auto v = read_field(set.fields[fi], plan.fields[fi], at(fi));
        if (auto* e = std::get_if<std::string>(&v)) return make_dead_letter(msg, std::move(*e), now);
        values[fi] = std::move(std::get<value>(v));
    }
    for (const auto& f : plan.filters) {
        const value& v = *values[f.field];
        if (satisfies(v, f.condition, f.operands)) continue;
        std::string operand = f.condition == filter_op::in || f.condition == filter_op::not_in
                                  ? "[" + list_text(f.operands) + "]"
                                  : (f.operands.empty() ? "null" : value_text(f.operands.front()));
        return skipped{msg.set_index, msg.source,
                       sanitize_utf8("filtered out by transforms[" + std::to_string(f.transform_index) + "] (" +
                                     set.fields[f.field].name + " " + condition_text(f.condition) + " " + operand +
                                     "): got " + value_text(v))};
    }

    record r;
    r.set_index = msg.set_index;
    r.source = msg.source;
    r.ingested_at_ms = now;

    // 3. Key and event time.
    const json* key = at(key_read(plan));
    if (key == nullptr || key->is_null())
        return make_dead_letter(msg, "key field '" + set.key_field + "' is missing", now);
    if (key->is_string()) {
        r.key = key->get<std::string>();
    } else if (key->is_number_integer()) {
        r.key = key->dump();
    } else {
        return make_dead_letter(msg, "key field '" + set.key_field + "': expected a string, got " + describe(*key),
                                now);
    }
    if (r.key.find('\0') != std::string::npos)
        return make_dead_letter(msg, "key field '" + set.key_field + "' contains a NUL character", now);
    if (r.key.empty()) return make_dead_letter(msg, "key field '" + set.key_field + "' is empty", now);
    if (r.key.size() > max_key_bytes)
        return make_dead_letter(msg, "key field '" + set.key_field + "' is longer than 1024 bytes", now);

    const json* time = at(time_read(plan));
    if (time == nullptr || time->is_null()) {
        if (set.event_time_fallback != time_fallback::kafka_timestamp)
            return make_dead_letter(msg, "event time field '" + set.event_time_field + "' is missing", now);
        if (msg.kafka_timestamp_ms < 0 || msg.kafka_timestamp_ms > max_event_time_ms)
            return make_dead_letter(msg,
                                    "event time field '" + set.event_time_field +
                                        "' is missing and the message has no Kafka timestamp to fall back on",
                                    now);
        r.event_time_ms = msg.kafka_timestamp_ms;
    } else {
        auto t = to_timestamp(*time);
        if (auto* e = std::get_if<coerce_error>(&t))
            return make_dead_letter(msg, "event time field '" + set.event_time_field + "': " + e->reason, now);
        r.event_time_ms = std::get<std::int64_t>(t);
    }

    // 4. The other fields, then the drops.
    r.values.reserve(set.fields.size());
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        if (values[i]) {
            r.values.push_back(std::move(*values[i]));
            continue;
        }
        auto v = read_field(set.fields[i], plan.fields[i], at(i));
        if (auto* e = std::get_if<std::string>(&v)) return make_dead_letter(msg, std::move(*e), now);
        r.values.push_back(std::move(std::get<value>(v)));
    }
    for (std::size_t i = 0; i < set.fields.size(); ++i)
        if (plan.fields[i].drop) r.values[i] = std::monostate{};
    return r;
}

// ---------------------------------------------------------------------------------------------
// The fast path: simdjson reads the event and only the members the set reads become (small)
// nlohmann values, so coercion, transforms and checks are the same code on the same values.
// Anything unusual returns nothing and the event takes the nlohmann path from the start; what
// simdjson refuses or reads differently is listed in the tests (PreprocessFastPath):
//  - numbers beyond 64-bit integers (nlohmann reads them as doubles) and out of range doubles,
//    a byte-order mark, bytes after a NUL at the end, nesting deeper than 1024: simdjson refuses;
//  - a member the set reads appearing twice: simdjson keeps both, nlohmann the last;
//  - every dead letter, so that its reason is the nlohmann path's word for word.

// One per thread: parse() runs on every preprocess worker at once, and a dom::parser (which keeps
// its buffers from one document to the next) reads one document at a time.
struct member_scanner {
    simdjson::dom::parser parser;
    std::vector<char> input;  // the payload, then the SIMDJSON_PADDING bytes simdjson may read past it
    std::vector<json> found;  // by slot
    std::vector<bool> seen;
};

member_scanner& this_thread_scanner() {
    thread_local member_scanner scanner;
    return scanner;
}

// The value as nlohmann parses the same text; false when it cannot be built here.
bool to_json(simdjson::dom::element e, json& out) {
    switch (e.type()) {
        case simdjson::dom::element_type::INT64: {
            std::int64_t i = 0;
            if (e.get(i)) return false;
            // nlohmann keeps an integer written without a minus sign as unsigned.
            out = i < 0 ? json(i) : json(static_cast<std::uint64_t>(i));
            return true;
        }
        case simdjson::dom::element_type::UINT64: {
            std::uint64_t u = 0;
            if (e.get(u)) return false;
            out = u;
            return true;
        }
        case simdjson::dom::element_type::DOUBLE: {
            double d = 0;
            if (e.get(d)) return false;
            out = d;
            return true;
        }
        case simdjson::dom::element_type::STRING: {
            std::string_view s;
            if (e.get(s)) return false;
            out = std::string(s);
            return true;
        }
        case simdjson::dom::element_type::BOOL: {
            bool b = false;
            if (e.get(b)) return false;
            out = b;
            return true;
        }
        case simdjson::dom::element_type::NULL_VALUE:
            out = nullptr;
            return true;
        case simdjson::dom::element_type::ARRAY:
        case simdjson::dom::element_type::OBJECT:
            // Rare (a json field, or a cast to string): nlohmann reads simdjson's compact text of the
            // element. Its doubles print so that they read back the same, and nlohmann keeps the last
            // of repeated members here as it would have in the whole event.
            out = json::parse(simdjson::to_string(e), nullptr, /*allow_exceptions=*/false);
            return !out.is_discarded();
    }
    return false;
}

std::optional<processed> parse_members(const raw_message& msg, const feature_set_config& set, const set_plan& plan,
                                       std::int64_t now) {
    member_scanner& sc = this_thread_scanner();
    const std::size_t size = msg.payload.size();
    if (sc.input.size() < size + simdjson::SIMDJSON_PADDING) sc.input.resize(size + simdjson::SIMDJSON_PADDING);
    std::copy(msg.payload.begin(), msg.payload.end(), sc.input.begin());
    simdjson::dom::element root;
    simdjson::dom::object event;
    if (sc.parser.parse(sc.input.data(), size, /*realloc_if_needed=*/false).get(root) || root.get(event))
        return std::nullopt;

    const std::size_t members = plan.members.size();
    sc.found.assign(members, json());
    sc.seen.assign(members, false);
    std::size_t next = 0;  // events of a set mostly list their members in one order: look there first
    for (const simdjson::dom::key_value_pair member : event) {
        std::size_t slot = members;
        for (std::size_t i = 0; i < members; ++i) {
            const std::size_t s = next + i < members ? next + i : next + i - members;
            if (plan.members[s] == member.key) {
                slot = s;
                break;
            }
        }
        if (slot == members) continue;  // not read by the set
        if (sc.seen[slot]) return std::nullopt;
        sc.seen[slot] = true;
        if (!to_json(member.value, sc.found[slot])) return std::nullopt;
        next = slot + 1 == members ? 0 : slot + 1;
    }

    const auto at = [&](std::size_t read) -> const json* {
        const std::size_t slot = plan.slot[read];
        return sc.seen[slot] ? &sc.found[slot] : nullptr;
    };
    processed out = build(msg, set, plan, at, now);
    if (std::holds_alternative<dead_letter>(out)) return std::nullopt;
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// record_parser

record_parser::record_parser(const config& cfg) : cfg_(cfg) {
    auto plans = std::make_shared<std::vector<set_plan>>();
    plans->reserve(cfg.feature_sets.size());
    for (const auto& set : cfg.feature_sets) plans->push_back(compile(set));
    plans_ = std::move(plans);
}

record_parser::~record_parser() = default;

processed record_parser::parse(const raw_message& msg, std::int64_t now) const {
    if (!msg.has_value) return make_dead_letter(msg, "tombstone: a message with a null value is not a record", now);
    if (static_cast<std::int64_t>(msg.payload.size()) > cfg_.kafka.max_message_bytes)
        return make_dead_letter(msg,
                                "message of " + std::to_string(msg.payload.size()) + " bytes exceeds max_message_bytes " +
                                    std::to_string(cfg_.kafka.max_message_bytes),
                                now);
    if (msg.payload.empty()) return make_dead_letter(msg, "empty message value", now);
    if (msg.set_index >= plans_->size()) return make_dead_letter(msg, "no feature set for this message", now);

    const auto& set = cfg_.feature_sets[msg.set_index];
    const auto& plan = (*plans_)[msg.set_index];
    if (plan.fast && msg.payload.size() <= fast_path_max_bytes)
        if (auto fast = parse_members(msg, set, plan, now)) return std::move(*fast);

    json doc = json::parse(msg.payload, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        // Parse again with exceptions only to get the position for the dead letter.
        std::string why = "malformed JSON";
        try {
            json again = json::parse(msg.payload);
            (void)again;
        } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
            why = std::string("malformed JSON: ") + e.what();
        }
        return make_dead_letter(msg, std::move(why), now);
    }
    if (!doc.is_object()) return make_dead_letter(msg, "the event is not a JSON object", now);

    // 1. Renames, on the raw event.
    for (const auto& [from, to] : plan.renames) {
        const auto it = doc.find(from);
        if (it == doc.end()) continue;
        json moved = std::move(*it);
        doc.erase(it);
        doc[to] = std::move(moved);
    }
    return build(msg, set, plan, [&](std::size_t read) { return find_at(doc, path_of(plan, read)); }, now);
}

// ---------------------------------------------------------------------------------------------
// deduplicator

struct deduplicator::set_state {
    std::int64_t window_ms = 0;
    std::size_t max_ids = 0;
    std::size_t field = 0;
    std::string field_name;
    std::int64_t newest = std::numeric_limits<std::int64_t>::min();
    std::unordered_map<std::string, std::int64_t> ids;  // id → event time first seen
    // Oldest first; each entry points at its id's key in `ids` (stable: the map is node-based)
    // and ids leave the map only through this queue, so both always hold the same ids.
    using entry = std::pair<std::int64_t, const std::string*>;
    std::priority_queue<entry, std::vector<entry>, std::greater<>> by_time;

    void forget_oldest() {
        ids.erase(*by_time.top().second);
        by_time.pop();
    }
};

deduplicator::deduplicator(const config& cfg) {
    for (const auto& set : cfg.feature_sets) {
        if (!set.dedup.enabled()) {
            sets_.push_back(nullptr);
            continue;
        }
        auto s = std::make_unique<set_state>();
        s->window_ms = std::max<std::int64_t>(set.dedup.window_ms, 0);
        s->max_ids = static_cast<std::size_t>(std::max<std::int64_t>(set.dedup.max_ids, 1));
        s->field = set.fields.size();
        for (std::size_t i = 0; i < set.fields.size(); ++i)
            if (set.fields[i].name == set.dedup.field) s->field = i;
        if (s->field == set.fields.size())
            throw std::invalid_argument("feature set " + set.name + ": dedup names an undeclared field '" +
                                        set.dedup.field + "'");
        s->field_name = set.dedup.field;
        sets_.push_back(std::move(s));
    }
}

deduplicator::~deduplicator() = default;
deduplicator::deduplicator(deduplicator&&) noexcept = default;
deduplicator& deduplicator::operator=(deduplicator&&) noexcept = default;

bool deduplicator::seen(std::uint32_t set_index, std::string_view id, std::int64_t event_time_ms) {
    if (set_index >= sets_.size() || !sets_[set_index]) return false;
    set_state& s = *sets_[set_index];
    s.newest = std::max(s.newest, event_time_ms);
    // Saturating: newest - window must not wrap below INT64_MIN.
    const std::int64_t oldest_kept = s.newest < std::numeric_limits<std::int64_t>::min() + s.window_ms
                                         ? std::numeric_limits<std::int64_t>::min()
                                         : s.newest - s.window_ms;
    while (!s.by_time.empty() && s.by_time.top().first < oldest_kept) s.forget_oldest();
    if (event_time_ms < oldest_kept) {
        ++too_old_;
        return false;
    }
    const auto [it, inserted] = s.ids.try_emplace(std::string(id), event_time_ms);
    if (!inserted) return true;
    s.by_time.emplace(event_time_ms, &it->first);
    while (s.ids.size() > s.max_ids) {
        s.forget_oldest();
        ++evicted_early_;
    }
    return false;
}

void deduplicator::apply(processed& item) {
    auto* r = std::get_if<record>(&item);
    if (r == nullptr || r->set_index >= sets_.size() || !sets_[r->set_index]) return;
    const set_state& s = *sets_[r->set_index];
    if (s.field >= r->values.size()) return;
    const value& v = r->values[s.field];
    std::string id;
    if (const auto* str = std::get_if<std::string>(&v))
        id = *str;
    else if (const auto* i = std::get_if<std::int64_t>(&v))
        id = std::to_string(*i);
    else
        return;  // a null id is never a duplicate
    if (!seen(r->set_index, id, r->event_time_ms)) return;
    skipped dup{r->set_index, r->source,
                sanitize_utf8("duplicate event id " + value_text(value{id}) + " (field '" + s.field_name +
                              "') within the dedup window")};
    item = std::move(dup);
}

std::size_t deduplicator::remembered() const {
    std::size_t n = 0;
    for (const auto& s : sets_)
        if (s) n += s->ids.size();
    return n;
}

std::uint64_t deduplicator::evicted_early() const { return evicted_early_; }
std::uint64_t deduplicator::too_old() const { return too_old_; }

}  // namespace sluice
