#pragma once
// The store writer: batches processed items and makes them durable, then cached, then acknowledged.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/bounded_queue.hpp"
#include "sluice/core/pipeline_stats.hpp"
#include "sluice/core/ports/aggregation_state.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/latest_cache.hpp"
#include "sluice/core/ports/offsets.hpp"
#include "sluice/core/ports/push.hpp"
#include "sluice/store/memory_index.hpp"

namespace sluice {

class quality_monitor;

// The writer's parts, private to the store module (src/store/writer/).
namespace writer {
struct pending_push;
class retrier;
class aggregation_gate;
class cache_publisher;
class offset_chain;
class flight_order;
class flight_queue;
struct flight;
}  // namespace writer

/// The writer thread collects up to pipeline.batch_max_records items (or what arrived within
/// pipeline.batch_linger_ms of the first; a batch that starts with records which queued while the
/// writer was busy closes once the queues are empty), fits them to the offset chain (records
/// below a partition's stored offset are re-deliveries and leave), aggregates them, commits them
/// to PostgreSQL in one transaction whose offsets are fenced (retrying with backoff while
/// PostgreSQL is away: the queues fill and ingestion pauses) and publishes the batch's dead
/// letters to the dead-letter topic (if configured, retrying likewise). The newest record of each
/// key goes into the memory index (which answers reads first) when the writer takes the batch,
/// before the commit (memory.before_commit, the default: memory is at most one batch ahead of
/// PostgreSQL), or right after the commit. With pipeline.batches_in_flight above 1 the commits
/// run on lane threads instead, one per connection, in turn (writer/flight_order.hpp). The durable
/// batch then goes to the cache thread, in the order the batches were made: it updates Redis (the
/// batches waiting for it together, up to 8, each key once), then reports their offsets as
/// durable and answers their pushes.
/// When a Redis update fails, Redis is marked stale: updates stop until it answers again, then
/// every latest row PostgreSQL changed since the failure (a minute of margin) is written back to
/// Redis with the event-time guard, so no key stays older than PostgreSQL's latest.
/// The writer thread's batching, flush and retries are here (store_writer.cpp); the offset chain
/// (writer/offset_chain.hpp), the aggregation gate (writer/aggregation_gate.hpp), the order of
/// batches in flight (writer/flight_order.hpp) and the cache thread (writer/cache_publisher.hpp)
/// are parts it owns.
/// Owned by the app; the stores it writes to outlive it.
/// The error of a late event's dead letter: older than its key's newest event by more than the
/// set's allowed_lateness (the store writer's aggregation gate, and `sluice try`, write it).
std::string late_event_error(const feature_set_config& set, const std::string& key, std::int64_t event_time_ms);

class store_writer final : public push_writer {
public:
    store_writer(const config& cfg, std::vector<channel<processed>*> inputs, wakeup& readable,
                 durable_store* durable, latest_cache* cache, memory_index& memory, offset_sink* offsets,
                 dead_letter_publisher* dead_letter_topic = nullptr);
    ~store_writer() override;

    /// The aggregation state per feature set (nullptr for a set without aggregations). Before a
    /// batch is written, each new record (not a re-delivery: its offset is past what this writer
    /// has committed) is added to its set's aggregator, or becomes a dead letter when it is later
    /// than allowed_lateness; every record then carries its key's aggregation values at write time
    /// after its fields, for latest, Redis and memory. Set before start().
    void set_aggregators(std::vector<aggregation_state*> aggregators);
    /// Where commits are counted (per set: records, dead letters, skipped; store errors). Set
    /// before start(); may stay null.
    void set_stats(pipeline_stats* stats);
    /// Where committed batches are counted for data quality (null: not counted). Before start().
    void set_quality(quality_monitor* quality) { quality_ = quality; }

    /// Partitions this instance just took over (next_offset: where consumption resumes, as
    /// seeded from PostgreSQL; -1 unknown) or gave up (revoked = true). Before the next batch is
    /// aggregated, the writer brings the aggregation state of a taken-over partition up to date
    /// from the history rows other instances wrote for it, and drops the state of given-up ones.
    /// Called on a consumer thread; the writer does it at once when idle.
    void partitions_changed(const std::vector<partition_offset>& partitions, bool revoked);
    /// True while a taken-over partition's aggregation state is not caught up yet: the state
    /// this instance holds for its keys is not to be served until then. Any thread.
    bool catching_up(const std::string& topic, std::int32_t partition) const;

    /// Records and dead letters pushed through the API (not from Kafka): written with the next
    /// batch, then done is called on the cache thread once they are durable and readable from
    /// memory (or on the writer thread when they could not be written). False (done not called) when more than
    /// pipeline.queue_capacity pushed items are waiting already.
    bool push(std::vector<processed> items, push_done done) override;

    void start();
    /// Writes everything queued, then joins. abort (set by the app on timeout) ends sooner.
    void drain_and_join(const std::atomic<bool>& abort);

    std::uint64_t records_written() const { return records_.load(std::memory_order_relaxed); }
    std::uint64_t dead_letters_written() const { return dead_letters_.load(std::memory_order_relaxed); }
    /// Empty while the last write succeeded; otherwise why it failed.
    std::string last_error() const;
    /// How long the PostgreSQL write in progress has been waiting (0 when none is): a lock or a
    /// stalled server shows here before any error does.
    std::int64_t write_waiting_ms() const;

private:
    void run();
    /// Makes the batch ready (fitted to the offset chain, aggregated, in memory) and writes it:
    /// here with one batch in flight, else on the next free lane thread. Its pushes are answered
    /// either way (as failed when the shutdown deadline passed first).
    void flush(write_batch& batch, std::vector<writer::pending_push>& waiting);
    /// Writes a ready batch (on `lane`), then, after the batches before it, publishes its dead
    /// letters, counts it and hands it to the cache thread.
    void commit(writer::flight& f, std::size_t lane);
    /// The PostgreSQL write of commit(), retried and fenced; false when the shutdown deadline passed.
    bool write_durable(writer::flight& f, std::size_t lane);
    /// A lane thread: writes the batches the writer thread queues for it.
    void run_lane(std::size_t lane);
    /// The newest record of each key of a batch into the memory index (writer thread, before or
    /// right after the commit: a record is readable without waiting for an earlier batch's Redis
    /// update); returns those records.
    std::vector<const record*> update_memory(write_batch& batch);
    /// Drops the records, dead letters and offsets of Kafka partitions this instance no longer
    /// owns: their new owner consumes them again from PostgreSQL's offsets and writes them.
    void leave_given_up_partitions(write_batch& batch);
    /// One processed item into the batch: a record, a dead letter, or a skipped count.
    void add_to_batch(write_batch& batch, processed& item);
    /// Moves waiting pushes into the batch; their callbacks wait in `waiting` until it is written.
    std::size_t take_pushes(write_batch& batch, std::vector<writer::pending_push>& waiting);

    const config& cfg_;
    std::vector<channel<processed>*> inputs_;
    wakeup& readable_;
    durable_store* durable_;
    memory_index& memory_;
    offset_sink* offsets_;
    dead_letter_publisher* dead_letter_topic_;
    pipeline_stats* stats_ = nullptr;
    quality_monitor* quality_ = nullptr;
    std::unique_ptr<writer::retrier> retry_;
    std::unique_ptr<writer::offset_chain> chain_;
    std::unique_ptr<writer::aggregation_gate> gate_;
    std::unique_ptr<writer::cache_publisher> publisher_;
    std::unique_ptr<writer::flight_order> order_;
    std::size_t lane_count_ = 0;                       // pipeline.batches_in_flight when > 1, else 0
    std::unique_ptr<writer::flight_queue> lane_queue_;
    std::vector<std::thread> lanes_;
    std::mutex push_mutex_;
    std::vector<writer::pending_push> pushes_;
    std::size_t pushed_items_ = 0;  // waiting in pushes_
    std::int64_t push_seq_ = 0;
    bool push_closed_ = false;  // the writer has stopped: pushes are refused
    std::thread thread_;
    std::atomic<bool> draining_{false};
    std::array<std::atomic<std::int64_t>, 4> write_started_ms_{};  // per lane: when its write began (0: none)
    std::atomic<std::uint64_t> records_{0};
    std::atomic<std::uint64_t> dead_letters_{0};
};

}  // namespace sluice
