#pragma once
// Windowed aggregations per key (count, sum, avg, min, max, last over sliding event-time windows).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/ports/aggregation_state.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

/// The aggregation state of one feature set, for every key.
///
/// Windows are tiled: each aggregation's window of W is cut into 60 tiles of W/60 aligned to the
/// Unix epoch (tile index = floor(event_time / tile)). The value at time T covers the events whose
/// tile is one of the 60 tiles ending with T's tile and whose event time is <= T. So the window
/// really spans between W - W/60 and W: the oldest tile drops out whole. The same definition is
/// used online and for as-of lookups from history, so both give the same value.
///
/// A tile keeps one total, not its events: values_at(T) equals aggregate_events for any T at or
/// after the key's newest event (the daemon asks at "now"); for a T inside a tile that also holds
/// newer events, that tile counts whole. Double sums can differ in the last bits when events are
/// added in another order (arrival order online, event-time order for as-of and the rebuild).
/// Memory: one heap block per key with its non-empty tiles, 5–13 bytes per tile by op (~51 bytes
/// per key per aggregation measured with 4 events per key; at most 60 tiles per aggregation),
/// plus a 32-byte header per key. Keys leave only with their partition (evict_partitions).
///
/// Thread-safety: add() from one writer thread; values_at() from any thread (sharded locks).
class aggregator final : public aggregation_state {
public:
    explicit aggregator(const feature_set_config& set, std::size_t shards = 64);
    ~aggregator() override;

    /// Adds an event (values in the set's field order). Null values do not count (count counts
    /// events whose field is not null). partition: the Kafka partition it came from (-1: pushed).
    void add(const std::string& key, std::int64_t event_time_ms, const std::vector<value>& values,
             std::int32_t partition) override;
    void add(const std::string& key, std::int64_t event_time_ms, const std::vector<value>& values) {
        add(key, event_time_ms, values, -1);
    }

    /// True when the aggregator holds state for the key.
    bool contains(const std::string& key) const;

    /// The Kafka partition of the key's last event from Kafka (-1: only pushed events), or
    /// nullopt for an unknown key. Readers use the state only for partitions this instance owns.
    std::optional<std::int32_t> partition_of(const std::string& key) const;

    /// Drops the keys of these partitions (revoked: another instance now keeps them).
    std::size_t evict_partitions(const std::vector<std::int32_t>& partitions) override;

    /// True when the event is older than the key's newest event by more than allowed lateness.
    bool too_late(const std::string& key, std::int64_t event_time_ms) const override;

    /// Every aggregation's value at time at_ms, in config order: count → int64; sum → the field's
    /// type (int64 or double); avg → double; min/max → the field's type; last → the field's
    /// value. An empty window gives 0 for count and sum, null for the others.
    std::vector<value> values_at(const std::string& key, std::int64_t at_ms) const override;

    /// Bytes of aggregation state held (for the memory figures).
    std::size_t memory_bytes() const;
    std::size_t keys() const;

    /// Tile length of an aggregation (window / 60).
    static std::int64_t tile_ms(const aggregation_config& agg) { return agg.window_ms / 60; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Computes the same values as aggregator::values_at from a list of events, by brute force;
/// used for as-of lookups from history (and to check the aggregator).
std::vector<value> aggregate_events(const feature_set_config& set,
                                    const std::vector<std::pair<std::int64_t, std::vector<value>>>& events,
                                    std::int64_t at_ms);

}  // namespace sluice
