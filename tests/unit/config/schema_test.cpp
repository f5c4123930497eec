// Tests of the config schema (sluice/config/schema.hpp) against the loader: every key it lists is
// one the loader takes, with the default, bounds, allowed values and requiredness the loader
// applies, so that --describe-config, the README's reference and the example config tell the truth.

#include "sluice/config/schema.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sluice/config/loader.hpp"

namespace sluice {
namespace {

using json = nlohmann::ordered_json;

// A valid config holding one of every object and array that has keys of its own, so that every
// schema path has somewhere to go: "[]" is element 0 and "*" is the field "f".
json full_scaffold() {
    return json::parse(R"({
      "feature_sets": [{"name": "s", "topic": "t", "key": "k", "event_time": "ts",
        "fields": {"f": {"type": "int"}},
        "aggregations": [{"name": "a", "field": "f", "op": "sum", "window": "1h"}],
        "transforms": [{"op": "clamp", "field": "f", "min": 0}],
        "dedup": {"field": "f"},
        "expectations": [{"expect": "range", "field": "f", "min": 0}]}],
      "postgres": {"dsn": "host=127.0.0.1"},
      "redis": {},
      "http": {"auth": {"api_keys": [{"name": "ops", "scopes": ["read"],
        "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}]}},
      "feature_services": [{"name": "svc", "features": ["s:f"]}],
      "push_sources": [{"name": "src", "feature_sets": ["s"]}]
    })");
}

bool under(const std::string& path, const std::string& prefix) { return path.rfind(prefix, 0) == 0; }

// The scaffold without the parts a key at `path` does not need, so that leaving that key out
// breaks nothing else (no aggregation naming a field when "fields" is the key left out).
json scaffold_for(const std::string& path) {
    json doc = full_scaffold();
    json& set = doc["feature_sets"][0];
    for (const std::string part : {"aggregations", "transforms", "dedup", "expectations"})
        if (!under(path, "feature_sets[]." + part)) set.erase(part);
    if (!under(path, "feature_sets[].fields") && !set.contains("aggregations") && !set.contains("transforms") &&
        !set.contains("dedup") && !set.contains("expectations") && !under(path, "feature_services"))
        set.erase("fields");
    for (const std::string section : {"postgres", "redis", "http", "feature_services", "push_sources"})
        if (!under(path, section)) doc.erase(section);
    return doc;
}

// Where a schema path leads in a document: its parent object, its last name, and the path the
// loader reports it at ("feature_sets[0].fields.f.type"). Missing objects on the way are created.
struct location {
    json* parent = nullptr;
    std::string key;
    std::string reported;
};

location locate(json& doc, const std::string& path) {
    std::vector<std::string> parts;
    std::stringstream in(path);
    for (std::string part; std::getline(in, part, '.');) parts.push_back(part);
    location at;
    json* node = &doc;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        std::string part = parts[i];
        const bool element = part.size() > 2 && part.compare(part.size() - 2, 2, "[]") == 0;
        if (element) part.resize(part.size() - 2);
        if (part == "*") {
            EXPECT_TRUE(node->is_object() && !node->empty()) << path << ": the scaffold has no member for *";
            part = node->begin().key();
        }
        if (i + 1 == parts.size() && !element) {
            at.parent = node;
            at.key = part;
            at.reported += (at.reported.empty() ? "" : ".") + part;
            return at;
        }
        at.reported += (at.reported.empty() ? "" : ".") + part;
        if (!node->contains(part)) (*node)[part] = json::object();
        node = &(*node)[part];
        if (element) {
            EXPECT_TRUE(node->is_array() && !node->empty()) << path << ": the scaffold has no element for []";
            node = &(*node)[0];
            at.reported += "[0]";
        }
    }
    ADD_FAILURE() << path << " ends in [] (a schema path names a key, not an element)";
    return at;
}

config_load_result load(const json& doc) { return load_config_text(doc.dump()); }

std::string errors_of(const config_load_result& r) { return format_errors(r.errors); }

// Errors reported at exactly `path` (or, with `elements`, at its elements path[i]).
std::vector<std::string> errors_at(const config_load_result& r, const std::string& path, bool elements = false) {
    std::vector<std::string> out;
    for (const auto& e : r.errors)
        if (e.path == path || (elements && under(e.path, path + "["))) out.push_back(e.message);
    return out;
}

// A value of the key's type, for keys without a default.
json sample(const config_key& k) {
    if (!k.default_json.empty()) return json::parse(k.default_json);
    switch (k.type) {
        case config_value_type::integer:
        case config_value_type::number: return 1;
        case config_value_type::boolean: return true;
        case config_value_type::string: return "x";
        case config_value_type::object: return json::object();
        case config_value_type::array: return json::array();
        case config_value_type::any: return nullptr;
    }
    return nullptr;
}

const config_key* find_key(const std::string& path) {
    for (const auto& k : config_schema())
        if (k.path == path) return &k;
    return nullptr;
}

TEST(ConfigSchemaTable, ListsEverySectionAndNestedKeyOnce) {
    std::set<std::string> seen;
    for (const auto& k : config_schema()) {
        EXPECT_TRUE(seen.insert(k.path).second) << "listed twice: " << k.path;
        EXPECT_FALSE(k.description.empty()) << k.path;
    }
    for (const char* path :
         {"kafka.brokers", "kafka.properties", "kafka.embedded.partitions", "feature_sets", "feature_sets[].name",
          "feature_sets[].event_time_fallback", "feature_sets[].ttl", "feature_sets[].allowed_lateness",
          "feature_sets[].fields.*.type", "feature_sets[].fields.*.source", "feature_sets[].fields.*.allowed",
          "feature_sets[].aggregations[].window", "feature_sets[].transforms[].op",
          "feature_sets[].transforms[].not_in", "feature_sets[].dedup.max_ids", "pipeline.resume_watermark",
          "postgres.parallel_latest", "redis.password", "http.read_timeout_ms", "http.tls.cert_file",
          "http.rate_limit.burst", "http.auth.api_keys[].scopes", "memory.before_commit", "log.format",
          "generator.events_per_sec"})
        EXPECT_TRUE(seen.count(path)) << "missing: " << path;
}

TEST(ConfigSchemaTable, EveryListedKeyIsOneTheLoaderTakes) {
    for (const auto& k : config_schema()) {
        json doc = full_scaffold();
        const location at = locate(doc, k.path);
        if (!at.parent) continue;
        (*at.parent)[at.key] = sample(k);
        const auto r = load(doc);
        for (const auto& message : errors_at(r, at.reported))
            EXPECT_EQ(message.rfind("unknown key", 0), std::string::npos) << k.path << ": " << message;
    }
}

TEST(ConfigSchemaTable, RequiredKeysAreTheOnesReportedMissing) {
    ASSERT_TRUE(load(full_scaffold()).ok()) << errors_of(load(full_scaffold()));
    int required = 0;
    for (const auto& k : config_schema()) {
        json doc = full_scaffold();
        const location at = locate(doc, k.path);
        if (!at.parent || !at.parent->contains(at.key)) continue;  // optional and absent from the scaffold
        at.parent->erase(at.key);
        const auto r = load(doc);
        bool missing = false;
        for (const auto& message : errors_at(r, at.reported)) missing |= message == "required key is missing";
        EXPECT_EQ(missing, k.required) << k.path << ": " << errors_of(r);
        required += k.required;
    }
    EXPECT_GE(required, 14);  // set name/topic/key/event_time, field type, aggregation's four, ...
}

TEST(ConfigSchemaTable, NumericBoundsAreTheOnesTheLoaderEnforces) {
    int bounded = 0;
    for (const auto& k : config_schema()) {
        if (k.type != config_value_type::integer && k.type != config_value_type::number) continue;
        if (k.min_json.empty() && k.max_json.empty()) continue;
        ++bounded;
        const json lo = json::parse(k.min_json), hi = json::parse(k.max_json);
        const auto errors_with = [&](const json& v) {
            json doc = scaffold_for(k.path);
            const location at = locate(doc, k.path);
            (*at.parent)[at.key] = v;
            std::vector<std::string> out;
            for (auto& message : errors_at(load(doc), at.reported))  // the one check across two keys aside
                if (message.rfind("must be less than pause_watermark", 0) != 0) out.push_back(std::move(message));
            return out;
        };
        EXPECT_TRUE(errors_with(lo).empty()) << k.path << " = " << lo;
        EXPECT_TRUE(errors_with(hi).empty()) << k.path << " = " << hi;
        const json below = k.type == config_value_type::integer ? json(lo.get<std::int64_t>() - 1)
                                                                : json(lo.get<double>() - 1);
        const json above = k.type == config_value_type::integer ? json(hi.get<std::int64_t>() + 1)
                                                                : json(hi.get<double>() + 1);
        for (const json& v : {below, above}) {
            const auto errors = errors_with(v);
            ASSERT_EQ(errors.size(), 1u) << k.path << " = " << v;
            EXPECT_NE(errors[0].find("must be between"), std::string::npos) << k.path << ": " << errors[0];
        }
    }
    EXPECT_GE(bounded, 30);
}

TEST(ConfigSchemaTable, DurationBoundsAreAccepted) {
    for (const char* path : {"feature_sets[].aggregations[].window", "feature_sets[].allowed_lateness",
                             "feature_sets[].dedup.window"}) {
        const config_key* k = find_key(path);
        ASSERT_NE(k, nullptr) << path;
        ASSERT_FALSE(k->min_json.empty()) << path;
        for (const auto& bound : {k->min_json, k->max_json}) {
            json doc = scaffold_for(path);
            const location at = locate(doc, path);
            (*at.parent)[at.key] = json::parse(bound);
            const auto r = load(doc);
            EXPECT_TRUE(errors_at(r, at.reported).empty()) << path << " = " << bound << ": " << errors_of(r);
        }
    }
}

TEST(ConfigSchemaTable, AllowedValuesAreTheOnesTheLoaderTakesAndTheDescriptionNames) {
    int keys = 0;
    for (const auto& k : config_schema()) {
        if (k.allowed.empty()) continue;
        ++keys;
        const bool list = k.type == config_value_type::array;
        const auto errors_with = [&](const std::string& word) {
            json doc = full_scaffold();
            const location at = locate(doc, k.path);
            (*at.parent)[at.key] = list ? json::array({word}) : json(word);
            return errors_at(load(doc), at.reported, list);
        };
        for (const auto& word : k.allowed) {
            EXPECT_TRUE(errors_with(word).empty()) << k.path << " = " << word;
            // The text table shows the description, not the list: it must name every word.
            EXPECT_NE(k.description.find(word), std::string::npos) << k.path << ": " << word;
        }
        const auto refused = errors_with("no_such_word");
        ASSERT_EQ(refused.size(), 1u) << k.path;
        EXPECT_NE(refused[0].find("must be one of"), std::string::npos) << k.path << ": " << refused[0];
    }
    EXPECT_GE(keys, 7);  // field type, aggregation op, transform op, fallback, scopes, log level and format
}

// Drift: the default the schema states (read from config.hpp for plain keys, written in words in
// the key tables for the rest) is what the loader produces for a config that leaves the key out.
TEST(ConfigSchemaDefaults, EqualWhatTheLoaderUsesWhenTheKeyIsLeftOut) {
    int checked = 0, with_default = 0;
    for (const auto& k : config_schema()) {
        if (k.default_json.empty()) continue;
        ++with_default;
        json without = scaffold_for(k.path);
        const location at = locate(without, k.path);
        if (!at.parent) continue;
        at.parent->erase(at.key);
        json with = scaffold_for(k.path);
        const location at_with = locate(with, k.path);
        (*at_with.parent)[at_with.key] = json::parse(k.default_json);

        const auto left_out = load(without);
        const auto given = load(with);
        ASSERT_TRUE(left_out.ok()) << k.path << ": " << errors_of(left_out);
        ASSERT_TRUE(given.ok()) << k.path << " = " << k.default_json << ": " << errors_of(given);
        EXPECT_TRUE(left_out.cfg == given.cfg) << k.path << ": the schema says " << k.default_json
                                               << ", the loader uses something else when it is left out";
        ++checked;
    }
    EXPECT_EQ(checked, with_default);
    EXPECT_GE(checked, 70);  // every section's scalar keys, and the sections themselves
}

// The test above can fail: a default that differs from the loader's is caught.
TEST(ConfigSchemaDefaults, ADifferentValueIsNoticed) {
    json without = scaffold_for("http.read_timeout_ms");
    json with = without;
    with["http"]["read_timeout_ms"] = 10001;
    EXPECT_FALSE(load(without).cfg == load(with).cfg);
    json set_without = scaffold_for("feature_sets[].ttl");
    json set_with = set_without;
    set_with["feature_sets"][0]["ttl"] = "12h";
    EXPECT_FALSE(load(set_without).cfg == load(set_with).cfg);
}

TEST(DescribeConfig, TextIsAHeaderAndOneLinePerKey) {
    const std::string text = describe_config_text();
    std::vector<std::string> lines;
    std::stringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ASSERT_EQ(lines.size(), config_schema().size() + 1);
    EXPECT_EQ(lines[0].rfind("KEY ", 0), 0u) << lines[0];
    for (std::size_t i = 0; i < config_schema().size(); ++i) {
        const auto& k = config_schema()[i];
        EXPECT_EQ(lines[i + 1].rfind(k.path + " ", 0), 0u) << lines[i + 1];
        EXPECT_NE(lines[i + 1].find(k.description), std::string::npos) << lines[i + 1];
    }
    const std::string timeout = lines[1 + static_cast<std::size_t>(find_key("http.read_timeout_ms") -
                                                                   config_schema().data())];
    EXPECT_NE(timeout.find(" integer "), std::string::npos) << timeout;
    EXPECT_NE(timeout.find(" 10000 "), std::string::npos) << timeout;
    EXPECT_NE(timeout.find(" 100..3600000 "), std::string::npos) << timeout;
}

TEST(DescribeConfig, JsonIsAnArrayOfEveryKey) {
    const json doc = json::parse(describe_config_json());
    ASSERT_TRUE(doc.is_array());
    ASSERT_EQ(doc.size(), config_schema().size());
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const auto& k = config_schema()[i];
        const json& e = doc[i];
        EXPECT_EQ(e.at("path"), k.path);
        EXPECT_EQ(e.at("type"), to_string(k.type));
        EXPECT_EQ(e.at("required"), k.required);
        EXPECT_EQ(e.at("description"), k.description);
        EXPECT_EQ(e.contains("default"), !k.default_json.empty()) << k.path;
        if (e.contains("default")) {
            EXPECT_EQ(e["default"], json::parse(k.default_json)) << k.path;
        }
    }
    const json* level = nullptr;
    for (const auto& e : doc)
        if (e["path"] == "log.level") level = &e;
    ASSERT_NE(level, nullptr);
    EXPECT_EQ((*level)["default"], "info");
    EXPECT_EQ((*level)["allowed"], json::parse(R"(["trace", "debug", "info", "warn", "error", "critical", "off"])"));
}

}  // namespace
}  // namespace sluice
