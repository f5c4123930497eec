#pragma once
// The real components of the README's Tests together: PostgreSQL 15, Redis 7 and the Kafka mock
// cluster, each on a free loopback port, plus the daemon config that points at them.
// Starting the stack takes a few seconds (initdb), so a test suite owns one for all its tests
// (SetUpTestSuite) and destroys it at the end.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "integration/support/daemon.hpp"
#include "integration/support/kafka.hpp"
#include "integration/support/net.hpp"
#include "integration/support/postgres.hpp"
#include "integration/support/process.hpp"
#include "integration/support/redis.hpp"
#include "integration/support/temp_dir.hpp"
#include "integration/support/wait.hpp"

namespace sluice::it {

/// The PostgreSQL schema and Redis key prefix of user_activity_config() (tests that share one
/// stack between variants override them per variant).
inline constexpr const char* default_schema = "sluice";
inline constexpr const char* default_key_prefix = "sluice";

struct test_stack {
    postgres_server postgres;
    redis_server redis;
    kafka_cluster kafka;
};

/// The `user_activity` feature set of the README's Config (clicks int required, spend double min 0,
/// country string default "??", premium bool; key user_id, event time ts, TTL 24h) on topic
/// `topic`, with every store of `stack` configured and the API on 127.0.0.1:`http_port`.
nlohmann::json user_activity_config(const test_stack& stack, const std::string& group_id, int http_port,
                                    const std::string& topic = "user-events");

/// Eight random hex digits, for group ids and the like.
std::string random_suffix();

/// Wall-clock milliseconds since the epoch.
std::int64_t now_ms();

/// "2026-11-21T08:27:00.123Z"
std::string rfc3339_ms(std::int64_t epoch_ms);

/// Environment variable `name` as a positive integer, else `fallback` (unset, empty, not a
/// number, zero or negative).
long long env_int(const char* name, long long fallback);

}  // namespace sluice::it
