#pragma once
// What the HTTP layer needs from the rest of the daemon, as interfaces.

#include <atomic>
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
#include "sluice/config/definition.hpp"
#include "sluice/config/reload.hpp"
#include "sluice/core/lookup_pool.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"
#include "sluice/ingest/push_source.hpp"
#include "sluice/query/reader.hpp"
#include "sluice/query/training_set.hpp"
#include "sluice/store/activity_log.hpp"
#include "sluice/store/quality_monitor.hpp"

namespace sluice {

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
    /// What is worth knowing without making the daemon unready (e.g. activity rows waiting).
    virtual std::vector<std::string> readiness_notes() const { return {}; }
};

/// The registry's newest revision of each version of each set, as the daemon last read it (the
/// catalog shows them); empty without PostgreSQL.
/// How far a version's backfill has come (the catalog and the status page show it).
struct backfill_progress {
    definition_state state = definition_state::backfilling;
    std::int64_t done = 0;    // messages durable from the partitions' starts
    std::int64_t to_do = 0;   // messages from there to the partitions' ends
    double rate = 0;          // messages made durable per second, lately
    double eta_s = -1;        // to_do / rate; -1 when unknown
};

class definition_source {
public:
    virtual ~definition_source() = default;
    virtual std::vector<registered_definition> definitions() const = 0;
    /// The backfill of a version > 1 running here; nullopt for others (and before it is known).
    virtual std::optional<backfill_progress> backfill(std::uint32_t set_index) const = 0;
};

/// Which version of a set its bare name reads: the one the config pins ("serving": true), else the
/// newest live one (a version whose backfill has caught up), else the oldest running. "S@N" names
/// version N. Flipped by the daemon as backfills catch up; read by every handler (lock-free).
class version_switch {
public:
    explicit version_switch(const config& cfg) : cfg_(cfg), live_(cfg.feature_sets.size()) {
        for (auto& l : live_) l.store(true);
    }
    void set_live(std::uint32_t set_index, bool live) { live_[set_index].store(live); }
    bool live(std::uint32_t set_index) const { return set_index < live_.size() && live_[set_index].load(); }
    /// The sets it switches between: the start's (sets added by a live reload come after them).
    std::size_t size() const { return live_.size(); }
    /// The set index a name addresses ("user_activity" or "user_activity@2"), or -1.
    int resolve(std::string_view name) const;

private:
    const config& cfg_;
    std::vector<std::atomic<bool>> live_;
};

/// Where the HTTP layer records who did what (the activity log, sluice/store/activity_log.hpp).
class activity_recorder {
public:
    virtual ~activity_recorder() = default;
    virtual void record(activity_event e) = 0;
    virtual void auth_failure(const std::string& client, const std::string& route, const std::string& reason,
                              const std::string& request_id) = 0;
    /// GET /v1/admin/activity (blocks on PostgreSQL: call it from a lookup thread).
    virtual result<activity_page> query(const activity_query& q) = 0;
};

/// The running config and its reload, for the admin routes.
class admin_source {
public:
    virtual ~admin_source() = default;
    /// Re-reads the config file and applies what can change live (see sluice/config/reload.hpp);
    /// `done` is called once, from another thread, with what happened.
    virtual void reload(std::string actor, std::string request_id, std::function<void(reload_outcome)> done) = 0;
    /// The effective config (what runs now) and the changes a restart would still apply.
    virtual std::shared_ptr<const config> running() const = 0;
    virtual std::vector<config_change> pending_restart() const = 0;
};

/// Data quality for GET /v1/feature-sets/{set}/quality (sluice/store/quality_monitor.hpp).
class quality_source {
public:
    virtual ~quality_source() = default;
    /// The windows and expectations of a set (those starting in [from, to) when given).
    virtual nlohmann::ordered_json report(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const = 0;
    /// The gate over [from, to). May block on PostgreSQL: call from a lookup thread.
    virtual result<quality_gate> gate(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const = 0;
};

/// The quarantine's review and release (GET /v1/admin/quarantine/{set}, POST .../release).
class quarantine_source {
public:
    virtual ~quarantine_source() = default;
    /// The held (or released) rows, newest first. Blocks on PostgreSQL: call from a lookup thread.
    virtual result<nlohmann::json> held(std::uint32_t set_index, bool released, std::int64_t limit) = 0;
    /// Releases the rows `ids` (every held row, up to 1000, when empty) back into the pipeline, exactly
    /// once; `done` is called once, from another thread, with what was released.
    virtual void release(std::uint32_t set_index, std::vector<std::int64_t> ids, std::string actor,
                         std::function<void(result<nlohmann::json>)> done) = 0;
};

/// One exchange whose answer is streamed (chunked transfer) and whose request body may be read as it
/// arrives (POST /v1/training-sets). Every call may come from any thread; the session does the
/// writing on its own thread.
class answer_stream {
public:
    virtual ~answer_stream() = default;
    /// Body bytes of the request as they arrive, into buf: blocks until some are here; 0 at the end.
    /// A failure: the body passed its limit (kind permanent, message says so), the client went
    /// away or stopped sending. Only for a streamed body; otherwise it returns 0 at once.
    virtual result<std::size_t> read_body(char* buf, std::size_t cap) = 0;
    /// An ordinary JSON error answer ({"error": ...}), instead of a stream; only before begin().
    virtual void refuse(unsigned status, std::string code, std::string message) = 0;
    /// Starts the answer: 200 with this content type and headers; `trailers` names the trailer
    /// fields finish() will send.
    virtual void begin(std::string content_type, std::vector<std::pair<std::string, std::string>> headers,
                       std::vector<std::string> trailers) = 0;
    /// The next piece of the body. Blocks while more than a few MiB wait to be sent; false when
    /// the client has gone (stop producing).
    virtual bool write(std::string_view bytes) = 0;
    /// Ends the answer, with its trailers.
    virtual void finish(std::vector<std::pair<std::string, std::string>> trailers) = 0;
    /// Ends a begun answer as broken: the connection is closed without the last chunk, so the
    /// client sees an incomplete transfer rather than a short file.
    virtual void abort(const std::string& why) = 0;
};

/// Where a training set's entity rows come from.
struct training_input {
    enum class kind { body, inline_rows, query, table };
    kind from = kind::body;
    table_format format = table_format::ndjson;  // of the body
    std::string text;                             // inline rows (NDJSON), the query, or the table
};

/// Runs training-set exports (POST /v1/training-sets), each on a thread of its own with its own
/// PostgreSQL connection, at most training.max_concurrent at once (more are refused with 429).
class training_source {
public:
    virtual ~training_source() = default;
    /// Starts the export; the answer (or refusal) goes to `out`. cfg: the config the plan resolved
    /// against (kept by the export while it runs).
    virtual void start(std::shared_ptr<const config> cfg, training_plan plan, training_input input,
                       std::shared_ptr<answer_stream> out, std::string actor, std::string request_id) = 0;
};

/// Everything a handler may use. Owned by the app; outlives the HTTP server.
struct serve_context {
    const config* cfg = nullptr;
    feature_reader* reader = nullptr;
    health_source* health = nullptr;
    history_reader* history = nullptr;  // null: no PostgreSQL, history answers 503
    ingest_sink* ingest = nullptr;      // null: push ingestion answers 503
    telemetry* metrics = nullptr;       // null: no figures, /metrics answers 503
    const definition_source* definitions = nullptr;  // null: no registry (no PostgreSQL)
    const version_switch* versions = nullptr;         // null: every name is its version 1
    activity_recorder* activity = nullptr;            // null: no activity log (no PostgreSQL)
    admin_source* admin = nullptr;                    // null: no reload, no /v1/admin/config
    lookup_pool* lookups = nullptr;                   // where blocking admin work runs; null: inline
    const quality_source* quality = nullptr;          // null: quality.enabled is false
    quarantine_source* quarantine = nullptr;          // null: no PostgreSQL
    training_source* training = nullptr;              // null: no PostgreSQL, training sets answer 503
};

}  // namespace sluice
