#pragma once
// Live reload: what a new config file changes against the running one, which of those changes the
// daemon applies without a restart, and the config it then runs.
//
// What can change live (the rest is "needs a restart", and is kept at its running value until one):
//   log.level, log.format
//   http.auth.api_keys (keys and scopes), http.rate_limit.*, http.body_limit_bytes,
//   http.header_limit_bytes, http.read_timeout_ms, http.idle_timeout_ms, http.write_timeout_ms,
//   http.max_connections, http.max_lookup_keys, http.ingest_timeout_ms
//   a feature set's ttl, transforms, dedup and expectations (when its fields are unchanged)
//   a feature set added (a new name): its tables made and its topic consumed at once, in a
//   consumer group of its own so that no other set is rebalanced (the daemon's added_set)
// Breaking (the whole reload is refused): the environment, and every change the registry's rules
// call breaking (sluice/config/definition.hpp: a key, an event time, a field's type ...).
// A reload that adds nothing live and needs nothing is "unchanged"; one whose file does not load
// is refused with every error, as --check prints them.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/config.hpp"
#include "sluice/config/loader.hpp"

namespace sluice {

/// How one change is applied.
enum class change_class { live, restart, breaking };
const char* to_string(change_class c);

/// One difference between the running config and the new file.
struct config_change {
    std::string path;        // "http.rate_limit.requests_per_sec", "feature_sets[user_activity].ttl"
    std::string change;      // "10 -> 50", "added", "removed", "changed" (secrets never show)
    change_class applied = change_class::live;
    std::string note;        // why it needs a restart or is breaking; how a live one takes effect
};

struct reload_plan {
    std::vector<config_change> changes;
    /// The running config with every live change applied (and the new file's origin): what the
    /// daemon runs after the reload. Meaningless when breaking().
    config effective;

    bool breaking() const;
    bool any_live() const;
    /// The paths kept at their running values until a restart.
    std::vector<std::string> pending_restart() const;
};

/// Diffs `next` against `running` and classifies each change (see above).
reload_plan plan_reload(const config& running, const config& next);

/// The config as the file would write it, every default spelled out and secrets redacted
/// (postgres.dsn's password, redis.password, API keys' digests, Kafka properties naming a password,
/// secret or key material). Feature sets in their canonical form (definition.hpp).
nlohmann::ordered_json config_to_json(const config& cfg);

/// What a reload did, for the admin answer, the log and the activity log.
struct reload_outcome {
    std::string outcome;     // "applied", "applied_pending_restart", "unchanged", "refused"
    std::string reason;      // one line: why refused, or a summary
    std::string path;        // the config file
    std::string sha256_before;
    std::string sha256_after;  // "" when the file could not be read
    std::vector<config_change> changes;
    std::vector<config_error> errors;  // the file's errors when it did not load

    bool ok() const { return outcome != "refused"; }
    nlohmann::ordered_json json() const;
};

}  // namespace sluice
