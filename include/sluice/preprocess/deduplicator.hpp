#pragma once
// Drops events whose event id was already seen (a feature set's "dedup").

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

/// Drops events whose event id was already seen, for the feature sets that declare
/// "dedup": {"field": ..., "window": ..., "max_ids": ...}.
///
/// One instance per preprocess worker, called only by that worker's thread (not thread-safe).
/// It relies on the routing: each Kafka partition always goes to the same worker, and the
/// repeats of an event normally carry the same key and so land in the same partition.
///
/// Per set, an id is remembered with the event time it was first seen at, for `window` of event
/// time behind the newest event the worker has seen for that set. A repeat within that time is
/// a duplicate. Limits:
///  - An event older than (newest - window) is not checked and not remembered (counted in
///    too_old()): e.g. a partition far behind the others of the same worker.
///  - At most max_ids ids per set; past it the oldest are forgotten early (evicted_early()).
///    Memory: about 100 bytes per id plus the id's length beyond 15 bytes.
///  - State lives in memory: ids seen before a restart or a rebalance, or by another worker or
///    instance, are not known. Records whose id is null are never duplicates.
class deduplicator {
public:
    explicit deduplicator(const config& cfg);
    ~deduplicator();
    deduplicator(deduplicator&&) noexcept;
    deduplicator& operator=(deduplicator&&) noexcept;

    /// A live reload's dedup settings: a set keeps the ids it remembers when its id field stays
    /// the same (the window and max_ids change from now on), starts empty when it changes, and
    /// forgets them when dedup is turned off.
    void reconfigure(const config& cfg);

    /// When `item` is a record of a set with dedup whose id was already seen, replaces it with a
    /// `skipped` naming the id. Dead letters, skipped items and other sets' records pass unchanged.
    void apply(processed& item);

    /// The rule itself: true when `id` was seen for this set within the window; otherwise
    /// remembers it (at event_time_ms) and returns false. False for a set without dedup.
    bool seen(std::uint32_t set_index, std::string_view id, std::int64_t event_time_ms);

    std::size_t remembered() const;       // ids held now, all sets
    std::uint64_t evicted_early() const;  // ids forgotten before their window ended (max_ids)
    std::uint64_t too_old() const;        // events older than the window, not checked

    struct set_state;

private:
    std::vector<std::unique_ptr<set_state>> sets_;  // by set index; null for a set without dedup
    std::uint64_t evicted_early_ = 0;
    std::uint64_t too_old_ = 0;
};

}  // namespace sluice
