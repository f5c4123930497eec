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
#include <map>
#include <optional>
#include <string_view>
#include <unistd.h>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "sluice/core/clock.hpp"
#include "sluice/core/timestamp.hpp"  // the timestamp rule, shared with events

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

// Column names every feature set table already has (README, "Stores"); a field may not shadow them.
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
    const json* allowed_json = nullptr;
};

// RFC 6901: "/a/b~1c" → {"a", "b/c"}; nothing when it is not a pointer.
std::optional<std::vector<std::string>> pointer_tokens(const std::string& p) {
    if (p.empty() || p[0] != '/') return std::nullopt;
    std::vector<std::string> out(1);
    for (std::size_t i = 1; i < p.size(); ++i) {
        if (p[i] == '/') {
            out.emplace_back();
        } else if (p[i] == '~') {
            if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
            out.back() += p[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            out.back() += p[i];
        }
    }
    return out;
}

std::optional<std::string> pointer_problem(const std::string& s) {
    if (s.empty() || s[0] != '/')
        return "must be a JSON pointer starting with \"/\" (e.g. \"/device/os\"), got " + quote(s);
    if (!pointer_tokens(s))
        return "invalid JSON pointer " + quote(s) +
               ": \"~\" must be followed by 0 or 1 (\"~0\" is \"~\", \"~1\" is \"/\")";
    return std::nullopt;
}

// A set's key or event time: a top-level member name, or a JSON pointer when it starts with "/".
string_check member_or_pointer() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        if (s[0] == '/') return pointer_problem(s);
        return std::nullopt;
    };
}

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
        custom_key<S>("source", "JSON pointer to the value in the event, e.g. \"/device/os\"", "\"/<field name>\"",
                      kind::string,
                      [](S& f, const json& v, const std::string& p, diagnostics& d) {
                          const std::string& s = v.get_ref<const std::string&>();
                          if (auto complaint = pointer_problem(s))
                              d.add(p, std::move(*complaint));
                          else
                              f.cfg.source = s;
                      }),
        custom_key<S>("allowed", "the only values accepted (string and int fields); others are dead letters",
                      "any value", kind::array,
                      [](S& f, const json& v, const std::string&, diagnostics&) { f.allowed_json = &v; }),
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
        case field_type::timestamp: {
            // The same rule as event times (record_parser.hpp): numbers below 10^11 are seconds.
            std::optional<std::int64_t> ms;
            if (j.is_string())
                ms = parse_timestamp_text(j.get_ref<const std::string&>());
            else if (fits_int64(j))
                ms = epoch_number_to_ms(j.get<std::int64_t>());
            else if (j.is_number_float())
                ms = epoch_number_to_ms(j.get<double>());
            if (ms) {
                out = *ms;
                return std::nullopt;
            }
            return "must be an RFC 3339 time or epoch seconds or milliseconds in years 1970..9999 (the field is "
                   "timestamp), got " +
                   got();
        }
        case field_type::json:
            out = compact(j);
            return std::nullopt;
    }
    return "unsupported field type";
}

// The checks that need the whole field: min/max against the type, and the default.
constexpr std::size_t max_allowed_values = 1024;

// "allowed": a non-empty list of values of the field's type (string and int fields only).
void read_allowed(field_draft& f, const std::string& path, diagnostics& d) {
    field_config& c = f.cfg;
    const std::string p = child_path(path, "allowed");
    const json& list = *f.allowed_json;
    if (c.type != field_type::string && c.type != field_type::int64) {
        d.add(p, std::string("only string and int fields can have allowed values (the field is ") + to_string(c.type) +
                     ")");
        return;
    }
    if (list.empty() || list.size() > max_allowed_values) {
        d.add(p, "must list between 1 and " + std::to_string(max_allowed_values) + " values, got " +
                     std::to_string(list.size()));
        return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        const json& item = list[i];
        if (c.type == field_type::string ? !item.is_string() : !fits_int64(item)) {
            d.add(index_path(p, i),
                  std::string(c.type == field_type::string ? "must be a string" : "must be a 64-bit integer") +
                      " (the field is " + to_string(c.type) + "), got " + compact(item));
            continue;
        }
        c.allowed.push_back(c.type == field_type::string ? value{item.get<std::string>()}
                                                         : value{item.get<std::int64_t>()});
    }
}

void finish_field(field_draft& f, const std::string& path, diagnostics& d) {
    if (f.cfg.source.empty()) f.cfg.source = "/" + f.cfg.name;  // names are identifiers: nothing to escape
    if (!f.type_ok) return;  // missing or bad type is reported already; nothing else can be judged
    field_config& c = f.cfg;
    if (f.allowed_json) {
        read_allowed(f, path, d);
        if (f.default_json && !f.default_json->is_null() && !c.allowed.empty()) {
            value def;
            if (!coerce_default(c.type, *f.default_json, def) &&
                std::find(c.allowed.begin(), c.allowed.end(), def) == c.allowed.end())
                d.add(child_path(path, "default"),
                      "must be one of the allowed values, got " + compact(*f.default_json));
        }
    }
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
        // A field with a bad name or type is left out, so that nothing later judges it again
        // (an aggregation or transform naming it is not a second error: see declared_in_file).
        if (name_ok && f.type_ok) fs.fields.push_back(std::move(f.cfg));
    }
}

// ---------------------------------------------------------------------------------------------
// aggregations

constexpr std::int64_t minute_ms = 60 * 1000;
constexpr std::int64_t max_window_ms = 30LL * 86400 * 1000;
constexpr std::size_t max_aggregations = 64;  // per feature set; each one costs memory per key

const char* const duration_rule = "use a whole number and a unit ms, s, m, h or d, e.g. \"24h\"";

// Reads a duration string and checks lo..hi; reports and returns nothing when it is not one.
std::optional<std::int64_t> read_duration(const json& v, const std::string& p, std::int64_t lo, std::int64_t hi,
                                          const char* lo_text, const char* hi_text, diagnostics& d) {
    const std::string& s = v.get_ref<const std::string&>();
    std::int64_t ms = 0;
    if (!parse_duration_ms(s, ms)) {
        d.add(p, "invalid duration " + quote(s) + ": " + duration_rule);
        return std::nullopt;
    }
    if (ms < lo || ms > hi) {
        d.add(p, std::string("must be between ") + lo_text + " and " + hi_text + ", got " + quote(s));
        return std::nullopt;
    }
    return ms;
}

const std::vector<key_spec<aggregation_config>>& aggregation_keys() {
    using S = aggregation_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "name of the aggregate in the API, Redis and the latest table", &S::name,
                               identifier(max_name_len))),
        required(string_key<S>("field", "declared field it reads: int or double, or any type for count and last",
                               &S::field, non_empty())),
        required(custom_key<S>("op", "count, sum, avg, min, max or last", "", kind::string,
                               [](S& a, const json& v, const std::string& p, diagnostics& d) {
                                   static const std::vector<std::pair<std::string, agg_op>> ops = {
                                       {"count", agg_op::count}, {"sum", agg_op::sum}, {"avg", agg_op::avg},
                                       {"min", agg_op::min},     {"max", agg_op::max}, {"last", agg_op::last}};
                                   const std::string& s = v.get_ref<const std::string&>();
                                   for (const auto& [name, op] : ops)
                                       if (name == s) {
                                           a.op = op;
                                           return;
                                       }
                                   std::string text = s;
                                   d.add(p, *one_of({"count", "sum", "avg", "min", "max", "last"})(text));
                               })),
        // Whole minutes: the window is cut into 60 tiles of window/60, which are then whole
        // seconds, so tile edges never fall inside a second.
        required(custom_key<S>(
            "window", "sliding event-time window, 1m..30d in whole minutes (60 tiles of window/60)", "", kind::string,
            [](S& a, const json& v, const std::string& p, diagnostics& d) {
                const auto ms = read_duration(v, p, minute_ms, max_window_ms, "1m", "30d", d);
                if (!ms) return;
                if (*ms % minute_ms != 0) {
                    d.add(p,
                          "must be a whole number of minutes (the window is cut into 60 tiles of window/60, "
                          "each a whole number of seconds), got " +
                              quote(v.get<std::string>()));
                    return;
                }
                a.window_ms = *ms;
            })),
    };
    return keys;
}

void apply_aggregations(feature_set_config& fs, const json& v, const std::string& path, diagnostics& d) {
    fs.aggregations.clear();
    if (v.size() > max_aggregations) {
        d.add(path, "at most " + std::to_string(max_aggregations) + " aggregations per feature set, got " +
                        std::to_string(v.size()));
        return;
    }
    // One entry per element, even a bad one, so that entry i is always aggregations[i] in the file.
    for (std::size_t i = 0; i < v.size(); ++i) {
        aggregation_config a;
        read_object(v[i], index_path(path, i), aggregation_keys(), a, d);
        fs.aggregations.push_back(std::move(a));
    }
}

// Is `name` a key of the set's "fields" object in the file? A field that is there but not in
// fs.fields had a bad name or type, which is reported already: a reference to it is not a
// second error.
bool declared_in_file(const json& set, const std::string& name) {
    const auto it = set.find("fields");
    return it != set.end() && it->is_object() && it->contains(name);
}

std::vector<std::string> field_names(const feature_set_config& fs) {
    std::vector<std::string> names;
    for (const auto& f : fs.fields) names.push_back(f.name);
    return names;
}

// Index of the declared field called `name`, or -1.
int find_field(const feature_set_config& fs, const std::string& name) {
    for (std::size_t i = 0; i < fs.fields.size(); ++i)
        if (fs.fields[i].name == name) return static_cast<int>(i);
    return -1;
}

// "not a declared field of this set (did you mean ...?)"; nothing when it is reported already.
std::optional<std::string> unknown_field(const feature_set_config& fs, const json& set, const std::string& name) {
    if (declared_in_file(set, name)) return std::nullopt;
    std::string msg = quote(name) + " is not a declared field of this feature set";
    if (auto hint = suggest(name, field_names(fs))) msg += " (did you mean \"" + *hint + "\"?)";
    return msg;
}

// ---------------------------------------------------------------------------------------------
// dedup

const std::vector<key_spec<dedup_config>>& dedup_keys() {
    using S = dedup_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("field", "declared string or int field holding the event id", &S::field, non_empty())),
        custom_key<S>("window", "event time an id is remembered for, 1s..7d", "\"10m\"", kind::string,
                      [](S& dd, const json& v, const std::string& p, diagnostics& d) {
                          if (auto ms = read_duration(v, p, 1000, 7LL * 86400 * 1000, "1s", "7d", d))
                              dd.window_ms = *ms;
                      }),
        integer_key<S>("max_ids", "ids remembered per preprocess worker at most (about 100 bytes each)", &S::max_ids, 1,
                       100000000),
    };
    return keys;
}

// ---------------------------------------------------------------------------------------------
// transforms

constexpr std::size_t max_transforms = 256;

// One transform as read: which keys it has, and the values that need the field's type to judge.
struct transform_draft {
    transform_config cfg;
    bool op_ok = false;
    std::string op_name;
    std::vector<std::string> keys;  // keys given besides "op", in file order
    const json* value = nullptr;    // default
    const json* min = nullptr;      // clamp
    const json* max = nullptr;
    const json* operand = nullptr;  // filter: the first condition's value
    std::string condition;          // filter: the first condition's key
    bool to_ok = false;             // cast: "to" names a type
};

struct condition_name {
    const char* name;
    filter_op op;
};
constexpr condition_name conditions[] = {{"equals", filter_op::equals}, {"not_equals", filter_op::not_equals},
                                         {"in", filter_op::in},         {"not_in", filter_op::not_in},
                                         {"gt", filter_op::gt},         {"gte", filter_op::gte},
                                         {"lt", filter_op::lt},         {"lte", filter_op::lte}};

bool is_condition(const std::string& key) {
    return std::any_of(std::begin(conditions), std::end(conditions), [&](const auto& c) { return key == c.name; });
}

struct op_name {
    const char* name;
    transform_op op;
    std::vector<std::string> keys;  // the keys it takes besides "op"
};

const std::vector<op_name>& transform_ops() {
    static const std::vector<op_name> ops = {
        {"rename", transform_op::rename, {"from", "to"}},
        {"cast", transform_op::cast, {"field", "to"}},
        {"default", transform_op::set_default, {"field", "value"}},
        {"clamp", transform_op::clamp, {"field", "min", "max"}},
        {"lower", transform_op::lower, {"field"}},
        {"upper", transform_op::upper, {"field"}},
        {"trim", transform_op::trim, {"field"}},
        {"hash", transform_op::hash, {"field", "salt"}},
        {"drop", transform_op::drop, {"field"}},
        {"filter", transform_op::filter, {"field", "equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte"}},
    };
    return ops;
}

const op_name& op_info(transform_op op) {
    for (const auto& o : transform_ops())
        if (o.op == op) return o;
    return transform_ops().front();
}

const std::vector<std::pair<std::string, field_type>>& type_names() {
    static const std::vector<std::pair<std::string, field_type>> types = {
        {"int", field_type::int64},     {"double", field_type::float64},      {"bool", field_type::boolean},
        {"string", field_type::string}, {"timestamp", field_type::timestamp}, {"json", field_type::json}};
    return types;
}

template <class F>
key_spec<transform_draft> draft_key(std::string name, std::string description, kind type, F store) {
    return custom_key<transform_draft>(
        name, std::move(description), "", type,
        [name, store](transform_draft& t, const json& v, const std::string& p, diagnostics& d) {
            t.keys.push_back(name);
            store(t, v, p, d);
        });
}

const std::vector<key_spec<transform_draft>>& transform_keys() {
    using S = transform_draft;
    const auto text = [](std::string transform_config::*member) {
        return
            [member](S& t, const json& v, const std::string&, diagnostics&) { t.cfg.*member = v.get<std::string>(); };
    };
    static const std::vector<key_spec<S>> keys = [&] {
        std::vector<key_spec<S>> k = {
            required(custom_key<S>("op", "rename, cast, default, clamp, lower, upper, trim, hash, drop or filter", "",
                                   kind::string,
                                   [](S& t, const json& v, const std::string& p, diagnostics& d) {
                                       std::string s = v.get<std::string>();
                                       for (const auto& o : transform_ops())
                                           if (s == o.name) {
                                               t.cfg.op = o.op;
                                               t.op_ok = true;
                                               t.op_name = s;
                                               return;
                                           }
                                       std::vector<std::string> names;
                                       for (const auto& o : transform_ops()) names.push_back(o.name);
                                       d.add(p, *one_of(names)(s));
                                   })),
            draft_key("field", "the declared field it works on", kind::string, text(&transform_config::field)),
            draft_key("from", "rename: the event member to rename", kind::string, text(&transform_config::from)),
            draft_key("to", "rename: the new member name; cast: the field's type", kind::string,
                      text(&transform_config::to)),
            draft_key("value", "default: the value a null becomes", kind::any,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.value = &v; }),
            draft_key("min", "clamp: smallest value", kind::number,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.min = &v; }),
            draft_key("max", "clamp: largest value", kind::number,
                      [](S& t, const json& v, const std::string&, diagnostics&) { t.max = &v; }),
            draft_key("salt", "hash: text put before the value before hashing", kind::string,
                      text(&transform_config::salt)),
        };
        for (const auto& c : conditions) {
            const std::string name = c.name;
            const bool list = c.op == filter_op::in || c.op == filter_op::not_in;
            k.push_back(draft_key(name, "filter: keep the event when the field " + name + " this",
                                  list ? kind::array : kind::any,
                                  [name, op = c.op](S& t, const json& v, const std::string&, diagnostics&) {
                                      if (t.operand) return;  // the second condition is reported later
                                      t.operand = &v;
                                      t.condition = name;
                                      t.cfg.condition = op;
                                  }));
        }
        return k;
    }();
    return keys;
}

// The names a rename may usefully write: what a field, the key or the event time reads at the top
// level of the event.
std::vector<std::string> top_level_reads(const feature_set_config& fs) {
    std::vector<std::string> names;
    const auto add = [&](const std::string& member_or_pointer) {
        if (member_or_pointer.empty()) return;
        if (member_or_pointer[0] != '/') {
            names.push_back(member_or_pointer);
        } else if (auto t = pointer_tokens(member_or_pointer); t && t->size() == 1) {
            names.push_back(t->front());
        }
    };
    for (const auto& f : fs.fields) add(f.source.empty() ? "/" + f.name : f.source);
    add(fs.key_field);
    add(fs.event_time_field);
    return names;
}

// Converts a filter operand, a clamp bound or a default to the field's type (null allowed where
// `null_ok`); reports at p and returns nothing when it does not fit.
std::optional<value> typed_operand(field_type t, const json& j, bool null_ok, const std::string& p, diagnostics& d) {
    if (j.is_null() && !null_ok) {
        d.add(p, "must not be null");
        return std::nullopt;
    }
    value out;
    if (auto complaint = coerce_default(t, j, out)) {
        d.add(p, std::move(*complaint));
        return std::nullopt;
    }
    return out;
}

// A number bound for an int, double or timestamp field (clamp, gt/gte/lt/lte): an int field
// takes a double for a comparison but only an integer for a clamp.
std::optional<value> typed_bound(field_type t, const json& j, bool integer_only, const std::string& p, diagnostics& d) {
    if (t == field_type::timestamp) return typed_operand(t, j, false, p, d);
    if (!j.is_number()) {
        d.add(p, expected("number", j));
        return std::nullopt;
    }
    if (t == field_type::int64 && fits_int64(j)) return value{j.get<std::int64_t>()};
    if (t == field_type::int64 && (integer_only || j.is_number_integer())) {
        d.add(p, "must be a 64-bit integer (the field is int), got " + compact(j));
        return std::nullopt;
    }
    return value{j.get<double>()};
}

void check_transform(transform_draft& t, std::size_t i, feature_set_config& fs, const json& set, const json& elem,
                     const std::string& p, diagnostics& d) {
    transform_config& c = t.cfg;
    const op_name& info = op_info(c.op);
    // Keys this op does not take, and the ones it needs.
    for (const auto& key : t.keys)
        if (std::find(info.keys.begin(), info.keys.end(), key) == info.keys.end())
            d.add(child_path(p, key),
                  "not a key of a " + t.op_name + " transform (it takes " + join(info.keys, ", ") + ")");
    const auto has = [&](const char* key) { return std::find(t.keys.begin(), t.keys.end(), key) != t.keys.end(); };
    // A key that is there with a bad value is reported already: not also "missing".
    const auto need = [&](const char* key) {
        if (has(key)) return true;
        if (!elem.contains(key))
            d.add(child_path(p, key), "required key is missing (a " + t.op_name + " transform needs it)");
        return false;
    };

    if (c.op == transform_op::rename) {
        const bool ok = need("from") & need("to");
        if (!ok) return;
        if (c.from.empty()) d.add(child_path(p, "from"), "must not be empty");
        if (c.to.empty()) d.add(child_path(p, "to"), "must not be empty");
        if (c.from.empty() || c.to.empty()) return;
        if (c.from == c.to) {
            d.add(child_path(p, "to"), "is the same as from");
            return;
        }
        // What a field, the key or the event time reads, or a later rename renames further.
        auto reads = top_level_reads(fs);
        const json& all = set.at("transforms");
        for (std::size_t j = i + 1; j < all.size(); ++j)
            if (all[j].is_object() && all[j].value("op", json()) == "rename" &&
                all[j].value("from", json()).is_string())
                reads.push_back(all[j]["from"].get<std::string>());
        if (std::find(reads.begin(), reads.end(), c.to) == reads.end()) {
            std::string msg = "no field, key or event time reads " + quote(c.to) +
                              " (a rename only matters into a member that is read)";
            if (auto hint = suggest(c.to, reads)) msg += " (did you mean \"" + *hint + "\"?)";
            d.add(child_path(p, "to"), std::move(msg));
        }
        return;
    }

    if (!need("field") || c.field.empty()) {
        if (has("field") && c.field.empty()) d.add(child_path(p, "field"), "must not be empty");
        return;
    }
    const int index = find_field(fs, c.field);
    if (index < 0) {
        if (auto complaint = unknown_field(fs, set, c.field)) d.add(child_path(p, "field"), std::move(*complaint));
        return;
    }
    c.field_index = static_cast<std::size_t>(index);
    const field_config& f = fs.fields[c.field_index];
    const std::string type = to_string(f.type);
    const auto wrong_type = [&](const std::string& needs) {
        d.add(child_path(p, "field"), t.op_name + " needs " + needs + "; " + quote(f.name) + " is " + type);
    };

    switch (c.op) {
        case transform_op::cast: {
            if (!need("to")) return;
            const auto& types = type_names();
            const auto it = std::find_if(types.begin(), types.end(), [&](const auto& n) { return n.first == c.to; });
            if (it == types.end()) {
                std::vector<std::string> names;
                for (const auto& n : types) names.push_back(n.first);
                std::string text = c.to;
                d.add(child_path(p, "to"), *one_of(names)(text));
                return;
            }
            c.cast_to = it->second;
            if (c.cast_to != f.type)
                d.add(child_path(p, "to"), "cannot cast " + quote(f.name) + " (" + type + ") to " + c.to +
                                               ": a field always holds its declared type, and a cast only reads the "
                                               "raw value leniently into it; use \"to\": \"" +
                                               type + "\", or declare the field as " + c.to);
            return;
        }
        case transform_op::set_default: {
            if (!need("value")) return;
            if (f.required)
                d.add(child_path(p, "field"), quote(f.name) +
                                                  " is required: an event without it is a dead letter, "
                                                  "so a default never applies");
            if (auto v = typed_operand(f.type, *t.value, false, child_path(p, "value"), d)) c.default_value = *v;
            return;
        }
        case transform_op::clamp: {
            if (f.type != field_type::int64 && f.type != field_type::float64)
                return wrong_type("an int or double field");
            if (!t.min && !t.max) {
                d.add(p, "a clamp needs min, max or both");
                return;
            }
            if (t.min)
                if (auto v = typed_bound(f.type, *t.min, true, child_path(p, "min"), d)) c.clamp_min = *v;
            if (t.max)
                if (auto v = typed_bound(f.type, *t.max, true, child_path(p, "max"), d)) c.clamp_max = *v;
            if (t.min && t.max && t.min->get<double>() > t.max->get<double>())
                d.add(child_path(p, "min"),
                      "must not be greater than max (" + compact(*t.max) + "), got " + compact(*t.min));
            return;
        }
        case transform_op::lower:
        case transform_op::upper:
        case transform_op::trim:
        case transform_op::hash:
            if (f.type != field_type::string) wrong_type("a string field");
            return;
        case transform_op::drop:
            return;
        case transform_op::filter: {
            std::vector<std::string> given;  // every condition key in the file, good or bad
            for (auto it = elem.begin(); it != elem.end(); ++it)
                if (is_condition(it.key())) given.push_back(it.key());
            if (given.empty()) {
                d.add(p, "a filter needs one condition: equals, not_equals, in, not_in, gt, gte, lt or lte");
                return;
            }
            for (std::size_t k = 1; k < given.size(); ++k)
                d.add(child_path(p, given[k]), "a filter has one condition; this one already has " + quote(given[0]));
            if (f.type == field_type::json) return wrong_type("a field that is not json");
            if (!t.operand || t.condition != given[0]) return;  // its value was reported already
            const std::string op_path = child_path(p, t.condition);
            switch (c.condition) {
                case filter_op::equals:
                case filter_op::not_equals:
                    if (auto v = typed_operand(f.type, *t.operand, true, op_path, d)) c.operands = {*v};
                    return;
                case filter_op::in:
                case filter_op::not_in:
                    if (t.operand->empty()) {
                        d.add(op_path, "must list at least one value");
                        return;
                    }
                    for (std::size_t k = 0; k < t.operand->size(); ++k)
                        if (auto v = typed_operand(f.type, (*t.operand)[k], true, index_path(op_path, k), d))
                            c.operands.push_back(*v);
                    return;
                default:
                    if (f.type != field_type::int64 && f.type != field_type::float64 && f.type != field_type::timestamp)
                        return wrong_type("an int, double or timestamp field for " + t.condition);
                    if (auto v = typed_bound(f.type, *t.operand, false, op_path, d)) c.operands = {*v};
                    return;
            }
        }
        case transform_op::rename:
            return;
    }
}

// The order the file shows is the order they run in (record_parser.hpp): renames first, filters
// last, a cast first among its field's transforms, nothing after a drop of the same field.
void check_transform_order(const std::vector<transform_draft>& drafts, const std::string& list_path, diagnostics& d) {
    std::optional<std::size_t> first_other, first_filter;
    std::map<std::string, std::size_t> first_of_field, drop_of_field;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
        const auto& t = drafts[i];
        if (!t.op_ok) continue;
        const std::string op_path = child_path(index_path(list_path, i), "op");
        const transform_op op = t.cfg.op;
        if (op == transform_op::rename) {
            if (first_other)
                d.add(op_path,
                      "a rename must come before the other transforms (it renames members of the raw "
                      "event, before anything reads them); move it before " +
                          index_path(list_path, *first_other));
            continue;
        }
        if (!first_other) first_other = i;
        if (op == transform_op::filter) {
            if (!first_filter) first_filter = i;
            continue;
        }
        if (first_filter)
            d.add(op_path, "must come before the filters (" + index_path(list_path, *first_filter) +
                               "): filters run after every other transform");
        const std::string& field = t.cfg.field;
        if (field.empty()) continue;
        if (const auto drop = drop_of_field.find(field); drop != drop_of_field.end()) {
            d.add(op_path, quote(field) + " is dropped by " + index_path(list_path, drop->second) +
                               "; a transform after the drop has no effect");
            continue;
        }
        if (op == transform_op::cast && first_of_field.count(field))
            d.add(op_path, "a cast must be the first transform of " + quote(field) + " (it reads the raw value); " +
                               index_path(list_path, first_of_field[field]) + " comes before it");
        first_of_field.emplace(field, i);
        if (op == transform_op::drop) drop_of_field.emplace(field, i);
    }
}

void finish_transforms(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    fs.transforms.clear();
    const auto it = set.find("transforms");
    if (it == set.end() || !it->is_array() || it->size() > max_transforms) return;  // reported already
    const std::string list_path = child_path(path, "transforms");
    std::vector<transform_draft> drafts(it->size());
    for (std::size_t i = 0; i < it->size(); ++i)
        read_object((*it)[i], index_path(list_path, i), transform_keys(), drafts[i], d);
    for (std::size_t i = 0; i < drafts.size(); ++i) {
        if (drafts[i].op_ok) check_transform(drafts[i], i, fs, set, (*it)[i], index_path(list_path, i), d);
        fs.transforms.push_back(drafts[i].cfg);  // one per element: transforms[i] is the file's transforms[i]
    }
    check_transform_order(drafts, list_path, d);
}

// The transform that drops a field, if any.
std::optional<std::size_t> dropped_by(const feature_set_config& fs, const std::string& field) {
    for (std::size_t i = 0; i < fs.transforms.size(); ++i)
        if (fs.transforms[i].op == transform_op::drop && fs.transforms[i].field == field) return i;
    return std::nullopt;
}

void finish_dedup(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    dedup_config& dd = fs.dedup;
    if (dd.field.empty()) return;
    const std::string p = child_path(child_path(path, "dedup"), "field");
    const int index = find_field(fs, dd.field);
    if (index < 0) {
        if (auto complaint = unknown_field(fs, set, dd.field)) d.add(p, std::move(*complaint));
        return;
    }
    dd.field_index = static_cast<std::size_t>(index);
    const field_type t = fs.fields[dd.field_index].type;
    if (t != field_type::string && t != field_type::int64)
        d.add(p, "dedup needs a string or int field holding the event id; " + quote(dd.field) + " is " + to_string(t));
    else if (auto drop = dropped_by(fs, dd.field))
        d.add(p, quote(dd.field) + " is dropped by " + index_path(child_path(path, "transforms"), *drop) +
                     ": dedup reads the stored value");
}

const std::vector<key_spec<feature_set_config>>& feature_set_keys() {
    using S = feature_set_config;
    static const std::vector<key_spec<S>> keys = {
        required(string_key<S>("name", "name in the API and in table names", &S::name, identifier(max_name_len))),
        required(string_key<S>("topic", "Kafka topic the events come from", &S::topic, non_empty())),
        required(string_key<S>("key", "event member holding the entity key, or a JSON pointer \"/a/b\"", &S::key_field,
                               member_or_pointer())),
        required(string_key<S>("event_time",
                               "event member (or JSON pointer) holding the event time: RFC 3339, epoch s or ms",
                               &S::event_time_field, member_or_pointer())),
        custom_key<S>("event_time_fallback",
                      "none: no event time is a dead letter; kafka_timestamp: use the Kafka message's timestamp",
                      "\"none\"", kind::string,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          std::string s = v.get<std::string>();
                          if (auto complaint = one_of({"none", "kafka_timestamp"})(s))
                              d.add(p, std::move(*complaint));
                          else
                              fs.event_time_fallback =
                                  s == "none" ? time_fallback::none : time_fallback::kafka_timestamp;
                      }),
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
        custom_key<S>("aggregations", "windowed aggregations per key, e.g. {\"name\": \"spend_sum_1h\", ...}", "[]",
                      kind::array, apply_aggregations),
        custom_key<S>("allowed_lateness",
                      "how far behind its key's newest event an event may be and still update the aggregates", "\"1h\"",
                      kind::string,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          if (auto ms = read_duration(v, p, 0, max_window_ms, "0", "30d", d))
                              fs.allowed_lateness_ms = *ms;
                      }),
        // Read whole in finish_transforms: they refer to fields, which may come later in the file.
        custom_key<S>("transforms", "rename, cast, default, clamp, lower, upper, trim, hash, drop and filter", "[]",
                      kind::array,
                      [](S&, const json& v, const std::string& p, diagnostics& d) {
                          if (v.size() > max_transforms)
                              d.add(p, "at most " + std::to_string(max_transforms) +
                                           " transforms per feature set, got " + std::to_string(v.size()));
                      }),
        custom_key<S>("dedup", "skip events whose id was seen within a window: {\"field\", \"window\", \"max_ids\"}",
                      "off", kind::object,
                      [](S& fs, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, dedup_keys(), fs.dedup, d);
                      }),
    };
    return keys;
}

// Aggregations refer to fields, which may come after them in the file: checked once the whole
// set has been read.
void finish_aggregations(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    const std::string list_path = child_path(path, "aggregations");
    const auto& reserved = reserved_columns();
    for (std::size_t i = 0; i < fs.aggregations.size(); ++i) {
        aggregation_config& a = fs.aggregations[i];
        const std::string p = index_path(list_path, i);
        // An empty name or field was reported while reading (missing, or not an identifier).
        if (!a.name.empty()) {
            if (std::find(reserved.begin(), reserved.end(), a.name) != reserved.end()) {
                d.add(child_path(p, "name"),
                      quote(a.name) + " is a reserved column name (" + join(reserved, ", ") + "); choose another name");
            } else if (find_field(fs, a.name) >= 0 || declared_in_file(set, a.name)) {
                d.add(child_path(p, "name"), quote(a.name) +
                                                 " is already a field of this feature set; an "
                                                 "aggregation needs a name of its own");
            } else {
                for (std::size_t j = 0; j < i; ++j)
                    if (fs.aggregations[j].name == a.name) {
                        d.add(child_path(p, "name"), "duplicate aggregation name " + quote(a.name) + " (also " +
                                                         index_path(list_path, j) + ")");
                        break;
                    }
            }
        }
        if (a.field.empty()) continue;
        const int index = find_field(fs, a.field);
        if (index < 0) {
            if (auto complaint = unknown_field(fs, set, a.field)) d.add(child_path(p, "field"), std::move(*complaint));
            continue;
        }
        a.field_index = static_cast<std::size_t>(index);
        const field_type t = fs.fields[a.field_index].type;
        const bool numeric = t == field_type::int64 || t == field_type::float64;
        const bool any_type = a.op == agg_op::count || a.op == agg_op::last;
        if (!any_type && !numeric)
            d.add(child_path(p, "field"), std::string(to_string(a.op)) + " needs an int or double field; " +
                                              quote(a.field) + " is " + to_string(t) +
                                              " (count and last accept any field)");
        else if (auto drop = dropped_by(fs, a.field))
            d.add(child_path(p, "field"), quote(a.field) + " is dropped by " +
                                              index_path(child_path(path, "transforms"), *drop) +
                                              ": the aggregation would only see nulls");
    }
}

// The checks that need the whole set, once every key of it has been read.
void finish_set(feature_set_config& fs, const json& set, const std::string& path, diagnostics& d) {
    finish_transforms(fs, set, path, d);
    finish_aggregations(fs, set, path, d);
    finish_dedup(fs, set, path, d);
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
        if (v[i].is_object()) finish_set(fs, v[i], index_path(path, i), d);
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
        bool_key<S>("parallel_latest",
                    "upsert latest on a second connection while history is written, committed just before "
                    "history (default false: one transaction for both)",
                    &S::parallel_latest),
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
        string_key<S>("username", "ACL user for AUTH (Redis 6+); \"\" = the default user", &S::username),
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

const std::vector<key_spec<tls_config>>& tls_keys() {
    using S = tls_config;
    static const std::vector<key_spec<S>> keys = {
        string_key<S>("cert_file", "PEM certificate chain", &S::cert_file),
        string_key<S>("key_file", "PEM private key", &S::key_file),
    };
    return keys;
}

const std::vector<key_spec<rate_limit_config>>& rate_limit_keys() {
    using S = rate_limit_config;
    static const std::vector<key_spec<S>> keys = {
        number_key<S>("requests_per_sec", "sustained requests per second per client; 0 = no limit",
                      &S::requests_per_sec, 0, 1e9),
        number_key<S>("burst", "requests a client may make at once above the rate", &S::burst, 1, 1e9),
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
        integer_key<S>("write_timeout_ms", "how long a client may take no bytes of an answer before it is cut off",
                       &S::write_timeout_ms, 100, 3600000),
        integer_key<S>("lookup_threads", "threads for Redis and PostgreSQL reads", &S::lookup_threads, 1, 64),
        integer_key<S>("max_connections", "open connections at most; more are closed at once", &S::max_connections,
                       1, 1000000),
        integer_key<S>("max_lookup_keys", "keys per batch lookup and entity rows per Feast request",
                       &S::max_lookup_keys, 1, 100000),
        integer_key<S>("ingest_timeout_ms", "how long POST /v1/ingest waits for durability before 503",
                       &S::ingest_timeout_ms, 100, 600000),
        custom_key<S>("tls", "TLS on the listener: {\"cert_file\", \"key_file\"} (PEM); absent = plain HTTP", "{}",
                      kind::object,
                      [](S& h, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, tls_keys(), h.tls, d);
                          if (h.tls.cert_file.empty() != h.tls.key_file.empty())
                              d.add(p, "cert_file and key_file go together: give both or neither");
                      }),
        custom_key<S>("rate_limit", "per-client token bucket: {\"requests_per_sec\", \"burst\"}", "{}",
                      kind::object,
                      [](S& h, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, rate_limit_keys(), h.rate_limit, d);
                      }),
        custom_key<S>("auth", "API keys", "{}", kind::object,
                      [](S& h, const json& v, const std::string& p, diagnostics& d) {
                          read_object(v, p, auth_keys(), h, d);
                      }),
    };
    return keys;
}

const std::vector<key_spec<memory_config>>& memory_keys() {
    using S = memory_config;
    static const std::vector<key_spec<S>> keys = {
        bool_key<S>("enabled", "keep latest values in memory (reads look there first)", &S::enabled),
        bool_key<S>("before_commit",
                    "a batch's records are readable from memory once the writer takes the batch, before "
                    "PostgreSQL commits it (memory is at most one batch ahead); false: after the commit",
                    &S::before_commit),
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
        custom_key<S>("memory", "the in-memory index of latest values", "{}", kind::object,
                      section(&S::memory, memory_keys)),
        custom_key<S>("log", "logging", "{}", kind::object, section(&S::log, log_keys)),
        custom_key<S>("generator", "synthetic events for a demo", "{}", kind::object,
                      section(&S::generator, generator_keys)),
    };
    return keys;
}

// Checks across sections, once each section has been read.
void check_across(const config& c, diagnostics& d) {
    if (c.redis && !c.redis->username.empty() && c.redis->password.empty())
        d.add("redis.username", "needs redis.password: Redis authenticates an ACL user by its password");
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
