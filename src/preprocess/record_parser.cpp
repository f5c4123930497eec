#include "sluice/preprocess/record_parser.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "sluice/core/clock.hpp"

namespace sluice {

using json = nlohmann::json;

namespace {

constexpr std::size_t max_key_bytes = 1024;
constexpr std::int64_t max_event_time_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z

// A coercion failure: the reason only; the caller adds the field name.
struct coerce_error {
    std::string reason;
};

std::string describe(const json& v) {
    std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 64) text = text.substr(0, 61) + "...";
    return text;
}

bool parse_int_text(std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    const char* first = s.data();
    if (*first == '+') ++first;
    if (first == s.data() + s.size() || (*first == '-' && first != s.data())) return false;
    auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
}

bool parse_double_text(std::string_view s, double& out) {
    if (s.empty()) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
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
        // -2^63 itself is refused too: a literal just below it rounds to exactly -2^63 as a double.
        if (d <= -9.2233720368547758e18 || d >= 9.2233720368547758e18)
            return coerce_error{describe(v) + " is out of the 64-bit integer range"};
        return static_cast<std::int64_t>(d);
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

std::variant<std::int64_t, coerce_error> to_timestamp(const json& v) {
    std::int64_t ms;
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (auto t = parse_rfc3339(s)) {
            ms = *t;
        } else if (!parse_int_text(s, ms)) {
            return coerce_error{describe(v) + " is neither RFC 3339 nor epoch milliseconds"};
        }
    } else if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX)) {
        ms = v.get<std::int64_t>();
    } else {
        return coerce_error{"expected an RFC 3339 string or epoch milliseconds, got " + describe(v)};
    }
    if (ms < 0 || ms > max_event_time_ms) return coerce_error{describe(v) + " is outside years 1970..9999"};
    return ms;
}

std::string number_text(double d) {
    json j = d;
    return j.dump();
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

std::variant<value, coerce_error> coerce(const field_config& f, const json& v) {
    switch (f.type) {
        case field_type::int64: {
            auto r = to_int(v);
            if (auto* e = std::get_if<coerce_error>(&r)) return *e;
            const auto i = std::get<std::int64_t>(r);
            if (f.min && static_cast<double>(i) < *f.min)
                return coerce_error{std::to_string(i) + " is below the minimum " + number_text(*f.min)};
            if (f.max && static_cast<double>(i) > *f.max)
                return coerce_error{std::to_string(i) + " is above the maximum " + number_text(*f.max)};
            return value{i};
        }
        case field_type::float64: {
            auto r = to_double(v);
            if (auto* e = std::get_if<coerce_error>(&r)) return *e;
            const auto d = std::get<double>(r);
            if (f.min && d < *f.min) return coerce_error{number_text(d) + " is below the minimum " + number_text(*f.min)};
            if (f.max && d > *f.max) return coerce_error{number_text(d) + " is above the maximum " + number_text(*f.max)};
            return value{d};
        }
        case field_type::boolean: {
            auto r = to_bool(v);
            if (auto* e = std::get_if<coerce_error>(&r)) return *e;
            return value{std::get<bool>(r)};
        }
        case field_type::string:
            if (v.is_string()) {
                if (v.get_ref<const std::string&>().find('\0') != std::string::npos)
                    return coerce_error{"contains a NUL character, which PostgreSQL text cannot store"};
                return value{v.get<std::string>()};
            }
            if (v.is_number() || v.is_boolean()) return value{v.dump()};
            return coerce_error{"expected a string, got " + describe(v)};
        case field_type::timestamp: {
            auto r = to_timestamp(v);
            if (auto* e = std::get_if<coerce_error>(&r)) return *e;
            return value{std::get<std::int64_t>(r)};
        }
        case field_type::json:
            if (contains_nul(v)) return coerce_error{"contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store"};
            return value{v.dump()};
    }
    return coerce_error{"unknown field type"};
}

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

record_parser::record_parser(const config& cfg) : cfg_(cfg) {}

processed record_parser::parse(const raw_message& msg, std::int64_t now) const {
    if (!msg.has_value) return make_dead_letter(msg, "tombstone: a message with a null value is not a record", now);
    if (static_cast<std::int64_t>(msg.payload.size()) > cfg_.kafka.max_message_bytes)
        return make_dead_letter(msg,
                                "message of " + std::to_string(msg.payload.size()) + " bytes exceeds max_message_bytes " +
                                    std::to_string(cfg_.kafka.max_message_bytes),
                                now);
    if (msg.payload.empty()) return make_dead_letter(msg, "empty message value", now);

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

    const auto& set = cfg_.feature_sets[msg.set_index];
    record r;
    r.set_index = msg.set_index;
    r.source = msg.source;
    r.ingested_at_ms = now;

    auto key_it = doc.find(set.key_field);
    if (key_it == doc.end() || key_it->is_null())
        return make_dead_letter(msg, "key field '" + set.key_field + "' is missing", now);
    if (key_it->is_string()) {
        r.key = key_it->get<std::string>();
    } else if (key_it->is_number_integer()) {
        r.key = key_it->dump();
    } else {
        return make_dead_letter(msg, "key field '" + set.key_field + "': expected a string, got " + describe(*key_it),
                                now);
    }
    if (r.key.find('\0') != std::string::npos)
        return make_dead_letter(msg, "key field '" + set.key_field + "' contains a NUL character", now);
    if (r.key.empty()) return make_dead_letter(msg, "key field '" + set.key_field + "' is empty", now);
    if (r.key.size() > max_key_bytes)
        return make_dead_letter(msg, "key field '" + set.key_field + "' is longer than 1024 bytes", now);

    auto time_it = doc.find(set.event_time_field);
    if (time_it == doc.end() || time_it->is_null())
        return make_dead_letter(msg, "event time field '" + set.event_time_field + "' is missing", now);
    auto t = to_timestamp(*time_it);
    if (auto* e = std::get_if<coerce_error>(&t))
        return make_dead_letter(msg, "event time field '" + set.event_time_field + "': " + e->reason, now);
    r.event_time_ms = std::get<std::int64_t>(t);

    r.values.reserve(set.fields.size());
    for (const auto& f : set.fields) {
        auto it = doc.find(f.name);
        if (it == doc.end() || it->is_null()) {
            if (f.required) return make_dead_letter(msg, "field '" + f.name + "' is required", now);
            r.values.push_back(f.default_value);
            continue;
        }
        auto v = coerce(f, *it);
        if (auto* e = std::get_if<coerce_error>(&v))
            return make_dead_letter(msg, "field '" + f.name + "' (" + to_string(f.type) + "): " + e->reason, now);
        r.values.push_back(std::move(std::get<value>(v)));
    }
    return r;
}

}  // namespace sluice
