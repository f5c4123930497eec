#pragma once
// Counters the pipeline keeps for the catalog and /metrics: plain atomics, written by the stage
// that knows (the store writer after a commit), read at any time by the API.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "sluice/core/stage_trace.hpp"

namespace sluice {

/// One feature set's figures since start.
struct set_counters {
    std::atomic<std::uint64_t> written{0};       // records committed (Kafka and push)
    std::atomic<std::uint64_t> pushed{0};        // of those, through POST /v1/ingest
    std::atomic<std::uint64_t> dead_letters{0};  // rejected: dead letters committed
    std::atomic<std::uint64_t> skipped{0};       // filtered out or duplicate event ids
    std::atomic<std::int64_t> last_event_time_ms{-1};  // newest event time committed
    std::atomic<std::int64_t> last_write_ms{-1};       // wall time of the last commit with a record

    /// Raises last_event_time_ms to t if t is newer.
    void saw_event_time(std::int64_t t) {
        auto cur = last_event_time_ms.load(std::memory_order_relaxed);
        while (t > cur && !last_event_time_ms.compare_exchange_weak(cur, t, std::memory_order_relaxed)) {
        }
    }
};

/// Every set's counters, plus the stores' failures. Owned by the app; outlives the stages.
class pipeline_stats {
public:
    explicit pipeline_stats(std::size_t sets) {
        for (std::size_t i = 0; i < sets; ++i) sets_.push_back(std::make_unique<set_counters>());
    }
    set_counters& set(std::size_t index) { return *sets_[index]; }
    const set_counters& set(std::size_t index) const { return *sets_[index]; }
    std::size_t sets() const { return sets_.size(); }

    std::atomic<std::uint64_t> postgres_errors{0};     // failed write attempts (each retry counts)
    std::atomic<std::uint64_t> redis_errors{0};        // failed cache updates
    std::atomic<std::uint64_t> dead_letter_topic_errors{0};
    std::atomic<std::uint64_t> batches{0};             // batches committed
    std::atomic<std::uint64_t> fenced_batches{0};      // writes rolled back: another writer held a partition
    stage_trace trace;                                 // where traced records' time goes

    /// The traced records of a batch reached `stage` now.
    void trace_reached(trace_stage stage, const std::vector<record>& records) {
        std::int64_t now = 0;
        for (const auto& r : records) {
            if (r.trace.produced_ms < 0) continue;
            if (!now) now = now_us();
            trace.observe(stage, r.trace.produced_ms, now);
        }
    }

private:
    std::vector<std::unique_ptr<set_counters>> sets_;
};

}  // namespace sluice
