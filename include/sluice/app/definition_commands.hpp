#pragma once
// The commands of a definition's lifecycle (README, "Changing a feature set"): plan, promote and
// drop. Each loads its config(s), talks to PostgreSQL (and Redis for drop), prints what it found,
// and returns the process's exit code.

#include <cstdint>
#include <string>

namespace sluice {

/// Exit codes: what a CI job keys on.
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_breaking = 3;  // plan: a breaking change without a new version; promote: blocked

/// `sluice plan --config F [--json]`: read only; the config against its environment's registry and
/// tables. 0 when it can be applied as it is, 3 when it holds a breaking change, 1 on error.
int run_plan(const std::string& config_path, bool json);

struct promote_options {
    std::string from;                     // the staging config
    std::string to;                       // the production config
    std::int64_t window_ms = 3600 * 1000; // how far back staging's ingest is judged
    double max_dead_letter_rate = 0.01;   // dead letters / records over the window, at most
    bool json = false;
};
/// `sluice promote --from STAGING --to PRODUCTION`: 0 when every set of the production config is
/// live in staging with exactly that spec and staging took it in without a dead-letter spike over
/// the window; 3 with each blocker printed; 1 on error.
int run_promote(const promote_options& options);

struct try_options {
    std::string config_path;
    std::string set;             // "S" (its newest version in the config) or "S@N"
    std::int64_t records = 1000;
    std::int64_t seconds = 0;    // > 0: read what arrives for this long instead
    bool from_start = false;
    bool json = false;
    std::string brokers;         // overrides kafka.brokers (the daemon's embedded broker's address)
};
/// `sluice try --config F --set S [--records N | --seconds T] [--from-start] [--json]`: reads the
/// live topic with a throwaway consumer (no group, no commits; nothing written to PostgreSQL or
/// Redis), runs the real parser, transforms, dedup and aggregations, and prints what a data
/// engineer needs to judge the definition: counts, dead letters by reason with examples, each
/// field's null rate and range or top values, and a few output rows. 0 on success, 1 on error.
int run_try(const try_options& options);

/// `sluice drop --config F --set S --version N --yes`: drops a retired version's tables and its
/// Redis keys. Without --yes it only says what it would drop (exit 1).
struct quality_options {
    std::string config_path;
    std::string set;
    std::int64_t from_ms = 0;             // 0: to - window
    std::int64_t to_ms = 0;               // 0: now
    std::int64_t window_ms = 3600 * 1000;
    bool json = false;
};

/// `sluice quality --config F --set S [--from T] [--to T] [--window 1h] [--json]`: the set's quality
/// gate over the range from PostgreSQL: exit 0 when no expectation failed a window closed in it,
/// 3 with each failure printed, 1 on error.
int run_quality(const quality_options& options);

int run_drop(const std::string& config_path, const std::string& set, std::int64_t version, bool yes);

}  // namespace sluice
