#pragma once
// The activity log: who did what, append-only, in PostgreSQL's <schema>.activity.
//
// Rows are taken by record() without waiting (any thread; never blocks on PostgreSQL), held in a
// bounded buffer and written in order by one thread of the log's own. While PostgreSQL is away
// they wait in the buffer and are written, still in order, when it returns; rows beyond
// activity.buffer_rows are counted as dropped, and the next row written after a gap is preceded by
// one "activity_dropped" row saying how many were lost. A trigger refuses UPDATE of any row and
// DELETE of rows younger than the retention (so the daemon's own role cannot rewrite recent
// history); the daemon prunes rows older than activity.retention_days in small batches.
//
// Auth failures go through auth_failure(): the first activity.auth_failures_per_minute of each
// minute are rows of their own, the rest are counted per client address and written as one
// "auth_failures" summary row per client when the minute ends, so a flood of bad keys costs a
// bounded number of rows and still says how many there were.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/config.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// One thing that happened. Every row has a time, an actor, an action, a target and an outcome.
struct activity_event {
    std::int64_t at_ms = 0;           // wall clock, epoch ms; record() sets it when 0
    std::string actor = "system";     // the API key's name (never the key), "system", or "anonymous"
    std::string action;               // e.g. "start", "stop", "reload", "admin_request", "ingest", "auth_failure"
    std::string target;               // what it acted on: a route, a feature set, a config file
    std::string outcome = "ok";       // e.g. "ok", "refused", "failed", "partial"
    std::string request_id;           // the X-Request-Id of the request behind it; "" for the daemon's own
    std::string client;               // remote address of the request; "" for the daemon's own
    nlohmann::json detail = nlohmann::json::object();  // anything else, as a JSON object
};

/// A row as stored: the event and its id (ascending in the order rows were recorded).
struct activity_row {
    std::int64_t id = 0;
    activity_event event;
};

/// GET /v1/admin/activity's filters. Newest first.
struct activity_query {
    std::int64_t since_ms = 0;        // at >= since (0 = no bound)
    std::int64_t until_ms = 0;        // at < until (0 = no bound)
    std::string actor;                // "" = any
    std::string action;               // "" = any
    std::int64_t limit = 100;         // 1..1000
    std::int64_t before_id = 0;       // the cursor: rows with id < before_id (0 = from the newest)
};

struct activity_page {
    std::vector<activity_row> rows;
    /// Pass as before_id for the next (older) page; nullopt when this page reached the oldest row.
    std::optional<std::int64_t> next_before_id;
};

/// Figures for /metrics and /readyz.
struct activity_figures {
    std::uint64_t recorded = 0;       // rows taken by record() (summaries count once)
    std::uint64_t written = 0;        // rows committed to PostgreSQL
    std::uint64_t dropped = 0;        // rows lost because the buffer was full
    std::uint64_t buffered = 0;       // rows waiting to be written now
    std::uint64_t pruned = 0;         // rows deleted by retention
    std::string last_error;           // the last write's failure; "" after a success
};

class activity_log {
public:
    /// cfg.postgres must be set (the table lives in cfg.postgres->schema).
    activity_log(const postgres_config& pg, const activity_config& cfg);
    ~activity_log();  // stop(2 s) when still running
    activity_log(const activity_log&) = delete;
    activity_log& operator=(const activity_log&) = delete;

    /// Creates the table, its indexes and the trigger (idempotent; the retention bound of the
    /// trigger follows cfg.retention_days).
    status prepare();
    /// Starts the writer thread (writes, retries every second while PostgreSQL is away, ends each
    /// minute's auth-failure counts, prunes once an hour and once at start).
    void start();
    /// Writes what is buffered (waiting at most `timeout` for PostgreSQL), then ends the thread.
    /// False when rows were left unwritten.
    bool stop(std::chrono::milliseconds timeout);

    /// Takes one row; never blocks on PostgreSQL. Safe from any thread.
    void record(activity_event e);
    /// One failed authentication (aggregated per minute beyond the per-minute allowance; see above).
    void auth_failure(const std::string& client, const std::string& route, const std::string& reason,
                      const std::string& request_id);

    /// Reads rows from PostgreSQL (rows still in the buffer are not seen yet).
    result<activity_page> query(const activity_query& q);
    /// Deletes at most `batch` rows older than the retention; the number deleted.
    result<std::int64_t> prune_once(std::int64_t batch = 1000);
    /// Waits until every row recorded so far is written or `timeout` passes; true when written.
    bool flush(std::chrono::milliseconds timeout);

    activity_figures figures() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice
