#pragma once
// Training sets outside the HTTP route: the exports the daemon runs for POST /v1/training-sets
// (training_exports), and `sluice export`. Both run the same engine (sluice/query/training_set.hpp).

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sluice/serve/services.hpp"

namespace sluice {

/// The daemon's training_source: each export on a thread of its own (at a lower CPU priority than
/// the serving threads) with its own PostgreSQL connections; at most training.max_concurrent at
/// once. Each export is an activity row (who, which features, how many rows, how it ended).
class training_exports final : public training_source {
public:
    training_exports(std::string dsn, activity_recorder* activity);
    ~training_exports() override;
    void start(std::shared_ptr<const config> cfg, training_plan plan, training_input input,
               std::shared_ptr<answer_stream> out, std::string actor, std::string request_id) override;
    /// Asks running exports to stop (their next write fails) and joins them.
    void stop();
    /// Exports running now.
    std::size_t running() const { return running_.load(); }

private:
    void run(std::shared_ptr<const config> cfg, training_plan plan, training_input input,
             std::shared_ptr<answer_stream> out, std::string actor, std::string request_id);

    std::string dsn_;
    activity_recorder* activity_;
    std::atomic<std::size_t> running_{0};
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::list<std::thread> threads_;
    std::list<std::thread::id> finished_;
};

struct export_options {
    std::string config_path;
    std::vector<std::string> features;
    std::string entities;       // a file (.csv or .ndjson/.jsonl), or "-" for stdin
    std::string entity_format;  // "csv" | "ndjson"; empty: from the file's name (stdin: ndjson)
    std::string entity_query;   // or a PostgreSQL query
    std::string entity_table;   // or a table
    std::string output;         // FILE.csv | FILE.ndjson, or "-" for stdout
    std::string format;         // "csv" | "ndjson"; empty: from the output's name
    bool full_feature_names = false;
    bool as_known_at = false;
    bool statuses = false;
    std::string timestamp_column = "event_timestamp";
    bool progress = true;  // a progress bar on stderr when it is a terminal
};

/// `sluice export`: the training set written to a file atomically (a temporary file beside it,
/// renamed when whole), a progress bar on a terminal and a summary line at the end. Exit 0 written,
/// 1 error (nothing written to the output's name).
int run_export(const export_options& options);

}  // namespace sluice
