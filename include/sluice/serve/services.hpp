#pragma once
// What the HTTP layer needs from the rest of the daemon, as interfaces.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// Reads latest state for the API: memory index, then Redis, then PostgreSQL. get_latest may
/// answer inline (memory hit) or later from the lookup pool; done is called exactly once, on any
/// thread. Implementations never block the calling (io) thread.
class feature_reader {
public:
    using latest_callback = std::function<void(result<std::optional<latest_entry>>)>;
    virtual ~feature_reader() = default;
    virtual void get_latest(std::uint32_t set_index, std::string key, latest_callback done) = 0;
    /// The key as it was at at_ms (point in time, from history): the newest event at or before
    /// it, and the aggregations computed over history at that moment. Same threading as get_latest.
    virtual void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) {
        (void)set_index, (void)key, (void)at_ms;
        done(result<std::optional<latest_entry>>::failure("as_of lookups need PostgreSQL"));
    }
};

/// Readiness as /readyz reports it: empty when ready, else one reason per failing part.
class health_source {
public:
    virtual ~health_source() = default;
    virtual std::vector<std::string> not_ready_reasons() const = 0;
};

/// Everything a handler may use. Owned by the app; outlives the HTTP server.
struct serve_context {
    const config* cfg = nullptr;
    feature_reader* reader = nullptr;
    health_source* health = nullptr;
};

}  // namespace sluice
