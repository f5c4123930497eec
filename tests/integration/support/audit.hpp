#pragma once
// The checks that turn "nothing lost, nothing doubled, the newest value served" into numbers
// and mismatch lists: history per Kafka offset, latest per key in PostgreSQL, the Redis hashes,
// GET /v1/features, dead letters and committed offsets, each compared with the events the test
// produced (stream.hpp). Used from the test thread.

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "integration/support/daemon.hpp"
#include "integration/support/kafka.hpp"
#include "integration/support/stream.hpp"

namespace sluice::it {

/// Where a message landed.
struct location {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    auto operator<=>(const location&) const = default;
};

/// "partition/offset"
std::string describe(const location& l);

/// History of one topic compared with what was produced: every produced message exactly once,
/// at its (partition, offset), with its key, event time and clicks.
struct history_check {
    std::size_t expected = 0;    // events produced (as given to check_history)
    std::size_t broker_copies = 0;  // of those, copies the broker wrote twice (finish_stream)
    long long rows = 0;          // count(*) for the topic
    long long distinct_src = 0;  // count(DISTINCT (src_topic, src_partition, src_offset))
    std::size_t missing = 0;     // produced, not stored
    std::size_t duplicates = 0;  // rows beyond the first at one (partition, offset)
    std::size_t unexpected = 0;  // rows at a (partition, offset) never produced (as a valid event)
    std::size_t wrong = 0;       // rows whose key / event time / clicks differ from what was produced
    std::set<location> stored_at;       // every (partition, offset) with a row
    std::vector<std::string> examples;  // the first few problems, for the failure message
    std::string error;  // a query failed, or two produced events had one (partition, offset)
    bool same_set() const { return missing == 0 && unexpected == 0; }
};
history_check check_history(const std::string& dsn, const std::string& schema, const std::string& topic,
                            const std::vector<stream_event>& produced);
/// "[tag] produced=… stored=… missing=… duplicates=… unexpected=… wrong=…" and the examples.
void print_history_check(const std::string& tag, const history_check& h);
/// gtest expectations: no error, nothing missing, doubled, unexpected or wrong, and as many rows
/// (all distinct) as events were produced; the examples as one failure.
void expect_each_event_once(const history_check& h);

/// count(*) of <schema>.user_activity_history for the topic; -1 while the table is missing.
long long history_rows(const std::string& dsn, const std::string& schema, const std::string& topic);
/// Polls history_rows() every `interval` until it reaches `n`, `timeout` passes or `daemon`
/// (when given) has exited; returns the last count.
long long wait_history(const std::string& dsn, const std::string& schema, const std::string& topic, long long n,
                       std::chrono::steady_clock::duration timeout, daemon_process* daemon = nullptr,
                       std::chrono::milliseconds interval = std::chrono::milliseconds(250));

/// Which rows of <schema>.user_activity_latest a check covers.
enum class latest_scope {
    whole_table,   // the table holds exactly the keys of `newest` (a stack or schema of its own)
    produced_keys  // only the keys of `newest` (other tests' keys share the table)
};
/// Mismatches between <schema>.user_activity_latest and `newest`: event time, clicks, spend,
/// country and premium of every key (empty: equal).
std::vector<std::string> latest_mismatches(const std::string& dsn, const std::string& schema, const newest_map& newest,
                                           latest_scope scope);
/// Polls latest_mismatches() every `interval` until there are none or `timeout` passes; the last
/// mismatches.
std::vector<std::string> wait_latest(const std::string& dsn, const std::string& schema, const newest_map& newest,
                                     latest_scope scope, std::chrono::steady_clock::duration timeout,
                                     std::chrono::milliseconds interval = std::chrono::milliseconds(500));
/// Mismatches between the hashes <prefix>:user_activity:<key> and `newest` (every key):
/// `_event_time` and the values, and the TTL in (0, ttl_at_most] when that is given.
std::vector<std::string> redis_mismatches(int redis_port, const std::string& key_prefix, const newest_map& newest,
                                          std::optional<std::chrono::seconds> ttl_at_most = std::nullopt);
/// Mismatches between GET /v1/features/user_activity/<key> on `http_port` and `e`.
std::vector<std::string> api_mismatches(int http_port, const stream_event& e);
/// api_mismatches() for every key of `newest`, and per partition how many keys were checked
/// and how many of them were wrong.
struct api_check {
    std::vector<std::string> bad;
    std::map<std::int32_t, std::pair<int, int>> per_partition;  // partition -> (keys, wrong keys)
};
api_check check_api(int http_port, const newest_map& newest);

/// Waits up to 15 s each for <schema>.user_activity_latest (its whole table) and then the Redis
/// hashes to match `newest`, prints "[tag] latest: …" and "[tag] redis: …" (keys, mismatches)
/// and reports what is left as gtest failures.
void expect_latest_and_redis(const std::string& tag, const std::string& dsn, const std::string& schema, int redis_port,
                             const std::string& key_prefix, const newest_map& newest);

/// Adds one gtest failure listing the first `limit` mismatches (nothing when `bad` is empty).
void report_mismatches(const std::string& what, const std::vector<std::string>& bad, std::size_t limit = 10);

/// <schema>.consumer_offsets of a group and topic.
partition_offsets pg_consumer_offsets(const std::string& dsn, const std::string& schema, const std::string& group,
                                      const std::string& topic);
/// gtest expectations after the group's last member has stopped: Kafka's committed offsets and
/// <schema>.consumer_offsets both equal the end of every partition (`note` ends the messages).
void expect_offsets_at_end(kafka_cluster& kafka, const std::string& dsn, const std::string& schema,
                           const std::string& group, const std::string& topic, int partitions,
                           const std::string& note = "");

/// count(*) of <schema>.dead_letters for the topic; -1 while the table is missing.
long long dead_letter_rows(const std::string& dsn, const std::string& schema, const std::string& topic);
/// Polls dead_letter_rows() every 250 ms until it reaches `n`, `timeout` passes or `daemon`
/// (when given) has exited; returns the last count.
long long wait_dead_letters(const std::string& dsn, const std::string& schema, const std::string& topic, long long n,
                            std::chrono::steady_clock::duration timeout, daemon_process* daemon = nullptr);
/// Lower-case hex of `bytes`, as PostgreSQL's encode(…, 'hex') writes it.
std::string hex(const std::string& bytes);

}  // namespace sluice::it
