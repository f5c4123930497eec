#pragma once
// What the tests produce: valid `user_activity` events (README, "Config") remembered with where they
// landed, so a test knows the expected state (every message once in history, the newest event
// per key in latest, Redis and the API; see audit.hpp for the checks), and event_stream, a
// producer of random events that the test thread paces itself (pipeline, crash, scale-out).
// The fault tests' background producer, paced_producer, is in faults.hpp.
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
    std::string country = "??";   // "??" (the set's default) when the message leaves it out
    std::optional<bool> premium;  // nullopt (JSON null) when the message leaves it out
    std::size_t id = 0;           // kafka_cluster::produce id
    std::int32_t partition = -1;  // from the delivery report
    std::int64_t offset = -1;

    /// {"clicks","spend","country","premium"} as GET /v1/features answers them.
    nlohmann::json values() const;
};

/// The message of `e`: user_id, ts (epoch ms, or RFC 3339 text when `ts_as_text`), clicks,
/// spend, country unless it is the default "??", premium when set.
nlohmann::json event_message(const stream_event& e, bool ts_as_text = false);

/// The newest event of each key (greatest event time; the first one sent on a tie).
using newest_map = std::map<std::string, const stream_event*>;
newest_map newest_events(const std::vector<stream_event>& events);

/// After kafka.flush(): fills `partition` and `offset` of every produced item from the delivery
/// report of its `id`.
template <class Produced>
void record_deliveries(const kafka_cluster& kafka, std::vector<Produced>& produced) {
    for (auto& p : produced) {
        const delivery d = kafka.delivery_of(p.id);
        p.partition = d.partition;
        p.offset = d.offset;
    }
}

/// "user-<k>"
std::string stream_key(int k);

/// What event_stream's messages carry besides the declared fields in their usual shapes.
struct message_variety {
    bool non_ascii_country = false;  // "C\xC3\x94" among the countries
    bool undeclared_field = false;   // every 17th message has a "referrer" object the set does not declare
};

/// Produces events of the `user_activity` set (README, "Config") to one topic, keyed by user id (so
/// each key lives in one partition), about 100 bytes each, with random values. The n-th event
/// varies the shape: some use an RFC 3339 event time, or leave out country or premium. send(k)
/// and the send_random*() variants use event time base_ts plus a global sequence number:
/// strictly increasing per key.
class event_stream {
public:
    event_stream(kafka_cluster& kafka, std::string topic, int keys, std::uint64_t seed, std::int64_t base_ts,
                 message_variety variety = {});

    /// One event for a uniformly random key among the first `key_count` (default: all).
    void send_random(int key_count = -1);
    /// One event for key index k.
    void send(int k);
    /// One event for a uniformly random key index among `candidates`.
    void send_random_of(const std::vector<int>& candidates);
    /// One event for any key, at event time `ts`.
    void send(const std::string& key, std::int64_t ts);

    /// Waits for every delivery report (throws on failure or timeout) and resolves all.
    void flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    /// Fills partition/offset of the events whose reports have arrived so far.
    void resolve();

    const std::vector<stream_event>& events() const { return events_; }
    std::size_t size() const { return events_.size(); }
    int keys() const { return keys_; }
    const std::string& topic() const { return topic_; }

    /// The newest event of each key that has one (call after flush()).
    newest_map newest() const { return newest_events(events_); }

private:
    kafka_cluster& kafka_;
    std::string topic_;
    int keys_;
    std::mt19937_64 rng_;
    std::int64_t base_ts_;
    message_variety variety_;
    std::vector<stream_event> events_;
    std::size_t resolved_ = 0;
};

/// How many of `total` messages should have been sent `elapsed` into a stream of `duration`.
std::size_t paced_due(std::size_t total, std::chrono::steady_clock::duration duration,
                      std::chrono::steady_clock::duration elapsed);

/// The N of every "assigned N partitions" line in `log_text`, in order.
std::vector<int> assigned_counts(const std::string& log_text);

}  // namespace sluice::it
