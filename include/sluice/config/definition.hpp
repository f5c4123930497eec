#pragma once
// A feature set's definition as the registry keeps it, and the one place that decides whether a
// change to it is compatible (applied in place, a new revision) or breaking (needs a new version).
//
// The canonical spec is the set as the config file would write it with every default spelled
// out, as compact JSON with sorted keys: whitespace, key order, and leaving a default out or
// writing it do not change it, and the reader reads it back. Its SHA-256 is the definition's hash.

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice {

/// The canonical spec of a feature set (see above).
std::string canonical_spec(const feature_set_config& set);
/// Lowercase hex SHA-256 of a canonical spec.
std::string spec_hash(const std::string& spec);

/// One difference between two definitions of a set, e.g.
/// {"field spend", "type double -> int", true, "history and readers hold doubles"}.
struct spec_change {
    std::string subject;  // "field spend", "aggregation spend_sum_1h", "key", "ttl", ...
    std::string change;   // what changed, old -> new
    bool breaking = false;
    std::string why;      // why it is breaking, or how it is applied in place

    bool operator==(const spec_change&) const = default;
};

/// Every difference between two canonical specs of the same set and version, each classified.
/// Specs that do not parse as JSON are one breaking change saying so.
std::vector<spec_change> classify_changes(const std::string& old_spec, const std::string& new_spec);

/// A definition as the registry records it.
enum class definition_state { backfilling, live, retired, dropped };
const char* to_string(definition_state s);
bool parse_definition_state(const std::string& text, definition_state& out);

struct registered_definition {
    std::string set;
    std::int64_t version = 1;
    std::int64_t revision = 1;
    std::string spec;
    std::string sha256;
    definition_state state = definition_state::live;
    std::int64_t recorded_at_ms = 0;  // when this revision was recorded
    std::int64_t live_since_ms = 0;   // when the version became live (0: not yet)
};

/// What applying a config would do to one version of one set.
enum class plan_action {
    unchanged,    // the same spec is live
    added,        // a set the registry has never seen
    changed,      // a new revision of a live version: every change compatible, or some breaking
    new_version,  // a version the registry has not seen, of a set it has: built by a backfill
    revived,      // a retired version back in the config (its tables are kept)
    retired,      // in the registry, live or backfilling, and no longer in the config
};
const char* to_string(plan_action a);

struct set_plan {
    std::string set;
    std::int64_t version = 1;
    plan_action action = plan_action::unchanged;
    std::vector<spec_change> changes;  // for changed; notes for the others
    std::string note;                  // one line for the action, e.g. "backfilled from topic user-events"

    bool breaking() const;
};

/// The whole plan: the config's sets against the registry's, in the config's order, then the
/// retired ones in the registry's order.
struct definition_plan {
    std::string environment;
    std::vector<set_plan> sets;

    bool breaking() const;
    /// Lines a person reads: each set, its action, each change with "compatible" or "BREAKING"
    /// and why, and what to do about a breaking one.
    std::string text() const;
    /// The same as a JSON document, for CI.
    std::string json() const;
    /// "feature set s: field spend: type double -> int (breaking: ...)", one per breaking change.
    std::vector<std::string> breaking_reasons() const;
};

/// Diffs the config's feature sets against the registry's newest revision of each (set, version).
definition_plan plan_definitions(const config& cfg, const std::vector<registered_definition>& registry);

}  // namespace sluice
