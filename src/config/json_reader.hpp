#pragma once
// Reading a config document: JSON with comments, the JSON paths errors are reported at, the
// collected diagnostics, and ${ENV} substitution. Private to the config module; everything here
// runs on the thread that loads the config.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/loader.hpp"

namespace sluice::config_detail {

// ordered_json keeps keys in file order: fields are declared in the order they appear, and
// errors come out in the order a person reads the file.
using json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Paths and messages

/// Letters, digits and _, not starting with a digit: written bare in a path.
bool is_plain_key(std::string_view key);

/// JSON text of a string, never throwing on invalid UTF-8 (an environment variable may hold any bytes).
std::string quote(const std::string& s);

/// JSON text of a value, on one line.
std::string compact(const json& j);

/// "kafka" + "brokers" → "kafka.brokers"; a key that is not a plain identifier is bracketed and
/// quoted so that the path stays unambiguous: kafka.properties["bootstrap.servers"].
std::string child_path(const std::string& parent, const std::string& key);

/// "feature_sets" + 2 → "feature_sets[2]".
std::string index_path(const std::string& parent, std::size_t i);

/// A double as a person writes it: "0.9", "50", "1e+09".
std::string format_number(double v);

/// "null", "boolean", "string", "integer", "number", "object" or "array".
std::string type_name(const json& v);

/// "expected integer, got string".
std::string expected(std::string_view what, const json& got);

/// A JSON integer that fits std::int64_t (nlohmann keeps values above INT64_MAX as unsigned).
bool fits_int64(const json& v);

/// The closest of the candidates to a misspelled word, if any is close enough to be a typo.
std::optional<std::string> suggest(const std::string& word, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& items, std::string_view sep);

// ---------------------------------------------------------------------------------------------
// Error collection

/// Collects every problem found while reading one file. Owned by one load_config_text call.
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
// Parsing and environment substitution

/// Parses with comments allowed, reporting repeated keys into `d`. A syntax error (or absurd
/// nesting) goes to `fatal` instead and returns nothing: it hides everything else.
std::optional<json> parse_document(const std::string& text, diagnostics& d, std::vector<config_error>& fatal);

/// Replaces "${NAME}" in every string of `j` by the environment variable NAME. An unset variable
/// is an error; a set but empty one expands to "". "$${" is a literal "${" (so "$${HOME}" stays
/// "${HOME}"); any other "$" is literal. Strings that were substituted are marked in `d` (a
/// number or boolean may then be read from them), those that failed are marked unexpanded.
void substitute_env(json& j, const std::string& path, diagnostics& d);

}  // namespace sluice::config_detail
