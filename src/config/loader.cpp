// The config loader: JSON with // comments → ${ENV} substitution → typed, validated config.
//
// Every key is declared once in a key table (name, one-line description, default, bounds and
// how to store it). The tables drive the reader, so an unknown key, a wrong type or a value out
// of range is found by one generic routine and reported with its JSON path. Every error is
// collected; nothing stops at the first. The loader runs once at start-up on the main thread
// (and for `--check`); it never throws to its caller.

#include "sluice/config/loader.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <unistd.h>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "sluice/core/clock.hpp"

namespace sluice {
namespace {

// ordered_json keeps keys in file order: fields are declared in the order they appear, and
// errors come out in the order a person reads the file.
using json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Paths and messages

bool is_plain_key(std::string_view key) {
    if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
    return std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

// JSON text of a string, never throwing on invalid UTF-8 (an environment variable may hold any bytes).
std::string quote(const std::string& s) {
    return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// "kafka" + "brokers" → "kafka.brokers"; a key that is not a plain identifier is bracketed and
// quoted so that the path stays unambiguous: kafka.properties["bootstrap.servers"].
std::string child_path(const std::string& parent, const std::string& key) {
    if (is_plain_key(key)) return parent.empty() ? key : parent + "." + key;
    return parent + "[" + quote(key) + "]";
}

std::string index_path(const std::string& parent, std::size_t i) {
    return parent + "[" + std::to_string(i) + "]";
}

std::string format_number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
}

std::string type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "boolean";
        case json::value_t::string: return "string";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "integer";
        case json::value_t::number_float: return "number";
        case json::value_t::object: return "object";
        case json::value_t::array: return "array";
        default: return "unknown";
    }
}

std::string expected(std::string_view what, const json& got) {
    // For an integer key a fraction is the likelier mistake than a wrong type: show the value.
    if (what == "integer" && got.is_number_float()) return "expected integer, got " + compact(got);
    return "expected " + std::string(what) + ", got " + type_name(got);
}

// A JSON integer that fits std::int64_t (nlohmann keeps values above INT64_MAX as unsigned).
bool fits_int64(const json& v) {
    if (v.is_number_unsigned())
        return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return v.is_number_integer();
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                              std::tolower(static_cast<unsigned char>(b[j - 1]));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// The closest of the candidates to a misspelled word, if any is close enough to be a typo.
std::optional<std::string> suggest(const std::string& word, const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    std::size_t best_distance = 3;  // suggest only within two edits
    for (const auto& c : candidates) {
        // "warning" for "warn", "consumer" for "consumer_threads": one is the start of the other.
        const std::string_view shorter = word.size() < c.size() ? std::string_view(word) : std::string_view(c);
        const std::string_view longer = word.size() < c.size() ? std::string_view(c) : std::string_view(word);
        const bool prefix = shorter.size() >= 3 && longer.substr(0, shorter.size()) == shorter;
        const std::size_t d = prefix ? 1 : edit_distance(word, c);
        if (d < best_distance && d < word.size()) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += sep;
        out += items[i];
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Error collection

// Collects every problem found while reading one file.
class diagnostics {
public:
    void add(const std::string& path, std::string message) {
        // A string whose ${VAR} could not be expanded has already been reported; checking its
        // unexpanded text again would only add noise.
        if (unexpanded_.count(path)) return;
        errors_.push_back({path, std::move(message)});
    }
    void mark_unexpanded(const std::string& path) { unexpanded_.insert(path); }
    void mark_substituted(const std::string& path) { substituted_.insert(path); }
    bool substituted(const std::string& path) const { return substituted_.count(path) != 0; }
    std::size_t count() const { return errors_.size(); }
    std::vector<config_error> take() { return std::move(errors_); }

private:
    std::vector<config_error> errors_;
    std::unordered_set<std::string> unexpanded_;
    std::unordered_set<std::string> substituted_;
};

// ---------------------------------------------------------------------------------------------
// Environment substitution
//
// "${NAME}" in any string value is replaced by the environment variable NAME (letters, digits
// and _, not starting with a digit). An unset variable is an error; a set but empty one expands
// to "". "$${" is a literal "${" (so "$${HOME}" stays "${HOME}"); any other "$" is literal.

bool is_env_name(std::string_view s) { return is_plain_key(s); }

std::string expand_env(const std::string& in, const std::string& path, diagnostics& d, bool& failed,
                       bool& expanded) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        if (in.compare(i, 3, "$${") == 0) {
            out += "${";
            i += 3;
            continue;
        }
        if (in.compare(i, 2, "${") != 0) {
            out += in[i++];
            continue;
        }
        const std::size_t close = in.find('}', i + 2);
        if (close == std::string::npos) {
            d.add(path, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
            failed = true;
            return in;
        }
        const std::string name = in.substr(i + 2, close - i - 2);
        if (!is_env_name(name)) {
            d.add(path, "invalid environment variable name " + quote(name) + " in \"${...}\"");
            failed = true;
        } else if (const char* v = std::getenv(name.c_str()); v == nullptr) {
            d.add(path, "environment variable " + name + " is not set");
            failed = true;
        } else {
            out += v;
            expanded = true;
        }
        i = close + 1;
    }
    return out;
}

void substitute_env(json& j, const std::string& path, diagnostics& d) {
    if (j.is_string()) {
        const std::string& s = j.get_ref<const std::string&>();
        if (s.find('$') == std::string::npos) return;
        bool failed = false, expanded = false;
        std::string out = expand_env(s, path, d, failed, expanded);
        if (failed) {
            d.mark_unexpanded(path);
            return;
        }
        if (expanded) d.mark_substituted(path);
        j = std::move(out);
    } else if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it) substitute_env(it.value(), child_path(path, it.key()), d);
    } else if (j.is_array()) {
        for (std::size_t i = 0; i < j.size(); ++i) substitute_env(j[i], index_path(path, i), d);
    }
}

// ---------------------------------------------------------------------------------------------
// Key tables

enum class kind { integer, number, boolean, string, object, array, any };

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

template <class S>
using apply_fn = std::function<void(S&, const json&, const std::string& path, diagnostics&)>;

// Checks a string and may normalize it in place; returns the complaint, or nothing when it is fine.
using string_check = std::function<std::optional<std::string>(std::string&)>;

// One config key: what it is called, what it means, its default and bounds, and where it goes.
template <class S>
struct key_spec {
    std::string name;
    std::string description;
    std::string default_text;  // as written in the file; the value itself lives in config.hpp
    kind type = kind::any;
    bool required = false;
    bool bounded = false;  // integer and number keys: lo <= value <= hi
    double lo = 0;
    double hi = 0;
    apply_fn<S> apply;
};

template <class S>
key_spec<S> required(key_spec<S> k) {
    k.required = true;
    k.default_text = "(required)";
    return k;
}

template <class S, class T>
key_spec<S> integer_key(std::string name, std::string description, T S::*member, double lo, double hi) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_text = std::to_string(S{}.*member);
    k.type = kind::integer;
    k.bounded = true;
    k.lo = lo;
    k.hi = hi;
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
    k.default_text = format_number(S{}.*member);
    k.type = kind::number;
    k.bounded = true;
    k.lo = lo;
    k.hi = hi;
    k.apply = [member](S& s, const json& v, const std::string&, diagnostics&) { s.*member = v.get<double>(); };
    return k;
}

template <class S>
key_spec<S> bool_key(std::string name, std::string description, bool S::*member) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_text = S{}.*member ? "true" : "false";
    k.type = kind::boolean;
    k.apply = [member](S& s, const json& v, const std::string&, diagnostics&) { s.*member = v.get<bool>(); };
    return k;
}

template <class S>
key_spec<S> string_key(std::string name, std::string description, std::string S::*member, string_check check = {}) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_text = quote(S{}.*member);
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

template <class S>
key_spec<S> custom_key(std::string name, std::string description, std::string default_text, kind type,
                       apply_fn<S> apply) {
    key_spec<S> k;
    k.name = std::move(name);
    k.description = std::move(description);
    k.default_text = std::move(default_text);
    k.type = type;
    k.apply = std::move(apply);
    return k;
}

// Out-of-range message for a bounded key, or nothing when the value is inside its bounds.
template <class S>
std::optional<std::string> bounds_complaint(const key_spec<S>& k, const json& v) {
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

// Reads one JSON object through its key table into `out`.
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
            const auto hint = suggest(it.key(), names);
            d.add(p, hint ? "unknown key (did you mean \"" + *hint + "\"?)" : "unknown key");
            continue;
        }
        const json* v = &it.value();
        std::optional<json> converted;
        if (d.substituted(p) && (converted = from_environment(spec->type, *v))) v = &*converted;
        if (!has_kind(spec->type, *v)) {
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

// ---------------------------------------------------------------------------------------------
// String checks

bool is_identifier(std::string_view s, std::size_t max_len) {
    if (s.empty() || s.size() > max_len) return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string identifier_rule(std::size_t max_len) {
    return "must be an identifier (lowercase letters, digits and _, not starting with a digit, at most " +
           std::to_string(max_len) + " characters)";
}

string_check non_empty() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        return std::nullopt;
    };
}

string_check identifier(std::size_t max_len) {
    return [max_len](std::string& s) -> std::optional<std::string> {
        if (is_identifier(s, max_len)) return std::nullopt;
        return identifier_rule(max_len) + ", got " + quote(s);
    };
}

string_check one_of(std::vector<std::string> allowed) {
    return [allowed = std::move(allowed)](std::string& s) -> std::optional<std::string> {
        if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return std::nullopt;
        std::string msg = "must be one of " + join(allowed, ", ") + "; got " + quote(s);
        if (auto hint = suggest(s, allowed)) msg += " (did you mean \"" + *hint + "\"?)";
        return msg;
    };
}

string_check no_spaces() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        if (std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }))
            return "must not contain spaces, got " + quote(s);
        return std::nullopt;
    };
}

// "host:port" or "[v6-address]:port"; port 0 asks the OS for a free port.
string_check listen_address() {
    return [](std::string& s) -> std::optional<std::string> {
        const std::string shape = "expected \"host:port\" (e.g. \"0.0.0.0:8080\" or \"[::1]:8080\"), got " + quote(s);
        std::string host, port;
        if (!s.empty() && s[0] == '[') {
            const std::size_t close = s.find(']');
            if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return shape;
            host = s.substr(1, close - 1);
            port = s.substr(close + 2);
        } else {
            const std::size_t colon = s.rfind(':');
            if (colon == std::string::npos) return shape;
            host = s.substr(0, colon);
            port = s.substr(colon + 1);
            if (host.find(':') != std::string::npos) return shape;  // a bare IPv6 address needs brackets
        }
        if (host.empty() || port.empty() || port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return shape;
        if (std::stoi(port) > 65535) return "port must be between 0 and 65535, got " + port;
        return std::nullopt;
    };
}

string_check sha256_hex() {
    return [](std::string& s) -> std::optional<std::string> {
        const bool hex = std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
        if (s.size() != 64 || !hex)
            return "must be the SHA-256 of the key as 64 hexadecimal characters, got " + std::to_string(s.size()) +
                   " characters" + (hex ? "" : " (not all hexadecimal)");
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return std::nullopt;
    };
}

// ---------------------------------------------------------------------------------------------
// kafka

const std::vector<key_spec<embedded_kafka_config>>& embedded_kafka_keys() {
    using S = embedded_kafka_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("brokers", "brokers in the in-process mock cluster", &S::brokers, 1, 8),
        integer_key<S>("partitions", "partitions of each feature set's topic in the mock cluster", &S::partitions, 1,
                       256),
    };
    return keys;
}

void apply_kafka_properties(kafka_config& k, const json& v, const std::string& path, diagnostics& d) {
    k.properties.clear();
    for (auto it = v.begin(); it != v.end(); ++it) {
        const json& p = it.value();
        if (p.is_string())
            k.properties[it.key()] = p.get<std::string>();
        else if (p.is_boolean())
            k.properties[it.key()] = p.get<bool>() ? "true" : "false";
        else if (p.is_number())
            k.properties[it.key()] = compact(p);
        else
            d.add(child_path(path, it.key()), expected("string, number or boolean", p));
    }
}

const std::vector<key_spec<kafka_config>>& kafka_keys() {
    using S = kafka_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("brokers", "bootstrap brokers \"host:port,...\", or \"embedded\" for an in-process mock broker",
                      &S::brokers, non_empty()),
        string_key<S>("group_id", "consumer group; instances sharing it split the partitions", &S::group_id,
                      non_empty()),
        integer_key<S>("consumer_threads", "consumer threads, one librdkafka consumer each", &S::consumer_threads, 1,
                       64),
        integer_key<S>("max_message_bytes", "a larger message is a dead letter", &S::max_message_bytes, 1, 104857600),
        custom_key<S>("properties", "librdkafka properties, passed as they are", "{}", kind::object,
                      apply_kafka_properties),
        string_key<S>("dead_letter_topic", "topic that also receives dead letters; \"\" = none",
                      &S::dead_letter_topic),
        integer_key<S>("poll_timeout_ms", "longest a consumer poll blocks", &S::poll_timeout_ms, 1, 1000),
        custom_key<S>("embedded", "the mock cluster started when brokers is \"embedded\"", "{}", kind::object,
                      [](S& k, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, embedded_kafka_keys(), k.embedded, d);
                      }),
    };
    return keys;
}

// ---------------------------------------------------------------------------------------------
// feature_sets

constexpr std::size_t max_name_len = 48;

// Column names every feature set table already has (DESIGN §6); a field may not shadow them.
const std::vector<std::string>& reserved_columns() {
    static const std::vector<std::string> names = {"key",        "event_time", "ingested_at", "updated_at",
                                                   "src_topic", "src_partition", "src_offset"};
    return names;
}

// A field as read, before its default can be coerced: the default depends on the type, which
// may come after it in the file.
struct field_draft {
    field_config cfg;
    bool type_ok = false;
    const json* default_json = nullptr;  // points into the parsed document, alive while loading
};

const std::vector<key_spec<field_draft>>& field_keys() {
    using S = field_draft;
    static const std::vector<key_spec<S>> keys = {
        required(custom_key<S>(
            "type", "int, double, bool, string, timestamp or json", "", kind::string,
            [](S& f, const json& v, const std::string& p, diagnostics& d) {
                static const std::vector<std::pair<std::string, field_type>> types = {
                    {"int", field_type::int64},         {"double", field_type::float64},
                    {"bool", field_type::boolean},      {"string", field_type::string},
                    {"timestamp", field_type::timestamp}, {"json", field_type::json}};
                const std::string& s = v.get_ref<const std::string&>();
                for (const auto& [name, t] : types)
                    if (name == s) {
                        f.cfg.type = t;
                        f.type_ok = true;
                        return;
                    }
                std::string text = s;
                d.add(p, *one_of({"int", "double", "bool", "string", "timestamp", "json"})(text));
            })),
        custom_key<S>("required", "an event without this field is a dead letter", "false", kind::boolean,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.required = v.get<bool>(); }),
        custom_key<S>("default", "value of the field when an event leaves it out; null if none", "null", kind::any,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.default_json = &v; }),
        custom_key<S>("min", "smallest accepted value (int and double fields)", "none", kind::number,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.min = v.get<double>(); }),
        custom_key<S>("max", "largest accepted value (int and double fields)", "none", kind::number,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.cfg.max = v.get<double>(); }),
    };
    return keys;
}

// Converts a default to the field's type; returns the complaint when it does not fit.
std::optional<std::string> coerce_default(field_type t, const json& j, value& out) {
    const auto got = [&] {
        std::string text = compact(j);
        if (text.size() > 60) text = text.substr(0, 57) + "...";
        return text;
    };
    if (j.is_null()) {
        out = std::monostate{};
        return std::nullopt;
    }
    switch (t) {
        case field_type::int64:
            if (fits_int64(j)) {
                out = j.get<std::int64_t>();
                return std::nullopt;
            }
            return "must be a 64-bit integer (the field is int), got " + got();
        case field_type::float64:
            if (j.is_number()) {
                out = j.get<double>();
                return std::nullopt;
            }
            return "must be a number (the field is double), got " + got();
        case field_type::boolean:
            if (j.is_boolean()) {
                out = j.get<bool>();
                return std::nullopt;
            }
            return "must be true or false (the field is bool), got " + got();
        case field_type::string:
            if (j.is_string()) {
                out = j.get<std::string>();
                return std::nullopt;
            }
            return "must be a string (the field is string), got " + got();
        case field_type::timestamp:
            if (j.is_string()) {
                if (auto ms = parse_rfc3339(j.get_ref<const std::string&>())) {
                    out = *ms;
                    return std::nullopt;
                }
            } else if (fits_int64(j)) {
                out = j.get<std::int64_t>();
                return std::nullopt;
            }
            return "must be an RFC 3339 time or epoch milliseconds (the field is timestamp), got " + got();
        case field_type::json:
            out = compact(j);
            return std::nullopt;
    }
    return "unsupported field type";
}

// The checks that need the whole field: min/max against the type, and the default.
void finish_field(field_draft& f, const std::string& path, diagnostics& d) {
    if (!f.type_ok) return;  // missing or bad type is reported already; nothing else can be judged
    field_config& c = f.cfg;
    const bool numeric = c.type == field_type::int64 || c.type == field_type::float64;
    if (!numeric) {
        const std::string only = std::string("only int and double fields can have ");
        if (c.min) d.add(child_path(path, "min"), only + "min (the field is " + to_string(c.type) + ")");
        if (c.max) d.add(child_path(path, "max"), only + "max (the field is " + to_string(c.type) + ")");
        c.min.reset();
        c.max.reset();
    } else if (c.min && c.max && *c.min > *c.max) {
        d.add(child_path(path, "min"),
              "must not be greater than max (" + format_number(*c.max) + "), got " + format_number(*c.min));
        return;
    }
    if (!f.default_json) return;
    const std::string default_path = child_path(path, "default");
    if (auto complaint = coerce_default(c.type, *f.default_json, c.default_value)) {
        d.add(default_path, std::move(*complaint));
        c.default_value = std::monostate{};
        return;
    }
    if (!numeric || std::holds_alternative<std::monostate>(c.default_value)) return;
    const double x = std::holds_alternative<double>(c.default_value)
                         ? std::get<double>(c.default_value)
                         : static_cast<double>(std::get<std::int64_t>(c.default_value));
    const std::string got = compact(*f.default_json);
    if (c.min && c.max && (x < *c.min || x > *c.max))
        d.add(default_path, "must be between min and max (" + format_number(*c.min) + " and " +
                                format_number(*c.max) + "), got " + got);
    else if (c.min && x < *c.min)
        d.add(default_path, "must be >= min (" + format_number(*c.min) + "), got " + got);
    else if (c.max && x > *c.max)
        d.add(default_path, "must be <= max (" + format_number(*c.max) + "), got " + got);
}

void apply_fields(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d) {
    fs.fields.clear();
    const auto& reserved = reserved_columns();
    for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string& name = it.key();
        const std::string p = child_path(path, name);
        bool name_ok = true;
        if (!is_identifier(name, max_name_len)) {
            d.add(p, "field name " + identifier_rule(max_name_len));
            name_ok = false;
        } else if (std::find(reserved.begin(), reserved.end(), name) != reserved.end()) {
            d.add(p, "\"" + name + "\" is a reserved column name (" + join(reserved, ", ") + "); rename the field");
            name_ok = false;
        }
        field_draft f;
        f.cfg.name = name;
        read_object(it.value(), p, field_keys(), f, d);  // still checked, so every error shows at once
        finish_field(f, p, d);
        if (name_ok) fs.fields.push_back(std::move(f.cfg));
    }
}

const std::vector<key_spec<feature_set_config>>& feature_set_keys() {
    using S = feature_set_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "name in the API and in table names", &S::name, identifier(max_name_len))),
        required(string_key<S>("topic", "Kafka topic the events come from", &S::topic, non_empty())),
        required(string_key<S>("key", "event field holding the entity key", &S::key_field, non_empty())),
        required(string_key<S>("event_time", "event field holding the event time (RFC 3339 or epoch ms)",
                               &S::event_time_field, non_empty())),
        custom_key<S>("fields", "typed fields by name, in the order of the file", "{}", kind::object, apply_fields),
        custom_key<S>("ttl", "how long a latest value is served; \"0\" = forever", "\"24h\"", kind::string,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          const std::string& s = v.get_ref<const std::string&>();
                          std::int64_t ms = 0;
                          if (parse_duration_ms(s, ms))
                              fs.ttl_ms = ms;
                          else
                              d.add(p, "invalid duration " + quote(s) +
                                           ": use a whole number and a unit ms, s, m, h or d, e.g. \"24h\", "
                                           "or \"0\" for never");
                      }),
        custom_key<S>("aggregations", "windowed aggregations (not supported yet)", "[]", kind::any,
                      [](S&, const json&, const std::string& p, diagnostics& d) {
                          d.add(p, "aggregations are not supported yet");
                      }),
    };
    return keys;
}

void apply_feature_sets(config& c, const json& v, const std::string& path, diagnostics& d) {
    c.feature_sets.clear();
    if (v.empty()) {
        d.add(path, "must list at least one feature set");
        return;
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
        feature_set_config fs;
        read_object(v[i], index_path(path, i), feature_set_keys(), fs, d);
        c.feature_sets.push_back(std::move(fs));
    }
    // Names are the API's and the tables' names; topics route events to exactly one set.
    for (std::size_t i = 0; i < c.feature_sets.size(); ++i) {
        const auto& a = c.feature_sets[i];
        for (std::size_t j = 0; j < i; ++j) {
            const auto& b = c.feature_sets[j];
            if (!a.name.empty() && a.name == b.name)
                d.add(index_path(path, i) + ".name",
                      "duplicate feature set name " + quote(a.name) + " (also " + index_path(path, j) + ")");
            if (!a.topic.empty() && a.topic == b.topic)
                d.add(index_path(path, i) + ".topic", "topic " + quote(a.topic) + " already feeds feature set " +
                                                          quote(b.name) + " (" + index_path(path, j) + ")");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pipeline, postgres, redis, http, log, generator

const std::vector<key_spec<pipeline_config>>& pipeline_keys() {
    using S = pipeline_config;
    static const std::vector<key_spec<S>> keys = {
        integer_key<S>("preprocess_threads", "threads that validate and transform records", &S::preprocess_threads,
                       1, 64),
        integer_key<S>("queue_capacity", "records each stage queue holds", &S::queue_capacity, 16, 16777216),
        integer_key<S>("batch_max_records", "records per store write", &S::batch_max_records, 1, 1000000),
        integer_key<S>("batch_linger_ms", "longest a partial batch waits for more records", &S::batch_linger_ms, 0,
                       60000),
        number_key<S>("pause_watermark", "queue fill fraction that pauses Kafka partitions", &S::pause_watermark, 0.1,
                      1.0),
        number_key<S>("resume_watermark", "queue fill fraction below which they resume", &S::resume_watermark, 0.0,
                      1.0),
        integer_key<S>("shutdown_timeout_ms", "longest a drain on SIGTERM may take", &S::shutdown_timeout_ms, 100,
                       600000),
    };
    return keys;
}

const std::vector<key_spec<postgres_config>>& postgres_keys() {
    using S = postgres_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("dsn", "libpq connection string", &S::dsn, non_empty())),
        integer_key<S>("pool_size", "connections in the pool", &S::pool_size, 1, 64),
        string_key<S>("schema", "schema holding Sluice's tables", &S::schema, identifier(63)),
    };
    return keys;
}

const std::vector<key_spec<redis_config>>& redis_keys() {
    using S = redis_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("host", "Redis host", &S::host, non_empty()),
        integer_key<S>("port", "Redis port", &S::port, 1, 65535),
        integer_key<S>("pool_size", "connections in the pool", &S::pool_size, 1, 64),
        string_key<S>("key_prefix", "prefix of every key, <prefix>:<set>:<key>", &S::key_prefix, no_spaces()),
        string_key<S>("password", "AUTH password; \"\" = none", &S::password),
        integer_key<S>("db", "database number", &S::db, 0, 15),
        integer_key<S>("timeout_ms", "connect and command timeout", &S::timeout_ms, 1, 60000),
    };
    return keys;
}

const std::vector<key_spec<api_key_config>>& api_key_keys() {
    using S = api_key_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "who holds the key (shown in logs)", &S::name, non_empty())),
        required(string_key<S>("sha256", "hex SHA-256 of the key; the key itself is never stored", &S::sha256,
                               sha256_hex())),
        required(custom_key<S>(
            "scopes", "what the key may do: read, write (ingest), admin (catalog details, metrics)", "", kind::array,
            [](S& k, const json& v, const std::string& p, diagnostics& d) {
                k.scopes.clear();
                if (v.empty()) {
                    d.add(p, "must list at least one scope (read, write, admin)");
                    return;
                }
                const auto check = one_of({"read", "write", "admin"});
                for (std::size_t i = 0; i < v.size(); ++i) {
                    if (!v[i].is_string()) {
                        d.add(index_path(p, i), expected("string", v[i]));
                        continue;
                    }
                    std::string scope = v[i].get<std::string>();
                    if (auto complaint = check(scope))
                        d.add(index_path(p, i), std::move(*complaint));
                    else
                        k.scopes.push_back(std::move(scope));
                }
            })),
    };
    return keys;
}

// JSON "http.auth" has no struct of its own: its keys fill http_config.
const std::vector<key_spec<http_config>>& auth_keys() {
    using S = http_config;
    static const std::vector<key_spec<S>> keys = {
        custom_key<S>("api_keys", "accepted API keys; none = auth off", "[]", kind::array,
                      [](S& h, const json& v, const std::string& p, diagnostics& d) {
                          h.api_keys.clear();
                          for (std::size_t i = 0; i < v.size(); ++i) {
                              api_key_config k;
                              read_object(v[i], index_path(p, i), api_key_keys(), k, d);
                              h.api_keys.push_back(std::move(k));
                          }
                      }),
    };
    return keys;
}

const std::vector<key_spec<http_config>>& http_keys() {
    using S = http_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("listen", "address to listen on, \"host:port\"; port 0 picks a free port", &S::listen,
                      listen_address()),
        integer_key<S>("threads", "io threads", &S::threads, 1, 64),
        integer_key<S>("body_limit_bytes", "largest request body", &S::body_limit_bytes, 1, 1073741824),
        integer_key<S>("header_limit_bytes", "largest request header", &S::header_limit_bytes, 512, 1048576),
        integer_key<S>("read_timeout_ms", "longest a request may take to arrive", &S::read_timeout_ms, 100, 3600000),
        integer_key<S>("idle_timeout_ms", "how long an idle keep-alive connection stays open", &S::idle_timeout_ms,
                       100, 3600000),
        integer_key<S>("lookup_threads", "threads for Redis and PostgreSQL reads", &S::lookup_threads, 1, 64),
        custom_key<S>("auth", "API keys", "{}", kind::object,
                      [](S& h, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, auth_keys(), h, d);
                      }),
    };
    return keys;
}

const std::vector<key_spec<log_config>>& log_keys() {
    using S = log_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("level", "trace, debug, info, warn, error, critical or off", &S::level,
                      one_of({"trace", "debug", "info", "warn", "error", "critical", "off"})),
        string_key<S>("format", "text or json", &S::format, one_of({"text", "json"})),
    };
    return keys;
}

const std::vector<key_spec<generator_config>>& generator_keys() {
    using S = generator_config;
    static const std::vector<key_spec<S>> keys = {
        bool_key<S>("enabled", "produce synthetic events for a demo", &S::enabled),
        number_key<S>("events_per_sec", "synthetic events per second", &S::events_per_sec, 0.1, 100000),
        integer_key<S>("keys", "distinct entity keys the generator uses", &S::keys, 1, 10000000),
    };
    return keys;
}

// A store section: an object turns the store on; leaving it out (or null) leaves it off.
template <class T>
apply_fn<config> optional_section(std::optional<T> config::*member, const std::vector<key_spec<T>>& (*table)()) {
    return [member, table](config& c, const json& v, const std::string& p, diagnostics& d) {
        if (v.is_null()) {
            (c.*member).reset();
            return;
        }
        if (!v.is_object()) {
            d.add(p, expected("object", v));
            return;
        }
        T section;
        read_object(v, p, table(), section, d);
        c.*member = std::move(section);
    };
}

template <class T>
apply_fn<config> section(T config::*member, const std::vector<key_spec<T>>& (*table)()) {
    return [member, table](config& c, const json& v, const std::string& p, diagnostics& d) {
        read_object(v, p, table(), c.*member, d);
    };
}

const std::vector<key_spec<config>>& root_keys() {
    using S = config;
    static const std::vector<key_spec<S>> keys = {
        custom_key<S>("kafka", "where events come from", "{}", kind::object, section(&S::kafka, kafka_keys)),
        required(custom_key<S>("feature_sets", "the datasets served", "", kind::array, apply_feature_sets)),
        custom_key<S>("pipeline", "threads, queues and batching between the stages", "{}", kind::object,
                      [](S& c, const json& v, const std::string& p, diagnostics& d) {
                          const std::size_t before = d.count();
                          read_object(v, p, pipeline_keys(), c.pipeline, d);
                          if (d.count() == before && c.pipeline.resume_watermark >= c.pipeline.pause_watermark)
                              d.add(child_path(p, "resume_watermark"),
                                    "must be less than pause_watermark (" +
                                        format_number(c.pipeline.pause_watermark) + "), got " +
                                        format_number(c.pipeline.resume_watermark));
                      }),
        custom_key<S>("postgres", "history, latest and offsets; leave out to run without PostgreSQL", "absent",
                      kind::any, optional_section(&S::postgres, postgres_keys)),
        custom_key<S>("redis", "hot latest values; leave out to run without Redis", "absent", kind::any,
                      optional_section(&S::redis, redis_keys)),
        custom_key<S>("http", "the HTTP API", "{}", kind::object, section(&S::http, http_keys)),
        custom_key<S>("log", "logging", "{}", kind::object, section(&S::log, log_keys)),
        custom_key<S>("generator", "synthetic events for a demo", "{}", kind::object,
                      section(&S::generator, generator_keys)),
    };
    return keys;
}

// Checks across sections, once each section has been read.
void check_across(const config& c, diagnostics& d) {
    const std::string& dlq = c.kafka.dead_letter_topic;
    if (dlq.empty()) return;
    for (const auto& fs : c.feature_sets)
        if (fs.topic == dlq)
            d.add("kafka.dead_letter_topic",
                  "must not be a feature set's topic (" + quote(dlq) + " feeds " + quote(fs.name) + ")");
}

// ---------------------------------------------------------------------------------------------
// Parsing

// Deeper than any sensible config (the deepest keys are ~5 levels, plus a json default); bounding
// it keeps path building linear and the recursive walks below shallow.
constexpr std::size_t max_depth = 64;

// Parses with comments allowed. nlohmann keeps the last of two equal keys without a word, so a
// parse callback tracks the keys of each open object and reports the repeats with their paths.
std::optional<json> parse_document(const std::string& text, diagnostics& d, std::vector<config_error>& fatal) {
    struct frame {
        bool is_array = false;
        std::size_t count = 0;  // elements started so far (arrays)
        std::string path;
        std::string last_key;  // objects
        std::unordered_set<std::string> keys;
    };
    std::vector<frame> stack;
    std::optional<std::string> too_deep;  // path of the first container past max_depth
    const auto element_path = [&]() -> std::string {
        if (stack.empty()) return "";
        frame& f = stack.back();
        if (f.is_array) return index_path(f.path, f.count++);
        return child_path(f.path, f.last_key);
    };
    json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) -> bool {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start: {
                frame f;
                f.is_array = event == json::parse_event_t::array_start;
                if (stack.size() < max_depth)
                    f.path = element_path();
                else if (!too_deep)
                    too_deep = element_path();  // deeper frames keep an empty path: no quadratic strings
                stack.push_back(std::move(f));
                break;
            }
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!stack.empty()) stack.pop_back();
                break;
            case json::parse_event_t::key:
                if (!stack.empty() && parsed.is_string()) {
                    frame& f = stack.back();
                    f.last_key = parsed.get<std::string>();
                    if (!f.keys.insert(f.last_key).second)
                        d.add(child_path(f.path, f.last_key), "duplicate key (each key may appear once)");
                }
                break;
            case json::parse_event_t::value:
                if (!stack.empty() && stack.back().is_array) ++stack.back().count;
                break;
        }
        return true;
    };
    try {
        json doc = json::parse(text, track, /*allow_exceptions=*/true, /*ignore_comments=*/true);
        if (too_deep) {
            fatal.push_back({*too_deep, "nested more than " + std::to_string(max_depth) + " levels deep"});
            return std::nullopt;
        }
        return doc;
    } catch (const json::parse_error& e) {
        // "[json.exception.parse_error.101] parse error at line 3, column 5: ..." → drop the tag.
        std::string msg = e.what();
        if (const std::size_t tag_end = msg.find("] "); !msg.empty() && msg[0] == '[' && tag_end != std::string::npos)
            msg.erase(0, tag_end + 2);
        fatal.push_back({"", std::move(msg)});
        return std::nullopt;
    }
}

}  // namespace

bool parse_duration_ms(const std::string& text, std::int64_t& out_ms) {
    if (text == "0") {
        out_ms = 0;
        return true;
    }
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    std::size_t i = 0;
    std::int64_t n = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        const int digit = text[i] - '0';
        if (n > (max - digit) / 10) return false;
        n = n * 10 + digit;
    }
    if (i == 0) return false;
    const std::string_view unit = std::string_view(text).substr(i);
    std::int64_t scale;
    if (unit == "ms")
        scale = 1;
    else if (unit == "s")
        scale = 1000;
    else if (unit == "m")
        scale = 60 * 1000;
    else if (unit == "h")
        scale = 3600 * 1000;
    else if (unit == "d")
        scale = 86400 * 1000;
    else
        return false;
    if (n > max / scale) return false;
    out_ms = n * scale;
    return true;
}

config_load_result load_config_text(const std::string& text) {
    config_load_result result;
    try {
        diagnostics d;
        std::vector<config_error> fatal;
        std::optional<json> doc = parse_document(text, d, fatal);
        if (!doc) {
            result.errors = std::move(fatal);  // a syntax error (or absurd nesting) hides everything else
            return result;
        }
        substitute_env(*doc, "", d);
        if (!doc->is_object()) {
            d.add("", "the config must be a JSON object, got " + type_name(*doc));
        } else {
            read_object(*doc, "", root_keys(), result.cfg, d);
            check_across(result.cfg, d);
        }
        result.errors = d.take();
    } catch (const std::exception& e) {
        result.errors.push_back({"", std::string("internal error while reading the config: ") + e.what()});
    }
    return result;
}

config_load_result load_config_file(const std::string& path) {
    config_load_result result;
    const auto fail = [&](int err) {
        result.errors.push_back({"", "cannot read config file " + quote(path) + ": " + std::strerror(err)});
        return result;
    };
    try {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(errno);
        std::string text;
        char buf[65536];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                ::close(fd);
                return fail(err);
            }
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        return load_config_text(text);
    } catch (const std::exception& e) {
        result.errors.push_back({"", "cannot read config file " + quote(path) + ": " + e.what()});
        return result;
    }
}

std::string format_errors(const std::vector<config_error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        if (!e.path.empty()) out += e.path + ": ";
        out += e.message;
        out += '\n';
    }
    return out;
}

}  // namespace sluice
