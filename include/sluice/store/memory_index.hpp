#pragma once
// The in-memory latest index: the first place a read looks.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
#include "sluice/core/sharded_table.hpp"

namespace sluice {

/// Latest entry per (feature set, key), sharded by key hash with one shared_mutex per shard.
/// Written by the store writer (after PostgreSQL commits) and by read-through fills; read by
/// HTTP io threads (a lookup holds a shard lock for a hash-map find and a copy of one packed
/// buffer only).
///
/// Entries are kept packed: the times, the partition and the values in one heap buffer (a tag
/// byte per value, then 8 bytes for numbers, a length and the bytes for strings) instead of a
/// latest_entry with a vector of 40-byte variants and a heap string per long string value:
/// about 330 instead of 850 bytes per key for ten values of 200 bytes in all. find() unpacks a
/// fresh latest_entry, which costs what the copy every reader made of the shared one did.
class memory_index {
public:
    explicit memory_index(std::size_t feature_sets, std::size_t shards = 64);

    /// An entry's parts, held elsewhere (the store writer's records): packed without a copy.
    struct entry_ref {
        const std::string& key;
        std::int64_t event_time_ms;
        std::int64_t ingested_at_ms;
        std::int32_t partition;
        const std::vector<value>& values;
    };

    /// Stores the entry when the key is new or the entry's event time is greater. Returns true if stored.
    bool upsert(std::uint32_t set_index, const entry_ref& entry);
    bool upsert(std::uint32_t set_index, std::shared_ptr<const latest_entry> entry);
    std::shared_ptr<const latest_entry> find(std::uint32_t set_index, const std::string& key) const;
    /// The same entry as find(), unpacked straight into the value returned (no shared copy): what
    /// a reader that changes its copy (adding aggregations) wants.
    std::optional<latest_entry> find_value(std::uint32_t set_index, const std::string& key) const;
    std::size_t size(std::uint32_t set_index) const;
    /// Drops the entries written from these partitions of this set (after they were revoked: their
    /// new owner keeps Redis and PostgreSQL current, and this copy would go stale). Returns the count.
    std::size_t evict_partitions(std::uint32_t set_index, const std::vector<std::int32_t>& partitions);
    /// Calls fn for every entry of a set (shard by shard, under each shard's shared lock).
    void for_each(std::uint32_t set_index, const std::function<void(const latest_entry&)>& fn) const;

private:
    /// event_time_ms, ingested_at_ms, partition, then the values (see the class comment).
    struct packed {
        std::unique_ptr<char[]> bytes;
        std::uint32_t size = 0;
        std::int64_t event_time_ms() const;
        std::int32_t partition() const;
    };
    static packed pack(const entry_ref& e);
    static latest_entry unpack(const std::string& key, const packed& p);

    /// One shard's entries (sluice/core/sharded_table.hpp): open addressing with linear probing,
    /// at most 5/8 full, slots leaving by backward shift. A lookup reads one slot (usually) and the
    /// packed bytes; a node-based map read a bucket, the node before the bucket's first and the
    /// node itself, and divided by a prime for every node.
    ///
    /// The slot holds the key's hash, the key and its packed entry inline (56 bytes), where the
    /// aggregator's holds only a pointer to a heap block with all three: an entry here is already
    /// one heap buffer of values, copied out under the shard lock, and keeping the hash and the key
    /// in the slot lets a probe compare them without touching that buffer.
    struct slot {
        std::uint64_t hash = 0;  // 0: empty (a key's hash is never 0, see hash_of)
        std::string key;
        packed value;
    };
    struct slot_traits {
        using slot = memory_index::slot;
        static bool empty(const slot& s) { return s.hash == 0; }
        static std::uint64_t hash(const slot& s) { return s.hash; }
        static constexpr std::size_t max_load_num = 5;
        static constexpr std::size_t max_load_den = 8;
        // The shard comes from the hash's top bits and the slot from its low bits, so that the
        // keys of one shard still spread over all of its slots.
        static constexpr unsigned shard_shift = 40;
    };
    using table = sharded_table<slot_traits>;
    using shard = table::shard;
    static std::uint64_t hash_of(const std::string& key);

    std::vector<table> sets_;  // by set index
};

}  // namespace sluice
