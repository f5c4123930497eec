#pragma once
// The read policy: latest values from the memory index, then Redis, then PostgreSQL, with the
// aggregation values as of now where this instance keeps them current.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/lookup_pool.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/latest_cache.hpp"
#include "sluice/preprocess/aggregator.hpp"
#include "sluice/query/reader.hpp"
#include "sluice/store/memory_index.hpp"
#include "sluice/store/redis_io_reader.hpp"

namespace sluice {

/// What a read is told when the lookup pool (or the single-key reads waiting for it) is full.
inline constexpr const char* lookup_backlog_full = "lookup backlog is full; try again";

/// A single-key read answers from memory on the calling (io) thread; on a miss it asks Redis
/// asynchronously on that thread (io_reader, when given), then PostgreSQL on the lookup pool for
/// what Redis has not. Without io_reader, single-key misses wait together and one pool task reads
/// them all in one Redis pipeline per set. Batch reads take memory's hits inline and read the
/// misses in one pool task. As-of and history read PostgreSQL on the pool. A full pool answers
/// with lookup_backlog_full (503). Stored aggregation values are replaced by the aggregator's
/// values as of now when the key is this instance's (set_owner). Owned by the app; every store
/// and the pool outlive it; callbacks run on the calling thread or on a pool thread.
class tiered_reader final : public feature_reader, public history_reader {
public:
    /// cache, durable and io_reader may be null (that store is not configured); aggregators has
    /// one entry per set, null for a set without aggregations.
    tiered_reader(const config& cfg, memory_index& memory, latest_cache* cache, durable_store* durable,
                  lookup_pool& pool, std::size_t max_waiting, std::vector<aggregator*> aggregators,
                  std::unique_ptr<redis_io_reader> io_reader);
    ~tiered_reader() override;

    void get_latest(std::uint32_t set_index, std::string key, latest_callback done) override;
    void get_latest_many(std::uint32_t set_index, std::vector<std::string> keys, std::optional<std::int64_t> as_of_ms,
                         latest_many_callback done) override;
    void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) override;
    void get_history(history_request req, history_callback done) override;

    /// Which partitions' aggregation state is current here (owned and caught up). Without it,
    /// every key's state is taken as current. Set before serving.
    void set_owner(std::function<bool(const std::string&, std::int32_t)> owns) { owns_ = std::move(owns); }

private:
    // A single-key read that missed memory, waiting for the stores.
    struct waiting_read {
        std::uint32_t set_index;
        std::string key;
        latest_callback done;
    };
    void schedule_drain();
    void drain_waiting();
    void read_stores(std::uint32_t set_index, const std::vector<std::string>& keys, const std::vector<std::size_t>& which,
                     std::vector<result<std::optional<latest_entry>>>& answers) const;
    result<std::optional<latest_entry>> read_durable(std::uint32_t set_index, const std::string& key,
                                                     const std::string& redis_error) const;
    void with_aggregations_now(std::uint32_t set_index, latest_entry& e) const;

    const config& cfg_;
    memory_index& memory_;
    latest_cache* cache_;
    durable_store* durable_;
    lookup_pool& pool_;
    std::unique_ptr<redis_io_reader> redis_io_;  // with Redis: single-key reads on the io threads
    const std::size_t max_waiting_;  // single-key reads waiting at most (more: 503, as a full pool)
    std::mutex waiting_mutex_;
    std::vector<waiting_read> waiting_;
    bool draining_ = false;  // a drain task is queued or running
    std::vector<aggregator*> aggregators_;
    std::function<bool(const std::string&, std::int32_t)> owns_;
};

}  // namespace sluice
