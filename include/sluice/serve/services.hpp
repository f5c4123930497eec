#pragma once
// What the HTTP layer needs from the rest of the daemon, as interfaces.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// Reads latest state for the API: memory index, then Redis, then PostgreSQL. get_latest may
/// answer inline (memory hit) or later from the lookup pool; done is called exactly once, on any
/// thread. Implementations never block the calling (io) thread.
class feature_reader {
public:
    using latest_callback = std::function<void(result<std::optional<latest_entry>>)>;
    virtual ~feature_reader() = default;
    virtual void get_latest(std::uint32_t set_index, std::string key, latest_callback done) = 0;
    /// The key as it was at at_ms (point in time, from history): the newest event at or before
    /// it, and the aggregations computed over history at that moment. Same threading as get_latest.
    virtual void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) {
        (void)set_index, (void)key, (void)at_ms;
        done(result<std::optional<latest_entry>>::failure("as_of lookups need PostgreSQL"));
    }
    /// Batch reads (POST /v1/features/lookup, the Feast route): one answer per key, in the order
    /// asked, latest or as of as_of_ms. done is called exactly once, on any thread. The default
    /// fans out to get_latest / get_as_of; readers with a cheaper batch path override it.
    using latest_many_callback = std::function<void(std::vector<result<std::optional<latest_entry>>>)>;
    virtual void get_latest_many(std::uint32_t set_index, std::vector<std::string> keys,
                                 std::optional<std::int64_t> as_of_ms, latest_many_callback done);
};

/// Where a page of history ends: the next page starts strictly after this row (rows are ordered
/// newest event time first, then by the row's id, descending).
struct history_cursor {
    std::int64_t event_time_ms = 0;
    std::int64_t id = 0;
};

/// GET /v1/features/{set}/{key}/history: rows with from_ms <= event time < to_ms.
struct history_request {
    std::uint32_t set_index = 0;
    std::string key;
    std::int64_t from_ms = 0;
    std::int64_t to_ms = 0;
    std::size_t limit = 100;
    std::optional<history_cursor> after;
};

struct history_page {
    std::vector<latest_entry> records;  // newest first; values in the set's declared field order
    std::optional<history_cursor> next;  // set when more rows may follow
};

/// History reads (PostgreSQL), on the lookup pool like every store read.
class history_reader {
public:
    using history_callback = std::function<void(result<history_page>)>;
    virtual ~history_reader() = default;
    virtual void get_history(history_request req, history_callback done) = 0;
};

/// POST /v1/ingest/{set}: the same validation as Kafka messages, then the same writer.
struct push_outcome {
    std::size_t accepted = 0;  // valid records (written, or deliberately skipped)
    std::size_t skipped = 0;   // of the accepted: left out by a filter or as a duplicate event id
    std::vector<std::pair<std::size_t, std::string>> errors;  // (index in the request, reason): rejected
};

class ingest_sink {
public:
    using push_callback = std::function<void(result<push_outcome>)>;
    virtual ~ingest_sink() = default;
    /// Validates every payload (one JSON object each) and writes the valid ones; done is called
    /// once, on any thread, after they are durable (or with a failure: nothing was acknowledged).
    virtual void push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) = 0;
};

/// Live figures of one feature set, for the catalog and the status page.
struct feature_set_figures {
    std::uint64_t records_in = 0;       // records written to the stores (Kafka and push)
    std::uint64_t rejected = 0;         // dead letters
    std::uint64_t skipped = 0;          // filtered out or duplicate event ids
    std::int64_t last_event_time_ms = -1;  // newest event time written; -1 = none yet
    std::int64_t last_write_ms = -1;    // wall time of the last write; -1 = none yet
    std::int64_t consumer_lag = -1;     // messages behind the partitions' ends; -1 = unknown
};

/// Metrics and figures: counted by the pipeline, rendered for /metrics and the catalog.
class telemetry {
public:
    virtual ~telemetry() = default;
    virtual feature_set_figures figures(std::uint32_t set_index) const = 0;
    /// One answered request: the route's pattern ("/v1/features/{set}/{key}"; "unmatched" when no
    /// route matched), the method, the status, and seconds from the request's arrival to its answer.
    virtual void observe_request(std::string_view route, std::string_view method, int status, double seconds) = 0;
    /// Every metric in the Prometheus text format.
    virtual std::string render_metrics() = 0;
};

/// Readiness as /readyz reports it: empty when ready, else one reason per failing part.
class health_source {
public:
    virtual ~health_source() = default;
    virtual std::vector<std::string> not_ready_reasons() const = 0;
};

/// Everything a handler may use. Owned by the app; outlives the HTTP server.
struct serve_context {
    const config* cfg = nullptr;
    feature_reader* reader = nullptr;
    health_source* health = nullptr;
    history_reader* history = nullptr;  // null: no PostgreSQL, history answers 503
    ingest_sink* ingest = nullptr;      // null: push ingestion answers 503
    telemetry* metrics = nullptr;       // null: no figures, /metrics answers 503
};

}  // namespace sluice
