#pragma once
// Reads a config file: JSON with // comments, ${ENV} substitution, typed and validated.

#include <string>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice {

/// One problem found in a config file, e.g. {"feature_sets[0].fields.spend.min", "must be a number"}.
struct config_error {
    std::string path;
    std::string message;
};

/// The outcome of loading: a config when errors is empty.
struct config_load_result {
    config cfg;
    std::vector<config_error> errors;
    bool ok() const { return errors.empty(); }
};

/// Loads and validates a file. Every error is collected (not just the first).
config_load_result load_config_file(const std::string& path);

/// Loads and validates JSON text (used by load_config_file and by tests).
config_load_result load_config_text(const std::string& text);

/// "path: message" lines, one per error.
std::string format_errors(const std::vector<config_error>& errors);

/// Parses "500ms", "30s", "15m", "1h", "7d" into milliseconds; a plain "0" is 0.
bool parse_duration_ms(const std::string& text, std::int64_t& out_ms);

}  // namespace sluice
