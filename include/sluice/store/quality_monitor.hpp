#pragma once
// Data quality, watched as the data flows: per feature set and field, statistics over tumbling
// windows of arrival time (quality.windows, by default 1 minute and 1 hour), the set's
// expectations checked when a window closes, drift against a baseline window, and the windows
// kept in memory and written to PostgreSQL (<schema>.quality_windows).
//
// What a window holds, per set: records written, dead letters by reason (late events among them),
// records skipped (filters, duplicate ids), and freshness (arrival - event time) as a quantile
// sketch; per field: values and nulls; for int and double fields min, max, mean, standard
// deviation and p50/p90/p99 from a quantile sketch (relative error 1 %: sluice/core/sketches.hpp);
// for string, int and bool fields the top values with counts and the estimated distinct count.
//
// Windows are of arrival time: a window [start, start + size) holds what the writer committed in
// it, and closes when the clock passes its end. The first window of each size after a start is
// "partial" (what came before the start is not in it): its record count is not checked against
// expectations. Windows written before a restart stay in PostgreSQL, and the last
// quality.keep_windows of each size are read back at start.
//
// The baseline of drift is, per set and window size, the first full window with records after the
// set's expectations first ran (<schema>.quality_baselines; delete its row to capture a new one):
// numeric fields are compared over the baseline's deciles, categorical ones over its ten most
// frequent values and "other", by the population stability index
// PSI = sum((a - e) * ln(a / e)) with shares floored at 0.0001.
//
// observe() is called by the store writers after each committed batch (any writer thread); one
// thread of the monitor's own closes windows, checks expectations and writes to PostgreSQL.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/config/config.hpp"
#include "sluice/core/pipeline_stats.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// One expectation's verdict on one closed window.
struct expectation_result {
    std::string id;           // "null_rate:spend@1m": stable, for metrics and alerts
    std::string description;  // expectation_config::describe()
    bool evaluated = false;   // false: nothing to judge (no values, a partial window, no baseline yet)
    bool passed = true;
    double observed = 0;      // the value compared (share, mean, count, PSI, ms)
    std::string note;         // why not evaluated, or what failed
};

/// A closed window as the API shows it.
struct quality_window {
    std::string feature_set;  // display name
    std::int64_t size_ms = 0;
    std::int64_t start_ms = 0;
    bool partial = false;
    std::uint64_t records = 0;
    nlohmann::json stats;     // the summary (see quality_monitor.cpp: summarize)
    std::vector<expectation_result> results;
};

/// A set's quality over a time range: pass when no expectation failed in a window closed in it.
struct quality_gate {
    bool passed = true;
    std::int64_t windows = 0;              // closed windows judged
    std::vector<std::string> failures;     // "2026-12-08T10:01:00Z 1m: spend: null rate at most 0.1 ... observed 0.3"
};

class quality_monitor {
public:
    /// cfg and stats outlive the monitor. Without cfg.postgres nothing is written or read back.
    quality_monitor(const config& cfg, const pipeline_stats* stats);
    ~quality_monitor();
    quality_monitor(const quality_monitor&) = delete;
    quality_monitor& operator=(const quality_monitor&) = delete;

    /// Creates the tables and reads back the last windows and the baselines (no-op without PostgreSQL).
    status prepare();
    void start();
    /// Closes and writes the open windows (marked partial: they did not run their length) and ends
    /// the thread.
    void stop();

    /// A committed batch's records and dead letters (any thread).
    void observe(const write_batch& batch);

    /// A live reload's expectations (same sets, same fields; new sets are not watched until a restart).
    void reconfigure(std::shared_ptr<const config> cfg);

    /// GET /v1/feature-sets/{set}/quality: the open windows, the recent closed ones (newest first,
    /// those starting in [from, to) when given), the expectations with their last verdict.
    nlohmann::ordered_json report(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const;
    /// The gate over [from, to): from memory, or PostgreSQL for what memory no longer holds.
    result<quality_gate> gate(std::uint32_t set_index, std::int64_t from_ms, std::int64_t to_ms) const;

    /// sluice_quality_* families in the Prometheus text format (env: `environment="..."`).
    void append_metrics(std::string& out, const std::string& env) const;

    /// Told of each expectation whose verdict changes (pass -> fail, fail -> pass), for the activity log.
    void on_change(std::function<void(const std::string& set, const expectation_result& r, std::int64_t window_start)> f);

    /// Closes every window whose end has passed now_ms (the thread calls it; tests may too).
    void close_due(std::int64_t now_ms);

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

/// The gate from PostgreSQL alone (for `sluice quality` and `sluice promote`, without a daemon).
result<quality_gate> quality_gate_from_postgres(const config& cfg, const feature_set_config& set, std::int64_t from_ms,
                                                std::int64_t to_ms);

}  // namespace sluice
