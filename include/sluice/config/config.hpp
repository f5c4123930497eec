#pragma once
// The typed configuration: one struct per section of the JSON file.
// The initialisers here are the defaults. The loader's key tables read most of them from here for
// the schema (sluice/config/schema.hpp); the few the schema states in words are checked against
// these by a unit test. Bounds and descriptions live with the key tables.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/field_type.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

struct field_config {
    std::string name;
    field_type type = field_type::string;
    bool required = false;
    value default_value;              // null (monostate) unless "default" is given; coerced to type
    std::optional<double> min;        // numeric fields only
    std::optional<double> max;
    // Members below have initializers so that brace-initialized field_configs stay complete.
    /// JSON pointer (RFC 6901) to the value in the event, e.g. "/device/os". JSON "source";
    /// the loader sets "/<name>" when it is not given, and "" means the same.
    std::string source = {};
    /// JSON "allowed" (string and int fields): the only values accepted, coerced to the type;
    /// empty = any value.
    std::vector<value> allowed = {};

    bool operator==(const field_config&) const = default;
};

/// The largest whole unit: "24h", "90s", "1500ms"; "0" for zero (as the file writes durations).
std::string format_duration(std::int64_t ms);

enum class agg_op { count, sum, avg, min, max, last };

/// "count", "sum", "avg", "min", "max", "last".
const char* to_string(agg_op op);

/// One windowed aggregation, e.g. {"name": "spend_sum_1h", "field": "spend", "op": "sum", "window": "1h"}.
struct aggregation_config {
    std::string name;                 // identifier, unique among the set's fields and aggregations
    std::string field;                // a declared int or double field ("count" may name any field)
    std::size_t field_index = 0;      // its index in feature_set_config::fields (set by the loader)
    agg_op op = agg_op::count;
    std::int64_t window_ms = 0;       // 1 minute .. 30 days

    bool operator==(const aggregation_config&) const = default;
};

/// A declarative transform of a feature set's events (JSON "transforms": [...]). The order they
/// run in is documented in sluice/preprocess/record_parser.hpp.
enum class transform_op { rename, cast, set_default, clamp, lower, upper, trim, hash, drop, filter };

/// The condition of a filter: an event is kept when its field's value satisfies it.
enum class filter_op { equals, not_equals, in, not_in, gt, gte, lt, lte };

struct transform_config {
    transform_op op = transform_op::drop;
    std::string field;                // the declared field it works on (every op but rename)
    std::size_t field_index = 0;      // its index in feature_set_config::fields (set by the loader)
    std::string from;                 // rename: the event member to move ...
    std::string to;                   // ... and its new name
    field_type cast_to = field_type::string;  // cast: always the field's own type
    value default_value;              // default: the value a null becomes (of the field's type)
    value clamp_min;                  // clamp: bounds of the field's type; null = unbounded
    value clamp_max;
    std::string salt;                 // hash: prefixed to the value before hashing
    filter_op condition = filter_op::equals;  // filter
    std::vector<value> operands;      // filter: one operand, or the list of in/not_in

    bool operator==(const transform_config&) const = default;
};

/// Skips an event whose id was already seen within a window (JSON "dedup").
struct dedup_config {
    std::string field;                // a declared string or int field holding the event id; "" = off
    std::size_t field_index = 0;      // set by the loader
    std::int64_t window_ms = 10LL * 60 * 1000;  // event time an id is remembered for
    std::int64_t max_ids = 1000000;   // ids remembered per preprocess worker, at most
    bool enabled() const { return !field.empty(); }

    bool operator==(const dedup_config&) const = default;
};

/// What an expectation checks (JSON "expect"); see expectation_config.
enum class expectation_kind { null_rate, range, allowed, mean, distinct, records, freshness, drift };
/// "null_rate", "range", "allowed", "mean", "distinct", "records", "freshness", "drift".
const char* to_string(expectation_kind k);

/// warn: a failing window is reported (metric, status page, activity log); quarantine (range and
/// allowed only): a record breaking the rule is also held in the quarantine table, not served.
enum class expectation_severity { warn, quarantine };

/// One expectation of a feature set (JSON "expectations": [{"expect": ..., ...}]), checked over
/// each window of window_ms when it closes (sluice/store/quality_monitor.hpp):
///   null_rate {field, max}            share of the window's records whose field is null, at most
///   range     {field, min?, max?, max_outside?}  share of values outside [min, max] at most (0)
///   allowed   {field, values, max_outside?}      share of values not among `values` at most (0)
///   mean      {field, min?, max?}     the window's mean within
///   distinct  {field, min?, max?}     the estimated distinct values within
///   records   {min?, max?}            records written in the window within
///   freshness {max}                   the window's p99 of arrival - event time (ms), at most
///   drift     {field, max}            PSI of the window against the baseline window, at most
struct expectation_config {
    expectation_kind kind = expectation_kind::null_rate;
    std::string field;                // "" for records and freshness
    std::size_t field_index = 0;      // set by the loader
    std::optional<double> min;
    std::optional<double> max;
    std::vector<value> values;        // allowed: coerced to the field's type
    double max_outside = 0;           // range, allowed
    std::int64_t window_ms = 60000;   // JSON "window": one of quality.windows
    expectation_severity severity = expectation_severity::warn;

    /// "spend: null rate <= 0.1 per 1m", the expectation's name in answers, metrics and logs.
    std::string describe() const;

    bool operator==(const expectation_config&) const = default;
};

/// What the event time is when the event has none (JSON "event_time_fallback").
enum class time_fallback { none, kafka_timestamp };

struct feature_set_config {
    std::string name;                 // identifier: [a-z_][a-z0-9_]*, at most 48 chars
    /// The definition's version: raised for a breaking change, which then gets tables and Redis
    /// keys of its own (see storage_name) built from the topic by a backfill.
    std::int64_t version = 1;
    /// Reads of the set's bare name go to this version even when a newer one is live (JSON
    /// "serving"); otherwise to the newest live version.
    bool serving = false;
    /// Where a new consumer group of this set starts when PostgreSQL holds no offset for it (a
    /// version's backfill, a new set): the first message at or after this time (epoch ms); 0 =
    /// the earliest retained. JSON "backfill_from" (RFC 3339 or epoch ms).
    std::int64_t backfill_from_ms = 0;
    std::string topic;
    std::string key_field;            // JSON "key"
    std::string event_time_field;     // JSON "event_time"
    std::vector<field_config> fields; // in the order they appear in the file
    std::int64_t ttl_ms = 24LL * 3600 * 1000;  // JSON "ttl": "24h"; 0 = never expires
    std::vector<aggregation_config> aggregations;
    /// With aggregations: an event older than the key's newest event by more than this is a dead
    /// letter ("late"); within it, it updates the windows it belongs to. JSON "allowed_lateness".
    std::int64_t allowed_lateness_ms = 3600LL * 1000;
    std::vector<transform_config> transforms = {};  // in the order of the file
    dedup_config dedup = {};
    /// none: an event without an event time is a dead letter; kafka_timestamp: it takes the
    /// Kafka message's timestamp instead.
    time_fallback event_time_fallback = time_fallback::none;
    std::vector<expectation_config> expectations = {};  // in the order of the file

    /// The name of this version's tables and Redis keys: the set's name for version 1 (as before
    /// versions existed), "<name>_v<N>" for version N.
    std::string storage_name() const { return version == 1 ? name : name + "_v" + std::to_string(version); }
    /// "<name>@<N>", the address of this version on every read route.
    std::string versioned_name() const { return name + "@" + std::to_string(version); }
    /// How logs, metrics and dead letters name this version: the name for version 1, else "<name>@<N>".
    std::string display_name() const { return version == 1 ? name : versioned_name(); }

    /// The longest aggregation window (0 without aggregations): as-of lookups read this much history.
    std::int64_t widest_window_ms() const {
        std::int64_t widest = 0;
        for (const auto& a : aggregations) widest = widest < a.window_ms ? a.window_ms : widest;
        return widest;
    }
    /// How far back events still count for the aggregation state: the widest window plus the
    /// allowed lateness (the state is rebuilt from this much history).
    std::int64_t aggregation_horizon_ms() const { return widest_window_ms() + allowed_lateness_ms; }

    bool operator==(const feature_set_config&) const = default;
};

struct embedded_kafka_config {
    int brokers = 1;                  // mock cluster brokers
    int partitions = 4;               // partitions of each feature set's topic

    bool operator==(const embedded_kafka_config&) const = default;
};

struct kafka_config {
    std::string brokers = "127.0.0.1:9092";  // or "embedded"
    std::string group_id = "sluice";
    int consumer_threads = 1;
    std::int64_t max_message_bytes = 1048576;
    std::map<std::string, std::string> properties;  // passed to librdkafka as they are
    std::string dead_letter_topic;
    int poll_timeout_ms = 100;
    embedded_kafka_config embedded;
    /// Not a key of the file: the consumer group joined on the broker when it is not group_id (a
    /// feature set added by a live reload joins a group of its own, so the others keep their
    /// assignment, while its offsets are kept in PostgreSQL under group_id, where the next run's
    /// main consumer finds them). "" = group_id.
    std::string membership_group;

    bool is_embedded() const { return brokers == "embedded"; }
    const std::string& broker_group() const { return membership_group.empty() ? group_id : membership_group; }

    bool operator==(const kafka_config&) const = default;
};

struct pipeline_config {
    int preprocess_threads = 1;
    std::int64_t queue_capacity = 65536;
    std::int64_t batch_max_records = 5000;
    std::int64_t batch_linger_ms = 5;
    /// Batches written at once, each on a PostgreSQL connection of its own (1: one at a time).
    std::int64_t batches_in_flight = 1;
    double pause_watermark = 0.9;     // fraction of queue_capacity that pauses partitions
    double resume_watermark = 0.5;    // fraction below which they resume
    std::int64_t shutdown_timeout_ms = 30000;

    bool operator==(const pipeline_config&) const = default;
};

struct postgres_config {
    std::string dsn;
    int pool_size = 4;
    std::string schema = "sluice";
    /// Latest's upsert runs on a second connection while history is copied, and commits just
    /// before history and the offsets do (false, the default: everything in one transaction).
    bool parallel_latest = false;
    /// History also unique on the Kafka source (topic, partition, offset): a second guard besides
    /// the offsets' fencing, at an index entry per row (false, the default: the index is dropped).
    bool history_unique_index = false;

    bool operator==(const postgres_config&) const = default;
};

struct redis_config {
    std::string host = "127.0.0.1";
    int port = 6379;
    int pool_size = 4;
    std::string key_prefix = "sluice";
    std::string username;  // ACL user (Redis 6+); "" = the default user
    std::string password;
    int db = 0;
    int timeout_ms = 1000;

    bool operator==(const redis_config&) const = default;
};

struct api_key_config {
    std::string name;
    std::string sha256;               // lowercase hex of SHA-256(key)
    std::vector<std::string> scopes;  // "read", "write", "admin"

    bool operator==(const api_key_config&) const = default;
};

/// Optional TLS on the listener (JSON "http.tls"); both files empty = plain HTTP.
struct tls_config {
    std::string cert_file;            // PEM certificate chain
    std::string key_file;             // PEM private key
    bool enabled() const { return !cert_file.empty(); }

    bool operator==(const tls_config&) const = default;
};

/// Per-client token bucket (JSON "http.rate_limit"): clients are API keys, or remote addresses
/// when auth is off. requests_per_sec 0 = no limit.
struct rate_limit_config {
    double requests_per_sec = 0;
    double burst = 100;

    bool operator==(const rate_limit_config&) const = default;
};

struct http_config {
    std::string listen = "0.0.0.0:8080";
    int threads = 1;
    std::int64_t body_limit_bytes = 1048576;
    std::int64_t header_limit_bytes = 8192;
    std::int64_t read_timeout_ms = 10000;
    std::int64_t idle_timeout_ms = 60000;
    std::int64_t write_timeout_ms = 10000;  // a client taking no bytes of an answer this long is cut off
    int lookup_threads = 2;           // pool for Redis/PostgreSQL reads (never on io threads)
    int max_connections = 10000;      // open connections at most; more are accepted and closed at once
    std::int64_t max_lookup_keys = 1000;  // keys per POST /v1/features/lookup (and Feast entity rows)
    std::int64_t ingest_timeout_ms = 30000;  // POST /v1/ingest waits this long for durability, then 503
    tls_config tls;
    rate_limit_config rate_limit;
    std::vector<api_key_config> api_keys;  // JSON "auth": {"api_keys": [...]}

    bool operator==(const http_config&) const = default;
};

/// The in-memory index of latest values (JSON "memory"). Off: reads go to Redis, then PostgreSQL.
struct memory_config {
    bool enabled = true;
    // A batch's records go into memory when the writer takes the batch, before PostgreSQL
    // commits it (readable one commit sooner; memory is then at most one batch ahead of
    // PostgreSQL); false: only after the commit.
    bool before_commit = true;

    bool operator==(const memory_config&) const = default;
};

struct log_config {
    std::string level = "info";       // trace, debug, info, warn, error, critical, off
    std::string format = "text";      // text or json

    bool operator==(const log_config&) const = default;
};

struct generator_config {
    bool enabled = false;
    double events_per_sec = 50;
    int keys = 1000;

    bool operator==(const generator_config&) const = default;
};

/// The activity log (JSON "activity"): who did what, in PostgreSQL's <schema>.activity.
struct activity_config {
    std::int64_t retention_days = 90;     // rows older are pruned by the daemon, in small batches
    std::int64_t buffer_rows = 100000;    // rows held while PostgreSQL is away; more are counted as dropped
    /// Auth failures written one row each per minute, at most; the rest of the minute's are counted
    /// in one summary row per client address.
    std::int64_t auth_failures_per_minute = 20;

    bool operator==(const activity_config&) const = default;
};

/// A Feast feature service (JSON "feature_services"): a name for a list of features, read with
/// POST /get-online-features {"feature_service": name} and listed by `sluice feast-definitions`.
struct feature_service_config {
    std::string name;
    std::string description;
    std::vector<std::string> features;  // "set:field" or "set:aggregation" ("set@N:field" for a version)

    bool operator==(const feature_service_config&) const = default;
};

/// A Feast push source (JSON "push_sources"): POST /push {"push_source_name": name, "df": ...} writes
/// its rows to these feature sets, through the same validation and durability as /v1/ingest.
struct push_source_config {
    std::string name;
    std::vector<std::string> feature_sets;

    bool operator==(const push_source_config&) const = default;
};

/// Point-in-time training sets (JSON "training"): POST /v1/training-sets and `sluice export`.
struct training_config {
    std::int64_t max_concurrent = 2;             // exports running at once; more are answered 429
    std::int64_t body_limit_bytes = 4LL << 30;   // entity rows streamed in one request body
    std::int64_t chunk_rows = 5000;              // entity rows joined per PostgreSQL round trip
    std::int64_t statement_timeout_ms = 600000;  // bound of each chunk's statements (0: none)
    std::int64_t max_line_bytes = 1 << 20;       // longest entity row (an NDJSON line, a CSV record)

    bool operator==(const training_config&) const = default;
};

/// Data quality statistics (JSON "quality"): per feature set and field, over tumbling windows of
/// arrival time, kept in memory and written to PostgreSQL when a window closes.
struct quality_config {
    bool enabled = true;
    std::vector<std::int64_t> windows_ms = {60000, 3600000};  // JSON "windows": ["1m", "1h"]
    std::int64_t keep_windows = 60;   // closed windows per size kept in memory for the API

    bool operator==(const quality_config&) const = default;
};

/// Where a config came from: set by load_config_file, empty for a config loaded from text.
struct config_origin {
    std::string path;                 // as given on the command line
    std::string sha256;               // of the file's bytes
    std::int64_t loaded_at_ms = 0;    // wall clock

    bool operator==(const config_origin&) const = default;
};

struct config {
    /// The environment this daemon runs as ("sandbox", "staging", "production" or a name): it owns
    /// the PostgreSQL schema and the Redis prefix it first ran against, and no other may use them.
    std::string environment = "default";
    kafka_config kafka;
    std::vector<feature_set_config> feature_sets;
    pipeline_config pipeline;
    std::optional<postgres_config> postgres;  // absent: PostgreSQL is not used
    std::optional<redis_config> redis;        // absent: Redis is not used
    http_config http;
    memory_config memory;
    log_config log;
    generator_config generator;
    activity_config activity;
    quality_config quality;
    training_config training;
    std::vector<feature_service_config> feature_services;
    std::vector<push_source_config> push_sources;
    config_origin origin;             // not a key of the file

    /// Index of the feature set with this name, or -1.
    int find_set(const std::string& name) const;

    bool operator==(const config&) const = default;
};

}  // namespace sluice
