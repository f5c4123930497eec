#pragma once
// The quarantine table (<schema>.quarantine): records held by an expectation of severity
// quarantine (written by the store writer in the batch's transaction, like dead letters), listed
// for review and released by an admin. A release is exactly once: rows are first claimed (a token
// of the release), then written through the push path with "quarantine:<row id>" as their source
// (history's src_topic), then marked released; a claim left by a crash is settled by the next
// release: released when its record is in history (by that source), unclaimed otherwise.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/config.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

class quarantine_table {
public:
    explicit quarantine_table(const postgres_config& pg);  // one connection, used by one thread at a time
    ~quarantine_table();

    /// The held rows of a set (display name), newest first: id, rule, source, quarantined_at and the
    /// payload as text; with `released` the released ones instead.
    result<nlohmann::json> list(const feature_set_config& set, bool released, std::int64_t limit);
    /// Claims up to `limit` held rows of the set (those of `ids` when not empty) for release `token`:
    /// their (id, payload). Claims left by an earlier release are settled first (see above).
    result<std::vector<std::pair<std::int64_t, std::string>>> claim(const feature_set_config& set,
                                                                    const std::vector<std::int64_t>& ids,
                                                                    const std::string& token, std::int64_t limit);
    /// The claimed rows are released (their records durable), by `actor`.
    status confirm(const std::string& token, const std::string& actor);
    /// The claimed rows are held again (the write failed).
    status unclaim(const std::string& token);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice
