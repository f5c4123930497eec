#pragma once
// Helpers for the fault tests (README, "Guarantees and faults"): a paced producer that keeps a stream of
// valid `user_activity` events flowing from a background thread while the test takes a store
// or the broker away (its events are checked with audit.hpp), Redis against PostgreSQL's
// latest, single reads of the API, the daemon's RSS, the readiness probe, the daemon log, and
// a plain consumer that reads a topic (the DLQ) back.
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

#include "integration/support/audit.hpp"
#include "integration/support/kafka.hpp"
#include "integration/support/stream.hpp"

namespace sluice::it {

/// Produces valid events at `rate_per_s` to `topic`, cycling over keys `<key_prefix>0..keys-1`,
/// from a background thread. Event times are `base_ts + n` for the n-th event, so they rise
/// strictly per key and the newest event of a key is the last one sent to it; clicks are n + 1
/// (unique: they identify the event in history); the messages leave out country and premium.
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
    const std::vector<stream_event>& events() const { return events_; }
    /// After flush(): the newest event of each key (pointers into events()).
    newest_map newest() const;
    /// Keys of the events sent so far (thread-safe), e.g. the keys written before an outage.
    std::vector<std::string> keys_so_far() const;
    kafka_cluster& kafka() const { return kafka_; }

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
    std::vector<stream_event> events_;
    std::string error_;
};

/// The start of a paced stream: starts `producer`, lets it run for `how_long`, expects it to
/// have sent at least `at_least` events by then, and waits up to 30 s for history to hold them
/// all; a fatal failure ("the daemon did not keep up before <before_what>") otherwise. `sent`
/// gets the number sent during the warm-up. Call it inside ASSERT_NO_FATAL_FAILURE.
void warm_up(paced_producer& producer, const std::string& dsn, const std::string& topic, std::chrono::seconds how_long,
             const std::string& before_what, long long& sent, long long at_least = 0);

/// The events the broker holds for `produced` (sent to `topic`, delivery reports recorded; the
/// topic read back with consume_topic up to its end offsets): each produced event at its
/// reported place, plus a copy of it at the place of every extra message with the same key and
/// bytes (counted in `copies`). Messages that are neither, and produced events the topic lacks,
/// are gtest failures.
std::vector<stream_event> held_events(kafka_cluster& kafka, const std::string& topic,
                                      const std::vector<stream_event>& produced, std::size_t& copies);

/// The end of a paced stream: stops `producer` (a fatal failure if its thread threw or a
/// delivery failed) and reads the topic back from the broker. History must hold what the
/// broker holds: every produced event where its delivery report put it, and also any message
/// the broker wrote twice (a produce request answered by a connection that a broker fault cut,
/// then retried; the 2.0.2 mock does not always drop the retry), counted in
/// `out.broker_copies`. Anything else in the topic, or a produced event missing from it, is a
/// failure. Then waits up to 60 s for history to hold every message, 1 s more (anything beyond
/// would show up by then), and checks history against them into `out`. Call it inside
/// ASSERT_NO_FATAL_FAILURE.
void finish_stream(paced_producer& producer, const std::string& dsn, const std::string& topic, history_check& out);

/// After finish_stream(): waits up to 20 s for latest to hold the newest event of every key of
/// `producer` (other keys in the table are not looked at); the mismatches left.
std::vector<std::string> settled_latest(const std::string& dsn, const paced_producer& producer);

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
/// Waits until the daemon's consumers own `partitions` partitions in all, counting its
/// "assigned N partitions" and "revoked N partitions" lines from line `from_line` of
/// rebalance_lines() on, and no such line has been added for `quiet`; false after `timeout`.
bool wait_assignment_settled(const std::filesystem::path& daemon_log, std::size_t from_line, int partitions,
                             std::chrono::milliseconds quiet, std::chrono::milliseconds timeout);

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

}  // namespace sluice::it
