#pragma once
// The values that travel through the pipeline: raw Kafka messages, validated records, dead letters.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice {

/// A typed field value. The alternative follows the field's declared type:
/// int and timestamp (epoch milliseconds) → int64_t, double → double, bool → bool,
/// string → std::string, json → std::string holding compact JSON text. monostate is null.
using value = std::variant<std::monostate, std::int64_t, double, bool, std::string>;

/// Where a record came from.
enum class record_origin : unsigned char {
    kafka,  // a topic-partition-offset
    push,   // POST /v1/ingest: no partition; offset is the item's sequence number in the writer
};

/// What history's and dead_letters' src_topic hold for a pushed record.
inline constexpr const char* push_topic = "http";

/// Where a record came from: a Kafka topic-partition-offset, or an HTTP push (partition < 0).
struct record_source {
    std::string topic;
    std::int32_t partition = -1;
    std::int64_t offset = -1;

    record_origin origin() const { return partition >= 0 ? record_origin::kafka : record_origin::push; }
    bool from_kafka() const { return origin() == record_origin::kafka; }
    /// A pushed item's source: the push topic, no partition, its sequence number.
    static record_source pushed(std::int64_t sequence) { return record_source{push_topic, -1, sequence}; }
};

/// One Kafka message as the ingest stage hands it to preprocessing.
struct raw_message {
    std::uint32_t set_index = 0;       // feature set fed by the message's topic
    std::uint32_t consumer_index = 0;  // consumer thread that owns the partition
    record_source source;
    std::int64_t kafka_timestamp_ms = -1;
    bool has_value = true;  // false for a tombstone (null value)
    std::int64_t consumed_us = 0;  // traced messages (stage_trace.hpp): when the consumer got it, epoch µs
    std::string payload;
};

/// Times a traced record (stage_trace.hpp) carries to the store writer, which counts them.
struct record_trace {
    std::int64_t produced_ms = -1;  // its Kafka timestamp; -1: not traced
    std::int64_t consumed_us = 0;   // epoch µs
    std::int64_t parsed_us = 0;
};

/// One validated event: key, event time and values in the order of the set's declared fields.
struct record {
    std::uint32_t set_index = 0;
    std::string key;
    std::int64_t event_time_ms = 0;
    std::int64_t ingested_at_ms = 0;
    std::vector<value> values;
    record_source source;
    record_trace trace;
};

/// Why an input became a dead letter.
enum class dead_letter_reason : unsigned char {
    invalid,     // not a valid event of its feature set (JSON, schema, types, checks)
    too_large,   // larger than kafka.max_message_bytes
    tombstone,   // a Kafka message with a null value
    late_event,  // older than its key's newest event by more than allowed_lateness
    quarantined, // valid, but broke an expectation of severity quarantine: held for review, not served
};

/// The source of a record released from the quarantine is "quarantine:<row id>" (history keeps it
/// as src_topic): the quarantine's rules do not hold it again.
inline constexpr std::string_view quarantine_topic = "quarantine:";
inline bool released_from_quarantine(std::string_view topic) { return topic.substr(0, quarantine_topic.size()) == quarantine_topic; }

/// "invalid", "too_large", "tombstone", "late_event", "quarantined".
const char* to_string(dead_letter_reason r);

/// An input that failed validation, kept with the reason so nothing is silently dropped.
struct dead_letter {
    std::uint32_t set_index = 0;
    record_source source;
    std::string payload;
    std::string error;  // the reason in words, for a person: what was wrong and where
    std::int64_t received_at_ms = 0;
    dead_letter_reason reason = dead_letter_reason::invalid;
};

/// An input deliberately left out (a filter, or a duplicate event id): it writes nothing, but its
/// offset still counts as done.
struct skipped {
    std::uint32_t set_index = 0;
    record_source source;
    std::string reason;
};

/// What preprocessing hands to the store writer, in partition order.
using processed = std::variant<record, dead_letter, skipped>;

/// The newest known state of one key of one feature set, as every store serves it.
struct latest_entry {
    std::string key;
    std::int64_t event_time_ms = 0;
    std::int64_t ingested_at_ms = 0;
    std::vector<value> values;  // in the order of the set's declared fields
    std::int32_t partition = -1;  // Kafka partition that wrote it (memory index eviction); -1 if unknown
};

}  // namespace sluice

namespace sluice {

/// The next offset to consume for one partition (Kafka's committed-offset convention).
struct partition_offset {
    /// expected: the batch was built on no stored offset for the partition yet.
    static constexpr std::int64_t no_stored_offset = -1;
    /// expected: the writer does not fence; the stored offset only ever moves forward.
    static constexpr std::int64_t unfenced = -2;

    std::string topic;
    std::int32_t partition = 0;
    std::int64_t next_offset = 0;
    /// In a write batch: the stored offset the batch continues from. The batch commits only if
    /// consumer_offsets still holds it (or still holds none, for no_stored_offset): a writer whose
    /// partition another instance wrote in between is fenced out and rolls back.
    std::int64_t expected = unfenced;
};

}  // namespace sluice
