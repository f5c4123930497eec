#pragma once
// Port: the windowed aggregation state of one feature set, as the store writer feeds and reads
// it. Implemented by preprocess's aggregator; the store never sees how windows are kept.

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"

namespace sluice {

/// add() and evict_partitions() from the store writer thread only; values_at() and too_late()
/// from any thread.
class aggregation_state {
public:
    virtual ~aggregation_state() = default;
    /// Adds an event (values in the set's field order); partition: its Kafka partition, -1 pushed.
    virtual void add(const std::string& key, std::int64_t event_time_ms, const std::vector<value>& values,
                     std::int32_t partition) = 0;
    /// True when the event is older than the key's newest event by more than allowed lateness.
    virtual bool too_late(const std::string& key, std::int64_t event_time_ms) const = 0;
    /// Every aggregation's value at time at_ms, in config order.
    virtual std::vector<value> values_at(const std::string& key, std::int64_t at_ms) const = 0;
    /// Drops the keys of these partitions (revoked: another instance now keeps them).
    virtual std::size_t evict_partitions(const std::vector<std::int32_t>& partitions) = 0;
};

}  // namespace sluice
