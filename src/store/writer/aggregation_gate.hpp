#pragma once
// The store writer's aggregation gate: what a batch's records do to the aggregation state before
// the batch is written, and the catch-up of partitions taken over from another instance.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "retry.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/pipeline_stats.hpp"
#include "sluice/core/ports/aggregation_state.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/offsets.hpp"

namespace sluice::writer {

/// Keeps the aggregation state in step with what is written. Each new record of a batch (not a
/// re-delivery: its offset is past what this instance has committed) is added to its set's
/// aggregator, or becomes a dead letter when it is later than allowed_lateness; every record then
/// carries its key's aggregation values after its fields. A partition taken over is caught up
/// from the history rows other instances wrote for it, and its keys are not served until then; a
/// partition given up has its state dropped.
/// Owned by store_writer. partitions_changed() and catching_up() run on any thread (a consumer
/// thread, the lookup threads); everything else on the writer thread, or before it starts.
class aggregation_gate {
public:
    /// cfg, durable (may be null) and retry outlive the gate.
    aggregation_gate(const config& cfg, durable_store* durable, retrier& retry);

    /// The aggregation state per feature set (nullptr for a set without aggregations); none at
    /// all leaves the batches as they are. Before the writer starts.
    void set_aggregators(std::vector<aggregation_state*> aggregators) { aggregators_ = std::move(aggregators); }
    /// Where a failed catch-up is counted (postgres_errors); may stay null. Before the writer starts.
    void set_stats(pipeline_stats* stats) { stats_ = stats; }
    bool enabled() const { return !aggregators_.empty(); }

    /// The offsets this group committed already (from PostgreSQL, at start): a record below
    /// them is a re-delivery, aggregated before.
    void seed(const std::vector<partition_offset>& committed);
    /// The batch with these offsets is durable.
    void committed(const std::vector<partition_offset>& offsets);

    /// Queues partitions taken over (next_offset: where consumption resumes; -1 unknown) or given
    /// up; they are not served from this state until apply_partition_changes() caught them up.
    void partitions_changed(const std::vector<partition_offset>& partitions, bool revoked);
    /// True while a taken-over partition's state is not caught up yet. Any thread, lock-free
    /// while no partition is catching up.
    bool catching_up(const std::string& topic, std::int32_t partition) const;
    /// Applies queued partition changes: drops the state of partitions given up, catches up the
    /// ones taken over from history (held, retried, until PostgreSQL answers).
    void apply_partition_changes();

    /// Dead-letters late records, feeds the aggregators, appends aggregation values. Only when
    /// enabled().
    void aggregate(write_batch& batch);

private:
    struct partition_change {
        partition_offset where;
        bool revoked = false;
    };
    using topic_partition = std::pair<std::string, std::int32_t>;

    const config& cfg_;
    durable_store* durable_;
    retrier& retry_;
    std::vector<aggregation_state*> aggregators_;
    pipeline_stats* stats_ = nullptr;
    mutable std::mutex changes_mutex_;
    std::vector<partition_change> changes_;
    std::set<topic_partition> catching_up_;     // assigned, not caught up yet
    std::atomic<bool> any_catching_up_{false};  // !catching_up_.empty(), read without the lock by every read
    std::map<topic_partition, std::int64_t> committed_next_;  // writer thread only
};

}  // namespace sluice::writer
