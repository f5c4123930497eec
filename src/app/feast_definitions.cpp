#include "sluice/app/feast_definitions.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "sluice/config/columns.hpp"
#include "sluice/config/loader.hpp"

namespace sluice {

namespace {

// Feast's type (feast.types) of a column.
const char* feast_type(field_type t) {
    switch (t) {
        case field_type::int64: return "Int64";
        case field_type::float64: return "Float64";
        case field_type::boolean: return "Bool";
        case field_type::string: return "String";
        case field_type::timestamp: return "UnixTimestamp";
        case field_type::json: return "Json";
    }
    return "String";
}

// A Python string literal.
std::string py(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// A Python identifier for a name Sluice allows ([a-z_][a-z0-9_]*, "@" in versioned names).
std::string ident(std::string s) {
    for (char& c : s)
        if (c == '@') c = '_';
    return s;
}

}  // namespace

std::string feast_definitions(const config& cfg) {
    std::string out;
    out += "# Feast repository objects for Sluice's feature sets (environment " + py(cfg.environment) +
           "), printed by `sluice feast-definitions`.\n"
           "# Point a Feast project at Sluice with, in feature_store.yaml:\n"
           "#   online_store: {type: remote, path: http://<sluice http.listen>}\n"
           "# Online reads, pushes and writes go to Sluice (project = the environment). The batch sources below\n"
           "# name Sluice's history tables; for training data use Sluice's point-in-time training sets\n"
           "# (POST /v1/training-sets, `sluice export`), which read them with the serving definitions.\n"
           "from datetime import timedelta\n\n"
           "from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType\n"
           "from feast.types import Bool, Float64, Int64, Json, String, UnixTimestamp\n\n";
    // Entities: one per key field.
    std::set<std::string> keys;
    for (const auto& s : cfg.feature_sets) keys.insert(s.key_field);
    for (const auto& k : keys)
        out += ident(k) + " = Entity(name=" + py(k) + ", join_keys=[" + py(k) + "], value_type=ValueType.STRING)\n";
    out += "\n";
    // Push sources; each set's source is its push source, else its history table.
    std::map<std::string, std::string> source_of;
    const std::string schema = cfg.postgres ? cfg.postgres->schema : "sluice";
    for (const auto& s : cfg.feature_sets) {
        const std::string batch = ident(s.storage_name()) + "_history";
        out += batch + " = FileSource(name=" + py(s.storage_name() + "_history") + ", path=" +
               py("postgresql://" + schema + "." + s.storage_name() + "_history") + ", timestamp_field=" +
               py(s.event_time_field) + ")\n";
        source_of[s.versioned_name()] = batch;
    }
    for (const auto& p : cfg.push_sources) {
        const feature_set_config* first = nullptr;
        for (const auto& s : cfg.feature_sets)
            if (!p.feature_sets.empty() && (s.name == p.feature_sets[0] || s.versioned_name() == p.feature_sets[0])) first = &s;
        out += ident(p.name) + " = PushSource(name=" + py(p.name) +
               (first ? ", batch_source=" + ident(first->storage_name()) + "_history" : std::string()) + ")\n";
        for (const auto& name : p.feature_sets)
            for (const auto& s : cfg.feature_sets)
                if (s.name == name || s.versioned_name() == name) source_of[s.versioned_name()] = ident(p.name);
    }
    out += "\n";
    // Feature views: a set's fields and aggregations, its TTL.
    for (const auto& s : cfg.feature_sets) {
        out += ident(s.version == 1 ? s.name : s.versioned_name()) + " = FeatureView(\n    name=" +
               py(s.version == 1 ? s.name : s.versioned_name()) + ",\n    entities=[" + ident(s.key_field) + "],\n";
        out += "    ttl=" + (s.ttl_ms > 0 ? "timedelta(milliseconds=" + std::to_string(s.ttl_ms) + ")" : std::string("None")) +
               ",\n    schema=[\n";
        for (const auto& c : latest_columns(s))
            out += "        Field(name=" + py(c.name) + ", dtype=" + feast_type(c.type) + "),\n";
        out += "    ],\n    online=True,\n    source=" + source_of[s.versioned_name()] + ",\n    tags={\"sluice_topic\": " +
               py(s.topic) + "},\n)\n\n";
    }
    // Feature services: their features grouped by set, in order of first use.
    for (const auto& svc : cfg.feature_services) {
        std::vector<std::pair<std::string, std::vector<std::string>>> by_view;
        for (const auto& f : svc.features) {
            const auto colon = f.find(':');
            if (colon == std::string::npos) continue;
            const std::string view = f.substr(0, colon), column = f.substr(colon + 1);
            auto it = std::find_if(by_view.begin(), by_view.end(), [&](const auto& v) { return v.first == view; });
            if (it == by_view.end()) {
                by_view.push_back({view, {}});
                it = by_view.end() - 1;
            }
            it->second.push_back(column);
        }
        out += ident(svc.name) + " = FeatureService(\n    name=" + py(svc.name) + ",\n";
        if (!svc.description.empty()) out += "    description=" + py(svc.description) + ",\n";
        out += "    features=[\n";
        for (const auto& [view, columns] : by_view) {
            out += "        " + ident(view) + "[[";
            for (std::size_t i = 0; i < columns.size(); ++i) out += (i ? ", " : "") + py(columns[i]);
            out += "]],\n";
        }
        out += "    ],\n)\n\n";
    }
    return out;
}

int run_feast_definitions(const std::string& config_path) {
    auto loaded = load_config_file(config_path);
    if (!loaded.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n%s", config_path.c_str(), loaded.errors.size(),
                     format_errors(loaded.errors).c_str());
        return 1;
    }
    const std::string text = feast_definitions(loaded.cfg);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

}  // namespace sluice
