#pragma once
// The store writer's cache thread: what happens to a batch once it is durable in PostgreSQL.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "pending_push.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/pipeline_stats.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/latest_cache.hpp"
#include "sluice/core/ports/offsets.hpp"
#include "sluice/store/memory_index.hpp"

namespace sluice::writer {

/// A batch that is durable in PostgreSQL, on its way to Redis, the offset sink and its pushes.
struct durable_batch {
    write_batch batch;
    std::vector<pending_push> pushes;
    std::vector<const record*> newest;  // the newest record of each key (into batch.records)
};

/// Publishes durable batches in commit order on a thread of its own: the newest record of each
/// key to Redis, then the batch's offsets to the offset sink (they are durable), then the answers
/// to its pushes. PostgreSQL writes batch n + 1 while Redis takes batch n; when Redis falls
/// behind, the batches that wait meanwhile (up to 8; the writer blocks on more) go to Redis in one
/// update, each key once with its newest record, so neither the writer nor memory waits for Redis. When a Redis update fails, Redis is
/// marked stale: updates stop until it answers again, then every latest row PostgreSQL changed
/// since the failure (a minute of margin) is written back with the event-time guard (from the
/// memory index when there is no PostgreSQL). At start, Redis is brought up to date with what
/// changed last before it, in case a crash fell between a commit and its Redis update.
/// Owned by store_writer; hand_off() and close() run on the writer thread, the rest on the cache
/// thread it starts.
class cache_publisher {
public:
    /// Everything given outlives the publisher; durable, cache and offsets may be null.
    cache_publisher(const config& cfg, durable_store* durable, latest_cache* cache, memory_index& memory,
                    offset_sink* offsets);
    ~cache_publisher();
    cache_publisher(const cache_publisher&) = delete;
    cache_publisher& operator=(const cache_publisher&) = delete;

    /// Where Redis failures are counted; may stay null. Before start().
    void set_stats(pipeline_stats* stats) { stats_ = stats; }
    /// Starts the cache thread.
    void start();
    /// Queues a durable batch; waits while 8 are queued already.
    void hand_off(durable_batch done);
    /// No more batches: the thread ends once it has published those handed off.
    void close();
    /// Waits for the thread to end (after close()).
    void join();
    bool running() const { return thread_.joinable(); }

private:
    void run();
    /// Redis (one update for them all), then each batch's offsets and pushes' answers, in order.
    void publish(std::deque<durable_batch>& batches);
    /// Writes back to Redis what it missed; clears the stale mark when done.
    void resync_cache();

    const config& cfg_;
    durable_store* durable_;
    latest_cache* cache_;
    memory_index& memory_;
    offset_sink* offsets_;
    pipeline_stats* stats_ = nullptr;
    std::optional<std::int64_t> cache_stale_since_ms_;          // cache thread only (once started)
    std::chrono::steady_clock::time_point last_cache_probe_{};  // cache thread only
    std::mutex handoff_mutex_;
    std::condition_variable handoff_cv_;
    std::deque<durable_batch> handoff_;  // at most max_waiting_batches
    bool handoff_closed_ = false;        // the writer thread has ended: the cache thread ends when done
    std::thread thread_;
};

}  // namespace sluice::writer
