#pragma once
// The hot latest-state cache (Redis): one hash per key, guarded by event time, with TTL.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// apply() is called by the store writer thread only; read_latest() from the lookup pool.
class latest_cache {
public:
    virtual ~latest_cache() = default;
    /// Writes these records (at most one per key) unless the cache holds a newer event time.
    virtual status apply(const std::vector<const record*>& newest_per_key) = 0;
    virtual result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) = 0;
    /// Many keys in one round trip where the cache can (a pipeline); one answer per key, in order.
    virtual std::vector<result<std::optional<latest_entry>>> read_latest_many(std::uint32_t set_index,
                                                                             const std::vector<std::string>& keys) {
        std::vector<result<std::optional<latest_entry>>> out;
        out.reserve(keys.size());
        for (const auto& k : keys) out.push_back(read_latest(set_index, k));
        return out;
    }
    virtual bool healthy() const = 0;
    virtual status ping() = 0;
    /// A live reload's new TTL of a set, for the values written from now on (no-op by default).
    virtual void set_ttl(std::uint32_t /*set_index*/, std::int64_t /*ttl_ms*/) {}
};
using latest_cache_ptr = std::unique_ptr<latest_cache>;

}  // namespace sluice
