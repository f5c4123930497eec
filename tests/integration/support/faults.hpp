#pragma once
// Helpers for the fault tests (issue 3, DESIGN §8): a paced producer that keeps a stream of
// valid `user_activity` events flowing from a background thread while the test takes a store
// or the broker away, and the audits that turn "nothing lost, nothing doubled" into numbers:
// history rows per Kafka offset, latest per key in PostgreSQL and Redis, the daemon's RSS, the
// readiness probe, the daemon log, and a plain consumer that reads a topic (the DLQ) back.
//
// Everything here is used from the test thread, except paced_producer's own thread, which is
// the only caller of kafka_cluster::produce() while it runs (librdkafka is thread-safe; the
// kafka_cluster serves delivery reports on the producing thread).

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/kafka.hpp"

namespace sluice::it {

/// One valid event the test produced.
struct sent_event {
    std::string key;
    std::int64_t ts = 0;      // event time, epoch ms
    std::int64_t clicks = 0;  // unique per event: identifies it in history
    double spend = 0;
    std::size_t id = 0;       // kafka_cluster delivery id
    std::int32_t partition = -1;
    std::int64_t offset = -1;
};

/// The JSON value of a valid event: {"user_id","ts","clicks","spend"}.
std::string event_json(const sent_event& e);

/// Produces valid events at `rate_per_s` to `topic`, cycling over keys `<key_prefix>0..keys-1`,
/// from a background thread. Event times are `base_ts + n` for the n-th event, so they rise
/// strictly per key and the newest event of a key is the last one sent to it.
class paced_producer {
public:
    paced_producer(kafka_cluster& kafka, std::string topic, std::string key_prefix, int keys, double rate_per_s,
                   std::int64_t base_ts);
    ~paced_producer();
    paced_producer(const paced_producer&) = delete;
    paced_producer& operator=(const paced_producer&) = delete;

    void start();
    /// Stops and joins the thread (idempotent).
    void stop();
    /// From now on only keys 0..n-1 receive events.
    void restrict_keys(int n) { key_limit_.store(n); }
    /// Sends exactly `n` more events synchronously on the caller's thread (producer stopped).
    void send_now(int n);

    std::size_t sent() const { return sent_.load(); }
    /// Whatever the producing thread threw (empty: nothing).
    std::string error() const;

    /// After stop(): waits for every delivery report (throws on failure) and records where each
    /// event landed.
    void flush(std::chrono::milliseconds timeout = std::chrono::seconds(90));
    /// After flush(): every event, in the order sent.
    const std::vector<sent_event>& events() const { return events_; }
    /// After flush(): the newest event of each key.
    std::map<std::string, sent_event> newest() const;
    /// Keys of the events sent so far (thread-safe), e.g. the keys written before an outage.
    std::vector<std::string> keys_so_far() const;

private:
    void send_one();
    void run();

    kafka_cluster& kafka_;
    std::string topic_;
    std::string key_prefix_;
    int keys_;
    double rate_;
    std::int64_t base_ts_;
    std::atomic<int> key_limit_;
    std::atomic<bool> running_{false};
    std::atomic<std::size_t> sent_{0};
    std::thread thread_;
    mutable std::mutex mu_;
    std::vector<sent_event> events_;
    std::string error_;
};

/// History of one topic against what was produced: each produced offset must hold exactly one
/// row with the produced key and event time.
struct history_audit {
    std::size_t expected = 0;
    std::size_t stored = 0;      // rows of the topic
    std::size_t missing = 0;     // produced offsets without a row
    std::size_t duplicates = 0;  // rows beyond the first at one offset
    std::size_t unexpected = 0;  // rows at offsets never produced as valid events
    std::size_t wrong = 0;       // rows whose key/event time/clicks differ from what was produced
    std::vector<std::string> samples;  // the first few problems, for the failure message
    std::string error;                 // a query failure
};
history_audit audit_history(const std::string& dsn, const std::string& topic, const std::vector<sent_event>& events);
void print_audit(const char* tag, const history_audit& a);

/// Rows of sluice.user_activity_history for `topic` (-1 when the query fails).
long long topic_history_rows(const std::string& dsn, const std::string& topic);
/// Polls until history holds at least `n` rows of `topic` or `timeout` passes; returns the last count.
long long wait_history(const std::string& dsn, const std::string& topic, long long n, std::chrono::seconds timeout);

/// Mismatches between sluice.user_activity_latest and `newest` (event time and clicks).
std::vector<std::string> pg_latest_mismatches(const std::string& dsn, const std::map<std::string, sent_event>& newest);
/// PostgreSQL's latest event time (epoch ms) of each key starting with `key_prefix`.
std::map<std::string, std::int64_t> pg_latest_times(const std::string& dsn, const std::string& key_prefix);
/// Mismatches between the Redis hashes sluice:user_activity:<key> (`_event_time`) and `expected`
/// (key → event time ms); a missing hash or an older/newer time is a mismatch.
std::vector<std::string> redis_time_mismatches(int redis_port, const std::map<std::string, std::int64_t>& expected);

/// GET /v1/features/user_activity/<key>: the status and, when 200, the event time (epoch ms
/// parsed from the RFC 3339 answer, -1 if absent) and clicks (-1 if absent).
struct feature_read {
    int status = 0;
    std::int64_t event_time_ms = -1;
    std::int64_t clicks = -1;
    std::string body;
};
feature_read read_feature(int http_port, const std::string& key);

/// GET /readyz: status and the lower-cased reasons joined by "; ".
struct readiness {
    int status = 0;
    std::string reasons;
    std::string body;
};
readiness probe_readyz(int http_port);

/// VmRSS of a process in KiB (-1 when unreadable).
long long rss_kib(pid_t pid);

/// Lines of a file that contain any of `needles`.
std::vector<std::string> grep_lines(const std::filesystem::path& file, const std::vector<std::string>& needles);
/// The daemon's rebalance lines ("assigned N partitions", "revoked N partitions").
std::vector<std::string> rebalance_lines(const std::filesystem::path& daemon_log);

/// "2026-11-21T08:27:00.123Z" → epoch ms (-1 when not in that shape).
std::int64_t parse_rfc3339_ms(const std::string& text);

/// A message read back from a topic.
struct consumed_message {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::string>> headers;
};
/// Reads every partition 0..partitions-1 of `topic` from the beginning with a plain consumer
/// (no group) until `expected` messages arrived or `timeout` passed, then `settle` longer (to
/// see messages beyond the expected ones, e.g. duplicates).
std::vector<consumed_message> consume_topic(const std::string& bootstraps, const std::string& topic, int partitions,
                                            std::size_t expected, std::chrono::milliseconds timeout,
                                            std::chrono::milliseconds settle = std::chrono::milliseconds(0));

/// Environment variable as an int, or `fallback` when unset or not a number.
int env_number(const char* name, int fallback);

}  // namespace sluice::it
