#pragma once
// Factory for the Redis latest-state cache (hiredis).

#include <string>
#include <string_view>
#include <vector>

#include "sluice/config/columns.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/ports/latest_cache.hpp"

struct redisReply;

namespace sluice {

/// One writer connection (store writer thread) and redis.pool_size reader connections.
/// Every call has redis.timeout_ms; a connection that errs is replaced on the next call.
latest_cache_ptr make_redis_cache(const config& cfg);

/// The AUTH command of the config (with a password): AUTH <username> <password> for an ACL user,
/// AUTH <password> for the default user.
std::vector<std::string> auth_command(const redis_config& rc);

/// Deletes every key of one version of a set ("<key_prefix>:<storage name>:*", by SCAN and
/// UNLINK); answers how many (sluice drop).
result<std::int64_t> delete_set_keys(const config& cfg, const std::string& storage_name);

/// "<key_prefix>:<set>:<key>" (README, "Stores").
std::string redis_key(const std::string& prefix, const std::string& set, const std::string& key);

/// A key's hash as HGETALL returns it (README, "Stores"), read as the set's columns; no hash, or one
/// without _event_time, is an unknown key. `flat`: field, value, field, value, ...
result<std::optional<latest_entry>> decode_latest_fields(const std::vector<latest_column>& columns, const std::string& key,
                                                         const std::vector<std::string_view>& flat);
/// The same from hiredis's reply.
result<std::optional<latest_entry>> decode_latest_hash(const std::vector<latest_column>& columns, const std::string& key,
                                                       const redisReply* reply);

}  // namespace sluice
