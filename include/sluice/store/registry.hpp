#pragma once
// The registry of definitions in PostgreSQL, in the environment's schema:
//   <schema>.environment        one row: the environment that owns the schema, since when, from where
//   <schema>.registry           append-only: every revision of every version each environment ran,
//                               its canonical spec and hash, when and by whom (host, user, config
//                               file and its hash)
//   <schema>.registry_versions  each version's state (backfilling, live, retired) and since when
// Used at start (check, then record after the tables are made), by `sluice plan` and `sluice
// promote` (read only), and by `sluice drop`.

#include <memory>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/config/definition.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// What PostgreSQL holds for a schema, read in one read-only transaction.
struct registry_snapshot {
    std::string owner;  // the environment owning the schema; "" = none yet
    std::vector<registered_definition> definitions;  // newest revision of each version
};

class definition_registry {
public:
    explicit definition_registry(const config& cfg);  // cfg.postgres must be set
    ~definition_registry();
    definition_registry(const definition_registry&) = delete;
    definition_registry& operator=(const definition_registry&) = delete;

    /// Read only: the owner and the newest revision of each version (empty before the first start).
    result<registry_snapshot> read();
    /// Read only: the config against the registry and the tables as they are (a column whose
    /// type differs from the definition's is a breaking change even without a registry row).
    /// Fails (permanent) when another environment owns the schema.
    result<definition_plan> plan();
    /// At start, before the tables are made or changed: claims the schema for the config's
    /// environment (or refuses another's), and refuses a plan with a breaking change, naming each.
    result<definition_plan> check_before_start();
    /// After the tables are made: records a revision for each added or changed set, versions new to
    /// the registry (backfilling, or live when nothing older exists to backfill past), revived and
    /// retired ones.
    status record(const definition_plan& plan);
    /// A version's new state (backfilling -> live when its backfill caught up; retired).
    status set_state(const std::string& set, std::int64_t version, definition_state state);
    /// Drops a retired version's tables (sluice drop) and marks it dropped in the registry (its
    /// revisions stay: the registry is append-only). Refuses a version that is not retired.
    status drop_version(const std::string& set, std::int64_t version);

    /// Records written and dead letters of one version over the last window_ms (by arrival), for
    /// `sluice promote`'s check that staging took the definition in without a dead-letter spike.
    struct ingest_counts {
        std::int64_t records = 0;
        std::int64_t dead_letters = 0;
    };
    result<ingest_counts> counts_since(const feature_set_config& set, std::int64_t window_ms);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice
