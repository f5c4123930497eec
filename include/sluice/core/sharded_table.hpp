#pragma once
// The hash table under the memory index (store) and the aggregation state (preprocess): open
// addressing with linear probing over a power-of-two array of slots, sharded behind
// reader-writer locks. What a slot holds is the user's: the memory index keeps the hash and the
// key inline, the aggregator a pointer to a heap block that holds them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <utility>
#include <vector>

namespace sluice {

/// One table of slots. Traits is a struct of static members that says what a slot is:
///
///   using slot = ...;                            // a default-constructed slot is empty
///   static bool empty(const slot& s);
///   static std::uint64_t hash(const slot& s);    // the hash the slot was placed by
///   static constexpr std::size_t max_load_num;   // at most num/den of the slots are in use
///   static constexpr std::size_t max_load_den;
///
/// A key lives at the first free slot from its home (hash & (slots - 1)) onward; an erase shifts
/// the later slots of its run back (backward shift), so no tombstones build up and a lookup stops
/// at the first empty slot. The table starts empty and doubles from 16 slots when an insert would
/// pass the load limit.
///
/// Owned by its user (one per shard); not thread-safe: sharded_table's shard lock guards it.
template <class Traits>
class probe_table {
public:
    using slot = typename Traits::slot;
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    std::size_t size() const { return used_; }
    /// Slots allocated (0 before the first insert): their memory is slot_count() * sizeof(slot).
    std::size_t slot_count() const { return slots_.size(); }

    slot& at(std::size_t index) { return slots_[index]; }
    const slot& at(std::size_t index) const { return slots_[index]; }

    /// The index of the slot with this hash for which match(slot) is true, or npos.
    template <class Match>
    std::size_t find(std::uint64_t hash, const Match& match) const {
        if (slots_.empty()) return npos;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
            const slot& s = slots_[i];
            if (Traits::empty(s)) return npos;
            if (Traits::hash(s) == hash && match(s)) return i;
        }
    }

    /// The matching slot's index and false; or, when none matches, make()'s slot (which must not
    /// be empty and must have this hash) stored and true. The table grows only for a new slot; if
    /// make() throws, no slot is added.
    template <class Match, class Make>
    std::pair<std::size_t, bool> find_or_insert(std::uint64_t hash, const Match& match, Make&& make) {
        std::size_t i = slots_.empty() ? npos : probe(hash, match);
        if (i != npos && !Traits::empty(slots_[i])) return {i, false};
        if (slots_.empty() || (used_ + 1) * Traits::max_load_den > slots_.size() * Traits::max_load_num) {
            grow();
            i = free_slot(hash);
        }
        slots_[i] = std::forward<Make>(make)();
        ++used_;
        return {i, true};
    }

    /// Empties the slot at index (which must be in use) by backward shift: each later slot of the
    /// run moves into the hole unless its home lies (cyclically) after the hole, so every key stays
    /// reachable from its home.
    void erase(std::size_t index) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t hole = index;
        for (std::size_t j = (hole + 1) & mask; !Traits::empty(slots_[j]); j = (j + 1) & mask) {
            const std::size_t home = Traits::hash(slots_[j]) & mask;
            const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (stays) continue;
            slots_[hole] = std::move(slots_[j]);
            hole = j;
        }
        slots_[hole] = slot{};
        --used_;
    }

    /// Erases every slot in use for which pred(slot&) is true, and returns how many. pred may
    /// release what the slot owns before it returns true: the slot is not read again.
    template <class Pred>
    std::size_t erase_if(const Pred& pred) {
        std::size_t erased = 0;
        // An erase shifts later slots back into the hole: look at the same index again then. A
        // slot moves only to a later index or to one already looked at (a run that wraps around).
        for (std::size_t i = 0; i < slots_.size();) {
            if (!Traits::empty(slots_[i]) && pred(slots_[i])) {
                erase(i);
                ++erased;
            } else {
                ++i;
            }
        }
        return erased;
    }

    /// Calls fn(slot&) for every slot in use, in slot order.
    template <class Fn>
    void for_each(const Fn& fn) {
        for (slot& s : slots_)
            if (!Traits::empty(s)) fn(s);
    }
    template <class Fn>
    void for_each(const Fn& fn) const {
        for (const slot& s : slots_)
            if (!Traits::empty(s)) fn(s);
    }

private:
    // The matching slot, else the empty slot that ends the run (slots_ must not be empty: a table
    // under its load limit always has one).
    template <class Match>
    std::size_t probe(std::uint64_t hash, const Match& match) const {
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
            const slot& s = slots_[i];
            if (Traits::empty(s) || (Traits::hash(s) == hash && match(s))) return i;
        }
    }

    std::size_t free_slot(std::uint64_t hash) const {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = hash & mask;
        while (!Traits::empty(slots_[i])) i = (i + 1) & mask;
        return i;
    }

    // Allocated at the exact size (not by push_back), so that slot_count() is the memory held.
    void grow() {
        std::vector<slot> old(std::max<std::size_t>(16, slots_.size() * 2));
        old.swap(slots_);
        for (slot& s : old)
            if (!Traits::empty(s)) slots_[free_slot(Traits::hash(s))] = std::move(s);
    }

    std::vector<slot> slots_;
    std::size_t used_ = 0;
};

/// No per-shard data beyond the table.
struct no_shard_data {};

/// Shards of probe_table, each behind a std::shared_mutex, picked by the hash's high bits (the
/// slot comes from its low bits, so the keys of one shard still spread over all of its slots).
/// Traits adds `static constexpr unsigned shard_shift`: the shard is (hash >> shard_shift) % shards.
/// Data is what else a shard keeps under the same lock (the aggregator: its heap bytes).
///
/// Owned by its user. The table takes no lock itself: the caller locks shard.mutex (shared to
/// read, unique to change) around whatever it does with shard.table, so that work that needs no
/// lock (packing a value) stays outside it. Shards are cache-line aligned, so that writers of
/// different shards do not share a line.
template <class Traits, class Data = no_shard_data>
class sharded_table {
public:
    struct alignas(64) shard {
        mutable std::shared_mutex mutex;
        probe_table<Traits> table;
        Data data{};
    };

    explicit sharded_table(std::size_t shards)
        : count_(std::max<std::size_t>(1, shards)), shards_(std::make_unique<shard[]>(count_)) {}

    std::size_t shard_count() const { return count_; }
    shard& shard_at(std::size_t index) const { return shards_[index]; }
    shard& shard_for(std::uint64_t hash) const { return shards_[(hash >> Traits::shard_shift) % count_]; }

private:
    std::size_t count_;
    std::unique_ptr<shard[]> shards_;
};

}  // namespace sluice
