#include "sluice/core/value_codec.hpp"

#include <array>
#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

#include "sluice/core/clock.hpp"

namespace sluice {

using json = nlohmann::json;

void append_json_string(std::string& out, std::string_view s) {
    // Printable ASCII without quote or backslash needs no escape; the rest (escapes, UTF-8,
    // invalid bytes replaced) is the library's.
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
            return;
        }
    }
    out += '"';
    out.append(s);
    out += '"';
}

void append_value_json_text(std::string& out, field_type type, const value& v) {
    std::visit(
        [type, &out](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                out += "null";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp) {
                    out += '"';
                    out += format_rfc3339_ms(x);
                    out += '"';
                } else {
                    char buf[24];
                    out.append(buf, std::to_chars(buf, buf + sizeof buf, x).ptr);
                }
            } else if constexpr (std::is_same_v<T, double>) {
                // Shortest round trip, "5.0" for an integral value, null for NaN and infinities.
                if (!std::isfinite(x)) {
                    out += "null";
                } else {
                    std::array<char, 64> buf{};
                    char* end = nlohmann::detail::to_chars(buf.data(), buf.data() + buf.size(), x);
                    out.append(buf.data(), static_cast<std::size_t>(end - buf.data()));
                }
            } else if constexpr (std::is_same_v<T, bool>) {
                out += x ? "true" : "false";
            } else if (type == field_type::json) {
                out += x;
            } else {
                append_json_string(out, x);
            }
        },
        v);
}

std::string value_to_json_text(field_type type, const value& v) {
    std::string out;
    append_value_json_text(out, type, v);
    return out;
}

namespace {

// A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; `integral` when it has neither
// a fraction nor an exponent.
bool json_number(std::string_view t, bool& integral) {
    std::size_t i = 0;
    const auto digits = [&] {
        const std::size_t from = i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
        return i > from;
    };
    if (i < t.size() && t[i] == '-') ++i;
    if (i < t.size() && t[i] == '0') {
        ++i;
    } else if (!digits()) {
        return false;
    }
    integral = true;
    if (i < t.size() && t[i] == '.') {
        ++i;
        integral = false;
        if (!digits()) return false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        integral = false;
        if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
        if (!digits()) return false;
    }
    return i == t.size();
}

// The common shapes read back from Redis on every request, without a JSON parse: numbers,
// booleans and strings of printable ASCII with no escapes. nullopt: not one of those (the
// general parser decides).
std::optional<std::optional<value>> quick_value(field_type type, std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (text == "null") return std::optional<value>{value{}};
    switch (type) {
        case field_type::int64:
        case field_type::float64: {
            bool integral = false;
            if (!json_number(text, integral)) return std::nullopt;
            if (type == field_type::int64) {
                std::int64_t n = 0;
                const auto r = std::from_chars(text.data(), text.data() + text.size(), n);
                if (!integral || r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
                return std::optional<value>{value{n}};
            }
            double d = 0;
            const auto r = std::from_chars(text.data(), text.data() + text.size(), d);
            if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
            return std::optional<value>{value{d}};
        }
        case field_type::boolean:
            if (text == "true") return std::optional<value>{value{true}};
            if (text == "false") return std::optional<value>{value{false}};
            return std::nullopt;
        case field_type::string: {
            if (text.size() < 2 || text.front() != '"' || text.back() != '"') return std::nullopt;
            const std::string_view inner = text.substr(1, text.size() - 2);
            for (const char ch : inner) {
                const auto c = static_cast<unsigned char>(ch);
                if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return std::nullopt;
            }
            return std::optional<value>{value{std::string(inner)}};
        }
        default:
            return std::nullopt;
    }
}

}  // namespace

std::optional<value> value_from_json_text(field_type type, std::string_view text) {
    if (auto quick = quick_value(type, text)) return *quick;
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    if (j.is_null()) return value{};
    const bool fits_int64 = j.is_number_integer() && !(j.is_number_unsigned() && j.get<std::uint64_t>() > INT64_MAX);
    switch (type) {
        case field_type::int64:
            if (fits_int64) return value{j.get<std::int64_t>()};
            return std::nullopt;
        case field_type::float64:
            if (j.is_number()) return value{j.get<double>()};
            return std::nullopt;
        case field_type::boolean:
            if (j.is_boolean()) return value{j.get<bool>()};
            return std::nullopt;
        case field_type::string:
            if (j.is_string()) return value{j.get<std::string>()};
            return std::nullopt;
        case field_type::timestamp:
            if (j.is_string()) {
                if (auto t = parse_rfc3339(j.get_ref<const std::string&>())) return value{*t};
            } else if (fits_int64) {
                return value{j.get<std::int64_t>()};
            }
            return std::nullopt;
        case field_type::json:
            return value{j.dump()};
    }
    return std::nullopt;
}

}  // namespace sluice
