#pragma once
// A paced stream of `user_activity` events for the fault tests (crash, scale-out): a producer
// that remembers every event it sent and where it landed, so the test knows the expected state
// (every message once in history, the newest event per key in latest, Redis and the API), and
// the checks that compare the stores with it.
//
// Everything here is owned and driven by the test thread (the kafka_cluster's delivery reports
// are served inside produce()/flush() on that thread).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/support/kafka.hpp"

namespace sluice::it {

/// One valid event as produced and as the daemon must serve it.
struct stream_event {
    std::string key;
    std::int64_t ts = 0;  // event time, epoch ms
    std::int64_t clicks = 0;
    double spend = 0;
    std::string country;          // "??" when the message left it out
    std::optional<bool> premium;  // nullopt (JSON null) when the message left it out
    std::size_t id = 0;           // kafka_cluster::produce id
    std::int32_t partition = -1;  // from the delivery report, after resolve()/flush()
    std::int64_t offset = -1;

    /// {"clicks","spend","country","premium"} as GET /v1/features answers them.
    nlohmann::json values() const;
};

/// "user-<k>"
std::string stream_key(int k);

/// Produces events of the `user_activity` set (DESIGN §4) to one topic, keyed by user id (so
/// each key lives in one partition), about 100 bytes each. Event times are base_ts plus a
/// global sequence number: strictly increasing per key.
class event_stream {
public:
    event_stream(kafka_cluster& kafka, std::string topic, int keys, std::uint64_t seed, std::int64_t base_ts);

    /// One event for a uniformly random key among the first `key_count` (default: all).
    void send_random(int key_count = -1);
    /// One event for key index k.
    void send(int k);
    /// One event for a uniformly random key index among `candidates`.
    void send_random_of(const std::vector<int>& candidates);

    /// Waits for every delivery report (throws on failure or timeout) and resolves all.
    void flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    /// Fills partition/offset of the events whose reports have arrived so far.
    void resolve();

    const std::vector<stream_event>& events() const { return events_; }
    std::size_t size() const { return events_.size(); }
    int keys() const { return keys_; }
    const std::string& topic() const { return topic_; }

    /// The newest event of each key that has one (call after flush()).
    std::map<std::string, const stream_event*> newest() const;
    /// Key index -> partition, for keys with a resolved event.
    std::map<int, std::int32_t> key_partitions() const;

private:
    kafka_cluster& kafka_;
    std::string topic_;
    int keys_;
    std::mt19937_64 rng_;
    std::int64_t base_ts_;
    std::vector<stream_event> events_;
    std::vector<int> key_of_;  // key index of each event
    std::size_t resolved_ = 0;
};

/// How many of `total` messages should have been sent `elapsed` into a stream of `duration`.
std::size_t paced_due(std::size_t total, std::chrono::steady_clock::duration duration,
                      std::chrono::steady_clock::duration elapsed);

/// Environment variable `name` as a positive integer, else `fallback`.
long long env_int(const char* name, long long fallback);

/// History compared with what was produced: every produced message exactly once, at its
/// (partition, offset), with its key, event time and clicks.
struct history_figures {
    long long rows = 0;          // count(*) for the topic
    long long distinct_src = 0;  // count(DISTINCT (src_topic, src_partition, src_offset))
    std::size_t missing = 0;     // produced, not stored
    std::size_t duplicates = 0;  // stored more than once
    std::size_t unexpected = 0;  // stored at a (partition, offset) never produced
    std::size_t wrong = 0;       // stored with other key / event time / clicks
    std::vector<std::string> examples;  // the first few problems, for the failure message
    bool same_set() const { return missing == 0 && unexpected == 0; }
};
history_figures check_history(const std::string& dsn, const std::string& schema, const std::string& topic,
                              const std::vector<stream_event>& produced);

/// count(*) of <schema>.user_activity_history for the topic; -1 while the table is missing.
long long history_rows(const std::string& dsn, const std::string& schema, const std::string& topic);

/// Mismatches between <schema>.user_activity_latest and `newest` (empty: equal, same key set).
std::vector<std::string> latest_mismatches(const std::string& dsn, const std::string& schema,
                                           const std::map<std::string, const stream_event*>& newest);
/// Mismatches between the hashes <prefix>:user_activity:<key> and `newest` (every key).
std::vector<std::string> redis_mismatches(int redis_port, const std::string& key_prefix,
                                          const std::map<std::string, const stream_event*>& newest);
/// Mismatches between GET /v1/features/user_activity/<key> on `http_port` and `e`.
std::vector<std::string> api_mismatches(int http_port, const stream_event& e);

/// Adds one gtest failure listing the first `limit` mismatches (nothing when `bad` is empty).
void report_mismatches(const std::string& what, const std::vector<std::string>& bad, std::size_t limit = 10);

/// <schema>.consumer_offsets of a group and topic.
partition_offsets pg_consumer_offsets(const std::string& dsn, const std::string& schema, const std::string& group,
                                      const std::string& topic);

/// The N of every "assigned N partitions" line in `log_text`, in order.
std::vector<int> assigned_counts(const std::string& log_text);

}  // namespace sluice::it
