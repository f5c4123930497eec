#pragma once
// Port: the durable store (PostgreSQL) as the store writer, the readers and the aggregation
// rebuild see it: history, latest, dead letters and consumer offsets. Implemented in store/postgres.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
#include "sluice/core/ports/offsets.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// What the store writer commits in one transaction.
struct write_batch {
    std::vector<record> records;
    std::vector<dead_letter> dead_letters;
    std::vector<partition_offset> offsets;  // next offset of every partition the batch covers
    std::size_t skipped = 0;                // inputs left out on purpose (their offsets still count)
    bool empty() const { return records.empty() && dead_letters.empty(); }
};

/// A key's history around one moment, for as-of lookups.
struct history_slice {
    std::optional<latest_entry> newest;  // the newest row with event time <= the moment (fields only)
    std::vector<std::pair<std::int64_t, std::vector<value>>> events;  // rows in (moment - span, moment]
};

/// One history row for the history API: the record and the row's id (a tiebreak for paging).
struct history_row {
    latest_entry entry;  // values: the set's fields (no aggregations)
    std::int64_t id = 0;
};

/// Which rows for_each_history streams.
struct history_scan {
    std::int64_t since_ms = 0;
    std::string topic;
    std::int32_t partition = -1;  // >= 0: only this partition of topic, by offset
    std::int64_t from_offset = 0;
    std::int64_t to_offset = 0;
};
using history_visitor =
    std::function<void(const std::string& key, std::int64_t event_time_ms, const std::vector<value>& values, std::int32_t partition)>;

/// The store that makes records durable. write() is called by the store writer thread only
/// (write_in_lane() by the writer's lane threads);
/// read_latest() and read_offsets() may be called from any thread (they use their own connections).
class durable_store : public offset_source {
public:
    ~durable_store() override = default;
    /// Creates or migrates the schema and tables. Called once at start.
    virtual status prepare() = 0;
    /// Commits the whole batch (history, latest, dead letters, offsets) in one transaction.
    virtual status write(const write_batch& batch) = 0;
    /// Connections batches can be written on at the same time, one batch each (write_in_lane).
    virtual std::size_t write_lanes() const { return 1; }
    /// Commits the batch like write(), on connection `lane` (< write_lanes()), while batches
    /// before it may be in flight on the other lanes: its rows are written first, then
    /// order.turn() waits until the batches before it have stored their offsets (false: give up,
    /// the batch is rolled back), then latest, the dead letters and the offsets are written,
    /// order.passed() lets the next batch on, and the transaction commits. Called by one thread
    /// per lane.
    struct write_order {
        std::function<bool()> turn;
        std::function<void()> passed;
    };
    virtual status write_in_lane(const write_batch& batch, std::size_t lane, const write_order& order) {
        (void)lane;
        if (!order.turn()) return status::failure("the write was given up while it waited for its turn");
        auto s = write(batch);
        if (s) order.passed();
        return s;
    }
    /// The latest row of a key, or nullopt when the key is unknown.
    virtual result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) = 0;
    /// Latest rows updated at or after since_ms (epoch ms), with keys after after_key, in key
    /// order, at most limit rows: pages through what Redis missed while it was away.
    virtual result<std::vector<latest_entry>> scan_latest(std::uint32_t set_index, std::int64_t since_ms,
                                                          const std::string& after_key, std::size_t limit) = 0;
    /// The key's newest history row at or before at_ms, and its rows in (at_ms - span_ms, at_ms].
    virtual result<history_slice> read_as_of(std::uint32_t set_index, const std::string& key, std::int64_t at_ms,
                                             std::int64_t span_ms) = 0;
    /// A key's rows with from_ms <= event time < to_ms, newest first (then id descending), after
    /// the row (after_time_ms, after_id) when after_id >= 0, at most limit rows.
    virtual result<std::vector<history_row>> read_history(std::uint32_t set_index, const std::string& key,
                                                          std::int64_t from_ms, std::int64_t to_ms, std::size_t limit,
                                                          std::int64_t after_time_ms, std::int64_t after_id) {
        (void)set_index, (void)key, (void)from_ms, (void)to_ms, (void)limit, (void)after_time_ms, (void)after_id;
        return result<std::vector<history_row>>::failure("this store keeps no history");
    }
    /// Streams history rows to fn (key, event time, field values, Kafka partition or -1): those
    /// with event time >= scan.since_ms, oldest first, to rebuild the aggregation state at start;
    /// or, with scan.partition >= 0, only that partition's rows with scan.from_offset <= offset <
    /// scan.to_offset, in offset order, to catch up with what another instance wrote.
    virtual status for_each_history(std::uint32_t set_index, const history_scan& scan, const history_visitor& fn) = 0;
    /// The newest updated_at of any latest row (epoch ms), 0 when there is none.
    virtual result<std::int64_t> last_update_ms() = 0;
    /// True when the last operation reached the server.
    virtual bool healthy() const = 0;
    /// Checks the connection (a round trip); used by the writer while idle.
    virtual status ping() = 0;
};
using durable_store_ptr = std::unique_ptr<durable_store>;

}  // namespace sluice
