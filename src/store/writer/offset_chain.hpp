#pragma once
// The store writer's offset chain: where each Kafka partition's next batch continues from, so a
// batch commits only on the offset it was built on (fencing out another writer of the partition)
// and a message already stored is never written twice.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/ports/durable_store.hpp"

namespace sluice::writer {

/// Per partition, the offset stored in consumer_offsets that this writer's next batch continues
/// from: read from PostgreSQL the first time the writer writes the partition (after start, after
/// taking it over, after being fenced), then each committed batch's end. Fitting a batch to it
/// drops records below it (already stored, by this writer or another one: a re-delivery) and
/// gives each of the batch's offsets the stored offset its commit expects.
/// Owned by store_writer; thread-safe (the writer thread fits batches, lane threads fit a fenced
/// batch again).
class offset_chain {
public:
    /// durable may be null (no PostgreSQL: nothing to fence, batches pass unchanged).
    offset_chain(durable_store* durable, std::string group_id) : durable_(durable), group_id_(std::move(group_id)) {}

    /// Partitions given up: read anew from PostgreSQL when written again. Any thread.
    void forget(const std::vector<partition_offset>& partitions);
    /// Fits the batch to the chain (reading the partitions it does not know from PostgreSQL):
    /// drops its records and dead letters below a partition's stored offset, drops the offsets
    /// of partitions with nothing past it, and sets each remaining offset's expected. The number
    /// of records and dead letters dropped; a failure when PostgreSQL could not be read.
    result<std::size_t> fit(write_batch& batch);
    /// The batch was fenced: another writer stored one of its partitions' offsets. Its
    /// partitions are read anew by the next fit().
    void fenced(const write_batch& batch);
    /// The batch with these offsets (as fitted) is on its way to PostgreSQL or durable: the
    /// chain moves forward to their ends (never back).
    void advance(const std::vector<partition_offset>& offsets);


private:
    using topic_partition = std::pair<std::string, std::int32_t>;
    void apply_forgotten();

    durable_store* durable_;
    std::string group_id_;
    mutable std::mutex mutex_;  // over next_; held while PostgreSQL is read
    std::map<topic_partition, std::int64_t> next_;  // no_stored_offset when none is stored
    std::mutex forgotten_mutex_;
    std::vector<topic_partition> forgotten_;  // from forget(), applied by the writer thread
};

}  // namespace sluice::writer
