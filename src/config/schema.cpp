// The config schema (sluice/config/schema.hpp), read from the key tables, and its two printed
// forms: a text table for people and a JSON array for scripts (scripts/gen_config_docs.py makes
// the README's config reference and config/sluice.example.json from it).

#include "sluice/config/schema.hpp"

#include <algorithm>
#include <cstddef>

#include "json_reader.hpp"
#include "key_tables.hpp"

namespace sluice {

const char* to_string(config_value_type t) {
    switch (t) {
        case config_value_type::integer: return "integer";
        case config_value_type::number: return "number";
        case config_value_type::boolean: return "boolean";
        case config_value_type::string: return "string";
        case config_value_type::object: return "object";
        case config_value_type::array: return "array";
        case config_value_type::any: return "any";
    }
    return "any";
}

const std::vector<config_key>& config_schema() {
    static const std::vector<config_key> keys = [] {
        std::vector<config_key> out;
        config_detail::describe_table(config_detail::root_keys(), "", out);
        return out;
    }();
    return keys;
}

namespace {

// What the DEFAULT column shows: the value, "(required)", or what leaving the key out means.
std::string default_cell(const config_key& k) {
    if (!k.default_json.empty()) return k.default_json;
    if (k.required) return "(required)";
    return k.default_note.empty() ? "-" : k.default_note;
}

std::string bounds_cell(const config_key& k) {
    if (k.min_json.empty() && k.max_json.empty()) return "";
    return k.min_json + ".." + k.max_json;
}

}  // namespace

std::string describe_config_text() {
    struct row {
        std::string cells[5];
    };
    std::vector<row> rows;
    rows.push_back({{"KEY", "TYPE", "DEFAULT", "BOUNDS", "DESCRIPTION"}});
    for (const auto& k : config_schema())
        rows.push_back({{k.path, to_string(k.type), default_cell(k), bounds_cell(k), k.description}});
    std::size_t width[4] = {};
    for (const auto& r : rows)
        for (std::size_t c = 0; c < 4; ++c) width[c] = std::max(width[c], r.cells[c].size());
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t c = 0; c < 4; ++c) line += r.cells[c] + std::string(width[c] - r.cells[c].size() + 2, ' ');
        line += r.cells[4];
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + '\n';
    }
    return out;
}

std::string describe_config_json() {
    using config_detail::json;
    json out = json::array();
    for (const auto& k : config_schema()) {
        json entry = json::object();
        entry["path"] = k.path;
        entry["type"] = to_string(k.type);
        entry["required"] = k.required;
        if (!k.default_json.empty()) entry["default"] = json::parse(k.default_json);
        if (!k.default_note.empty()) entry["default_note"] = k.default_note;
        if (!k.min_json.empty()) entry["min"] = json::parse(k.min_json);
        if (!k.max_json.empty()) entry["max"] = json::parse(k.max_json);
        if (!k.allowed.empty()) entry["allowed"] = k.allowed;
        entry["description"] = k.description;
        out.push_back(std::move(entry));
    }
    return out.dump(2) + "\n";
}

}  // namespace sluice
