#pragma once
// The durable store (PostgreSQL): history, latest, dead letters and consumer offsets.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
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

/// The store that makes records durable. write() is called by the store writer thread only;
/// read_latest() and read_offsets() may be called from any thread (they use their own connections).
class durable_store {
public:
    virtual ~durable_store() = default;
    /// Creates or migrates the schema and tables. Called once at start.
    virtual status prepare() = 0;
    /// Commits the whole batch (history, latest, dead letters, offsets) in one transaction.
    virtual status write(const write_batch& batch) = 0;
    /// The latest row of a key, or nullopt when the key is unknown.
    virtual result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) = 0;
    /// Latest rows updated at or after since_ms (epoch ms), with keys after after_key, in key
    /// order, at most limit rows: pages through what Redis missed while it was away.
    virtual result<std::vector<latest_entry>> scan_latest(std::uint32_t set_index, std::int64_t since_ms,
                                                          const std::string& after_key, std::size_t limit) = 0;
    /// The newest updated_at of any latest row (epoch ms), 0 when there is none.
    virtual result<std::int64_t> last_update_ms() = 0;
    /// Offsets stored for a consumer group (to seed partition positions on assignment).
    virtual result<std::vector<partition_offset>> read_offsets(const std::string& group_id) = 0;
    /// True when the last operation reached the server.
    virtual bool healthy() const = 0;
    /// Checks the connection (a round trip); used by the writer while idle.
    virtual status ping() = 0;
};
using durable_store_ptr = std::unique_ptr<durable_store>;

}  // namespace sluice
