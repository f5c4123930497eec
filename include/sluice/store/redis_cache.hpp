#pragma once
// Factory for the Redis latest-state cache (hiredis).

#include "sluice/config/config.hpp"
#include "sluice/store/latest_cache.hpp"

namespace sluice {

/// One writer connection (store writer thread) and redis.pool_size reader connections.
/// Every call has redis.timeout_ms; a connection that errs is replaced on the next call.
latest_cache_ptr make_redis_cache(const config& cfg);

/// "<key_prefix>:<set>:<key>" (DESIGN §7).
std::string redis_key(const std::string& prefix, const std::string& set, const std::string& key);

}  // namespace sluice
