// Type coercion of the record parser (coercion.hpp; the rules are in record_parser.hpp).

#include "coercion.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "sluice/core/timestamp.hpp"

namespace sluice::parser {

namespace {

constexpr std::size_t max_listed_values = 10;  // allowed values quoted in one error

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Text

std::string describe(const json& v) {
    std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 64) text = text.substr(0, 61) + "...";
    return text;
}

std::string number_text(double d) {
    json j = d;
    return j.dump();
}

std::string value_text(const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return "null";
    if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (const auto* d = std::get_if<double>(&v)) return number_text(*d);
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    return describe(json(std::get<std::string>(v)));
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

// ---------------------------------------------------------------------------------------------
// Comparison

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

// ---------------------------------------------------------------------------------------------
// Timestamps

namespace {

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

}  // namespace

std::variant<std::int64_t, coerce_error> to_timestamp(const json& v, bool round_ms) {
    if (v.is_string()) return ms_from_text(v.get_ref<const std::string&>(), round_ms, quoted(v));
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        return coerce_error{describe(v) + " is outside years 1970..9999"};
    if (v.is_number_integer()) return ms_from_int(v.get<std::int64_t>(), quoted(v));
    if (v.is_number_float()) return ms_from_double(v.get<double>(), round_ms, quoted(v));
    return coerce_error{"expected an RFC 3339 string or epoch seconds or milliseconds, got " + describe(v)};
}

// ---------------------------------------------------------------------------------------------
// Strict coercion (no transforms)

namespace {

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

}  // namespace

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
// Lenient conversion (the cast transform)

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

}  // namespace sluice::parser
