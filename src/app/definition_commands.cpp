// sluice plan, promote and drop (see sluice/app/definition_commands.hpp).

#include "sluice/app/definition_commands.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "sluice/config/columns.hpp"
#include "sluice/config/definition.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/ingest/topic_sample.hpp"
#include "sluice/preprocess/aggregator.hpp"
#include "sluice/preprocess/record_parser.hpp"
#include "sluice/store/redis_cache.hpp"
#include "sluice/store/quality_monitor.hpp"
#include "sluice/store/registry.hpp"
#include "sluice/store/store_writer.hpp"

namespace sluice {
namespace {

// The config, or nullopt with its errors printed.
std::optional<config> load(const std::string& path, const char* command) {
    auto loaded = load_config_file(path);
    if (!loaded.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n%s", path.c_str(), loaded.errors.size(),
                     format_errors(loaded.errors).c_str());
        return std::nullopt;
    }
    if (!loaded.cfg.postgres) {
        std::fprintf(stderr, "sluice %s: %s has no \"postgres\" section: the registry lives in PostgreSQL\n", command,
                     path.c_str());
        return std::nullopt;
    }
    return std::move(loaded.cfg);
}

}  // namespace

int run_plan(const std::string& config_path, bool json) {
    auto cfg = load(config_path, "plan");
    if (!cfg) return exit_error;
    definition_registry registry(*cfg);
    auto plan = registry.plan();
    if (!plan) {
        std::fprintf(stderr, "sluice plan: %s\n", plan.message().c_str());
        return exit_error;
    }
    const std::string out = json ? plan.value().json() : plan.value().text();
    std::fwrite(out.data(), 1, out.size(), stdout);
    return plan.value().breaking() ? exit_breaking : exit_ok;
}

int run_promote(const promote_options& o) {
    auto staging = load(o.from, "promote");
    auto production = load(o.to, "promote");
    if (!staging || !production) return exit_error;
    if (staging->environment == production->environment) {
        std::fprintf(stderr, "sluice promote: both configs are for environment %s; promotion goes from one to another\n",
                     staging->environment.c_str());
        return exit_error;
    }
    definition_registry registry(*staging);
    auto snap = registry.read();
    if (!snap) {
        std::fprintf(stderr, "sluice promote: reading %s's registry: %s\n", staging->environment.c_str(),
                     snap.message().c_str());
        return exit_error;
    }
    if (!snap.value().owner.empty() && snap.value().owner != staging->environment) {
        std::fprintf(stderr, "sluice promote: schema %s belongs to environment %s, not %s\n",
                     staging->postgres->schema.c_str(), snap.value().owner.c_str(), staging->environment.c_str());
        return exit_error;
    }
    std::map<std::pair<std::string, std::int64_t>, const registered_definition*> in_staging;
    for (const auto& d : snap.value().definitions) in_staging[{d.set, d.version}] = &d;

    nlohmann::json report = nlohmann::json::array();
    std::size_t blocked = 0;
    for (const auto& set : production->feature_sets) {
        std::vector<std::string> blockers;
        const std::string spec = canonical_spec(set), hash = spec_hash(spec);
        const auto it = in_staging.find({set.name, set.version});
        nlohmann::json counts = nullptr;
        if (it == in_staging.end()) {
            blockers.push_back("not in " + staging->environment + "'s registry: run it in " + staging->environment +
                               " first");
        } else {
            const auto& d = *it->second;
            if (d.sha256 != hash) {
                blockers.push_back("the spec differs from the one " + staging->environment + " runs (" +
                                   d.sha256.substr(0, 12) + " there, " + hash.substr(0, 12) + " here)");
                for (const auto& c : classify_changes(d.spec, spec))
                    blockers.push_back("  " + c.subject + ": " + c.change);
            }
            if (d.state != definition_state::live)
                blockers.push_back(std::string("it is ") + to_string(d.state) + " in " + staging->environment +
                                   ", not live");
            // The staging version of this set: the production config's spec may differ, so judge the
            // set as staging runs it.
            feature_set_config staged = set;
            auto c = registry.counts_since(staged, o.window_ms);
            if (!c) {
                blockers.push_back("its ingest in " + staging->environment + " cannot be read: " + c.message());
            } else {
                const auto& n = c.value();
                counts = {{"records", n.records}, {"dead_letters", n.dead_letters}};
                const double total = static_cast<double>(n.records + n.dead_letters);
                if (n.records == 0)
                    blockers.push_back("no records reached " + staging->environment + " in the window: nothing shows it works");
                else if (total > 0 && static_cast<double>(n.dead_letters) / total > o.max_dead_letter_rate)
                    blockers.push_back("dead letters in " + staging->environment + " over the window: " +
                                       std::to_string(n.dead_letters) + " of " +
                                       std::to_string(n.records + n.dead_letters) + " (more than " +
                                       std::to_string(o.max_dead_letter_rate * 100).substr(0, 4) + " %)");
            }
            // Its data quality in staging over the window: no expectation may have failed a window.
            const std::int64_t now = now_ms();
            auto g = quality_gate_from_postgres(*staging, staged, now - o.window_ms, now + 1);
            if (!g)
                blockers.push_back("its data quality in " + staging->environment + " cannot be read: " + g.message());
            else
                for (const auto& f : g.value().failures) blockers.push_back("quality in " + staging->environment + ": " + f);
        }
        blocked += blockers.empty() ? 0 : 1;
        report.push_back({{"set", set.name}, {"version", set.version}, {"spec_sha256", hash},
                          {"ready", blockers.empty()}, {"blockers", blockers}, {"staging", counts}});
        if (!o.json) {
            std::printf("%s version %lld: %s\n", set.name.c_str(), static_cast<long long>(set.version),
                        blockers.empty() ? "ready" : "BLOCKED");
            for (const auto& b : blockers) std::printf("    %s\n", b.c_str());
        }
    }
    if (o.json) {
        const nlohmann::json out = {{"from", staging->environment},
                                    {"to", production->environment},
                                    {"window_ms", o.window_ms},
                                    {"ready", blocked == 0},
                                    {"sets", report}};
        std::printf("%s\n", out.dump(2).c_str());
    } else {
        std::printf("%s -> %s: %s\n", staging->environment.c_str(), production->environment.c_str(),
                    blocked == 0 ? "nothing blocks promotion; apply the production config (sluice plan on it first)"
                                 : (std::to_string(blocked) + " feature set(s) blocked").c_str());
    }
    return blocked == 0 ? exit_ok : exit_breaking;
}

int run_quality(const quality_options& o) {
    auto cfg = load(o.config_path, "quality");
    if (!cfg) return exit_error;
    const int index = cfg->find_set(o.set);
    if (index < 0) {
        std::fprintf(stderr, "sluice quality: %s has no feature set %s\n", o.config_path.c_str(), o.set.c_str());
        return exit_error;
    }
    const std::int64_t now = now_ms();
    const std::int64_t to = o.to_ms > 0 ? o.to_ms : now + 1;
    const std::int64_t from = o.from_ms > 0 ? o.from_ms : to - o.window_ms;
    const auto& set = cfg->feature_sets[static_cast<std::size_t>(index)];
    auto g = quality_gate_from_postgres(*cfg, set, from, to);
    if (!g) {
        std::fprintf(stderr, "sluice quality: %s\n", g.message().c_str());
        return exit_error;
    }
    const auto& gate = g.value();
    if (o.json) {
        const nlohmann::json out = {{"feature_set", set.display_name()}, {"environment", cfg->environment},
                                    {"from", format_rfc3339_ms(from)},   {"to", format_rfc3339_ms(to)},
                                    {"windows", gate.windows},           {"passed", gate.passed},
                                    {"failures", gate.failures}};
        std::printf("%s\n", out.dump(2).c_str());
    } else {
        std::printf("%s in %s, %s .. %s: %lld windows judged, %s\n", set.display_name().c_str(), cfg->environment.c_str(),
                    format_rfc3339_ms(from).c_str(), format_rfc3339_ms(to).c_str(), static_cast<long long>(gate.windows),
                    gate.passed ? "every expectation passed" : "FAILED");
        for (const auto& f : gate.failures) std::printf("  %s\n", f.c_str());
    }
    return gate.passed ? exit_ok : exit_breaking;
}

int run_drop(const std::string& config_path, const std::string& set, std::int64_t version, bool yes) {
    auto cfg = load(config_path, "drop");
    if (!cfg) return exit_error;
    for (const auto& s : cfg->feature_sets)
        if (s.name == set && s.version == version) {
            std::fprintf(stderr, "sluice drop: %s@%lld is in %s: remove it from the config (it is then retired) first\n",
                         set.c_str(), static_cast<long long>(version), config_path.c_str());
            return exit_error;
        }
    definition_registry registry(*cfg);
    auto snap = registry.read();
    if (!snap) {
        std::fprintf(stderr, "sluice drop: %s\n", snap.message().c_str());
        return exit_error;
    }
    if (!snap.value().owner.empty() && snap.value().owner != cfg->environment) {
        std::fprintf(stderr, "sluice drop: schema %s belongs to environment %s, not %s\n", cfg->postgres->schema.c_str(),
                     snap.value().owner.c_str(), cfg->environment.c_str());
        return exit_error;
    }
    const registered_definition* found = nullptr;
    for (const auto& d : snap.value().definitions)
        if (d.set == set && d.version == version) found = &d;
    if (!found) {
        std::fprintf(stderr, "sluice drop: the registry of environment %s has no %s@%lld\n", cfg->environment.c_str(),
                     set.c_str(), static_cast<long long>(version));
        return exit_error;
    }
    feature_set_config named;
    named.name = set;
    named.version = version;
    if (found->state != definition_state::retired && found->state != definition_state::dropped) {
        std::fprintf(stderr, "sluice drop: %s@%lld is %s: only a retired version can be dropped\n", set.c_str(),
                     static_cast<long long>(version), to_string(found->state));
        return exit_error;
    }
    if (!yes) {
        std::printf("would drop %s.%s_history and %s.%s_latest%s; run again with --yes to drop them\n",
                    cfg->postgres->schema.c_str(), named.storage_name().c_str(), cfg->postgres->schema.c_str(),
                    named.storage_name().c_str(),
                    cfg->redis ? (" and Redis keys " + redis_key(cfg->redis->key_prefix, named.storage_name(), "*")).c_str()
                               : "");
        return exit_error;
    }
    // Dropped already (its Redis keys failed last time): only the keys are left to delete.
    if (auto s = found->state == definition_state::dropped ? status::success() : registry.drop_version(set, version); !s) {
        std::fprintf(stderr, "sluice drop: %s\n", s.message().c_str());
        return exit_error;
    }
    std::int64_t keys = 0;
    if (cfg->redis) {
        auto deleted = delete_set_keys(*cfg, named.storage_name());
        if (!deleted) {
            std::fprintf(stderr, "sluice drop: the tables are dropped; deleting the Redis keys failed: %s (run it again)\n",
                         deleted.message().c_str());
            return exit_error;
        }
        keys = deleted.value();
    }
    std::printf("dropped %s@%lld: tables %s_history and %s_latest, %lld Redis keys\n", set.c_str(),
                static_cast<long long>(version), named.storage_name().c_str(), named.storage_name().c_str(),
                static_cast<long long>(keys));
    return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// sluice try

namespace {

// What one field looked like over the records read.
struct field_profile {
    std::int64_t values = 0, nulls = 0;
    double min = 0, max = 0, sum = 0;
    bool numeric = false;
    std::map<std::string, std::int64_t> counts;  // strings, bools, timestamps: value text -> count

    void add(field_type type, const value& v) {
        if (std::holds_alternative<std::monostate>(v)) {
            ++nulls;
            return;
        }
        ++values;
        double x = 0;
        if (type == field_type::int64 && std::holds_alternative<std::int64_t>(v)) {
            x = static_cast<double>(std::get<std::int64_t>(v));
        } else if (type == field_type::float64 && std::holds_alternative<double>(v)) {
            x = std::get<double>(v);
        } else {
            ++counts[value_to_json_text(type, v)];
            return;
        }
        numeric = true;
        min = values == 1 ? x : std::min(min, x);
        max = values == 1 ? x : std::max(max, x);
        sum += x;
    }

    nlohmann::json json() const {
        const std::int64_t n = values + nulls;
        nlohmann::json j = {{"values", values}, {"nulls", nulls}, {"null_rate", n ? static_cast<double>(nulls) / static_cast<double>(n) : 0.0}};
        if (numeric) {
            j["min"] = min;
            j["max"] = max;
            j["mean"] = sum / static_cast<double>(values);
        } else if (!counts.empty()) {
            std::vector<std::pair<std::int64_t, std::string>> top;
            for (const auto& [v, c] : counts) top.emplace_back(-c, v);
            std::sort(top.begin(), top.end());
            nlohmann::json list = nlohmann::json::array();
            for (std::size_t i = 0; i < top.size() && i < 5; ++i)
                list.push_back({{"value", nlohmann::json::parse(top[i].second, nullptr, false)}, {"count", -top[i].first}});
            j["top"] = list;
            j["distinct"] = counts.size();
        }
        return j;
    }
};

int find_set_for_try(const config& cfg, const std::string& name) {
    int best = -1;
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i) {
        const auto& s = cfg.feature_sets[i];
        if (s.versioned_name() == name) return static_cast<int>(i);
        if (s.name == name && (best < 0 || cfg.feature_sets[static_cast<std::size_t>(best)].version < s.version))
            best = static_cast<int>(i);
    }
    return best;
}

// 6 significant digits: 123.413, 0.5, 1e+06.
std::string short_number(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", x);
    return buf;
}

std::string text_report(const nlohmann::json& r) {
    std::string out;
    const auto line = [&out](const std::string& s) { out += s + "\n"; };
    line("feature set " + r["set"].get<std::string>() + " version " + std::to_string(r["version"].get<std::int64_t>()) +
         ", topic " + r["topic"].get<std::string>() + " (nothing was written anywhere)");
    line("  read " + std::to_string(r["read"].get<std::int64_t>()) + ", parsed " +
         std::to_string(r["parsed"].get<std::int64_t>()) + ", filtered " + std::to_string(r["filtered"].get<std::int64_t>()) +
         ", duplicates " + std::to_string(r["duplicates"].get<std::int64_t>()) + ", dead letters " +
         std::to_string(r["dead_letters"]["count"].get<std::int64_t>()));
    for (const auto& [reason, n] : r["dead_letters"]["by_reason"].items())
        line("    " + reason + ": " + std::to_string(n.get<std::int64_t>()));
    for (const auto& e : r["dead_letters"]["by_error"]) {
        line("    " + std::to_string(e["count"].get<std::int64_t>()) + " x " + e["error"].get<std::string>());
        for (const auto& ex : e["examples"]) line("        e.g. " + ex.get<std::string>());
    }
    line("  fields:");
    for (const auto& [name, f] : r["fields"].items()) {
        std::string s = "    " + name + ": null rate " + std::to_string(f["null_rate"].get<double>()).substr(0, 5);
        if (f.contains("min"))
            s += ", min " + short_number(f["min"].get<double>()) + ", max " + short_number(f["max"].get<double>()) +
                 ", mean " + short_number(f["mean"].get<double>());
        if (f.contains("top")) {
            s += ", " + f["distinct"].dump() + " distinct, top";
            for (const auto& t : f["top"]) s += " " + t["value"].dump() + " (" + t["count"].dump() + ")";
        }
        line(s);
    }
    line("  last rows (aggregations over the records read here):");
    for (const auto& row : r["rows"]) line("    " + row.dump());
    return out;
}

}  // namespace

int run_try(const try_options& o) {
    auto loaded = load_config_file(o.config_path);
    if (!loaded.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n%s", o.config_path.c_str(), loaded.errors.size(),
                     format_errors(loaded.errors).c_str());
        return exit_error;
    }
    const config& cfg = loaded.cfg;
    const int found = find_set_for_try(cfg, o.set);
    if (found < 0) {
        std::fprintf(stderr, "sluice try: %s has no feature set %s\n", o.config_path.c_str(), o.set.c_str());
        return exit_error;
    }
    const auto index = static_cast<std::uint32_t>(found);
    const auto& set = cfg.feature_sets[index];
    const std::string bootstrap = o.brokers.empty() ? cfg.kafka.brokers : o.brokers;
    if (bootstrap == "embedded") {
        std::fprintf(stderr,
                     "sluice try: the config's broker is the daemon's embedded one; give its address with --brokers "
                     "(the daemon logs \"embedded Kafka-protocol broker ... at HOST:PORT\")\n");
        return exit_error;
    }
    topic_sample_options sample;
    sample.records = o.records;
    sample.seconds = o.seconds;
    sample.from_start = o.from_start;
    auto messages = sample_topic(cfg, bootstrap, index, sample);
    if (!messages) {
        std::fprintf(stderr, "sluice try: %s\n", messages.message().c_str());
        return exit_error;
    }

    // The daemon's own steps, in its order: parse (coercion, transforms, filters), dedup, then
    // the aggregation gate's lateness rule and the aggregations.
    record_parser parser(cfg);
    deduplicator dedup(cfg);
    std::unique_ptr<aggregator> agg = set.aggregations.empty() ? nullptr : std::make_unique<aggregator>(set);
    std::vector<field_profile> profiles(set.fields.size());
    std::int64_t parsed = 0, filtered = 0, duplicates = 0, dead = 0;
    std::map<std::string, std::int64_t> by_reason;
    std::map<std::string, std::pair<std::int64_t, std::vector<std::string>>> by_error;
    std::vector<nlohmann::json> rows;
    const auto dead_letter_seen = [&](const std::string& reason, const std::string& error, const std::string& payload) {
        ++dead;
        ++by_reason[reason];
        auto& e = by_error[error];
        ++e.first;
        if (e.second.size() < 2) e.second.push_back(payload.size() > 200 ? payload.substr(0, 197) + "..." : payload);
    };
    for (const auto& msg : messages.value()) {
        processed item = parser.parse(msg, now_ms());
        const bool was_record = std::holds_alternative<record>(item);
        dedup.apply(item);
        if (const auto* d = std::get_if<dead_letter>(&item)) {
            dead_letter_seen(to_string(d->reason), d->error, d->payload);
            continue;
        }
        if (std::holds_alternative<skipped>(item)) {
            ++(was_record ? duplicates : filtered);
            continue;
        }
        auto& r = std::get<record>(item);
        if (agg) {
            if (agg->too_late(r.key, r.event_time_ms)) {
                dead_letter_seen(to_string(dead_letter_reason::late_event), late_event_error(set, r.key, r.event_time_ms),
                                 msg.payload);
                continue;
            }
            agg->add(r.key, r.event_time_ms, r.values, r.source.partition);
        }
        ++parsed;
        for (std::size_t f = 0; f < set.fields.size() && f < r.values.size(); ++f) profiles[f].add(set.fields[f].type, r.values[f]);
        nlohmann::json row = {{"key", r.key}, {"event_time", format_rfc3339_ms(r.event_time_ms)}};
        for (std::size_t f = 0; f < set.fields.size() && f < r.values.size(); ++f)
            row[set.fields[f].name] = nlohmann::json::parse(value_to_json_text(set.fields[f].type, r.values[f]), nullptr, false);
        if (agg) {
            const auto aggs = agg->values_at(r.key, r.event_time_ms);
            for (std::size_t a = 0; a < set.aggregations.size() && a < aggs.size(); ++a)
                row[set.aggregations[a].name] = nlohmann::json::parse(
                    value_to_json_text(result_type(set, set.aggregations[a]), aggs[a]), nullptr, false);
        }
        rows.push_back(std::move(row));
        if (rows.size() > 5) rows.erase(rows.begin());
    }

    nlohmann::json report = {{"set", set.name},
                             {"version", set.version},
                             {"topic", set.topic},
                             {"read", messages.value().size()},
                             {"parsed", parsed},
                             {"filtered", filtered},
                             {"duplicates", duplicates}};
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& [error, e] : by_error) errors.push_back({{"error", error}, {"count", e.first}, {"examples", e.second}});
    report["dead_letters"] = {{"count", dead}, {"by_reason", by_reason}, {"by_error", errors}};
    nlohmann::json fields = nlohmann::json::object();
    for (std::size_t f = 0; f < set.fields.size(); ++f) fields[set.fields[f].name] = profiles[f].json();
    report["fields"] = fields;
    report["rows"] = rows;
    const std::string out = o.json ? report.dump(2) + "\n" : text_report(report);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return exit_ok;
}

}  // namespace sluice
