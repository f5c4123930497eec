// sluice plan, promote and drop (see sluice/app/definition_commands.hpp).

#include "sluice/app/definition_commands.hpp"

#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "sluice/config/definition.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/store/redis_cache.hpp"
#include "sluice/store/registry.hpp"

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

}  // namespace sluice
