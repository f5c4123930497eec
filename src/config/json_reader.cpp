// Reading a config document: paths and messages, diagnostics, parsing with comments and
// repeated-key detection, and ${ENV} substitution. The loader runs once at start-up on the main
// thread (and for `--check`); nothing here keeps state between loads.

#include "json_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

namespace sluice::config_detail {
namespace {

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

// "${NAME}" in any string value is replaced by the environment variable NAME (letters, digits
// and _, not starting with a digit).
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

// Deeper than any sensible config (the deepest keys are ~5 levels, plus a json default); bounding
// it keeps path building linear and the recursive walks below shallow.
constexpr std::size_t max_depth = 64;

}  // namespace

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
// Environment substitution

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
// Parsing

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

}  // namespace sluice::config_detail
