#pragma once
// Metrics for /metrics (Prometheus text, rendered by prometheus-cpp) and figures for the catalog.
// Request metrics are pushed by the HTTP layer as requests finish; pipeline metrics are pulled
// from the stages' own counters when /metrics is scraped.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/pipeline_stats.hpp"
#include "sluice/serve/services.hpp"

namespace sluice {

/// What the telemetry reads from the running stages. Every function may be empty.
struct telemetry_sources {
    std::function<std::int64_t(std::uint32_t set)> consumer_lag;  // -1 unknown
    std::function<std::uint64_t()> messages_consumed;             // from Kafka, all sets
    std::function<std::size_t()> preprocess_queue_depth;          // consumers → preprocess workers
    std::function<std::size_t()> write_queue_depth;               // workers → store writer
    std::function<std::size_t()> queue_capacity;                  // of all queues of one stage
    std::function<std::size_t(std::uint32_t set)> memory_keys;    // keys in the memory index
    /// Appends the daemon's own families (reloads, the activity log) in the text format.
    std::function<void(std::string& out)> more_metrics;
};

/// The catalog's figures of one set from the pipeline's counters (consumer_lag left unknown).
feature_set_figures figures_of(const pipeline_stats& stats, std::uint32_t set_index);

class prometheus_telemetry final : public telemetry {
public:
    prometheus_telemetry(const config& cfg, const pipeline_stats& stats, telemetry_sources sources);
    ~prometheus_telemetry() override;

    feature_set_figures figures(std::uint32_t set_index) const override;
    void observe_request(std::string_view route, std::string_view method, int status, double seconds) override;
    std::string render_metrics() override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice
