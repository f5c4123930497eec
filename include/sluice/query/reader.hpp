#pragma once
// What a read asks of the stores, as the serving layer sees it: latest (single and batch),
// as-of, and history. The read policy (tiered_reader) implements it.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// Reads latest state for the API: memory index, then Redis, then PostgreSQL. get_latest may
/// answer inline (memory hit) or later from the lookup pool; done is called exactly once, on any
/// thread. Implementations never block the calling (io) thread.
class feature_reader {
public:
    using latest_callback = std::function<void(result<std::optional<latest_entry>>)>;
    virtual ~feature_reader() = default;
    virtual void get_latest(std::uint32_t set_index, std::string key, latest_callback done) = 0;
    /// The key as it was at at_ms (point in time, from history): the newest event at or before
    /// it, and the aggregations computed over history at that moment. Same threading as get_latest.
    virtual void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) {
        (void)set_index, (void)key, (void)at_ms;
        done(result<std::optional<latest_entry>>::failure("as_of lookups need PostgreSQL"));
    }
    /// Batch reads (POST /v1/features/lookup, the Feast route): one answer per key, in the order
    /// asked, latest or as of as_of_ms. done is called exactly once, on any thread. The default
    /// fans out to get_latest / get_as_of; readers with a cheaper batch path override it.
    using latest_many_callback = std::function<void(std::vector<result<std::optional<latest_entry>>>)>;
    virtual void get_latest_many(std::uint32_t set_index, std::vector<std::string> keys,
                                 std::optional<std::int64_t> as_of_ms, latest_many_callback done);
};

/// Where a page of history ends: the next page starts strictly after this row (rows are ordered
/// newest event time first, then by the row's id, descending).
struct history_cursor {
    std::int64_t event_time_ms = 0;
    std::int64_t id = 0;
};

/// GET /v1/features/{set}/{key}/history: rows with from_ms <= event time < to_ms.
struct history_request {
    std::uint32_t set_index = 0;
    std::string key;
    std::int64_t from_ms = 0;
    std::int64_t to_ms = 0;
    std::size_t limit = 100;
    std::optional<history_cursor> after;
};

struct history_page {
    std::vector<latest_entry> records;  // newest first; values in the set's declared field order
    std::optional<history_cursor> next;  // set when more rows may follow
};

/// History reads (PostgreSQL), on the lookup pool like every store read.
class history_reader {
public:
    using history_callback = std::function<void(result<history_page>)>;
    virtual ~history_reader() = default;
    virtual void get_history(history_request req, history_callback done) = 0;
};

}  // namespace sluice
