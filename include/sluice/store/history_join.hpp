#pragma once
// The point-in-time join of training sets, as the store runs it: a chunk of (key, moment) probes
// against one set's history, in one round trip. Implemented over PostgreSQL
// (store/postgres/history_join.cpp); the training-set engine (sluice/query/training_set.hpp) uses it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

struct join_probe {
    std::string_view key;
    std::int64_t at_ms = 0;
};

/// One probe's answer: the newest history row with event time <= at_ms (fields only), and, when a
/// span was asked, the key's rows with at_ms - span_ms < event time <= at_ms (for aggregations).
struct join_answer {
    std::optional<latest_entry> newest;
    std::vector<std::pair<std::int64_t, std::vector<value>>> events;
};

class history_join {
public:
    virtual ~history_join() = default;
    /// One answer per probe, in the probes' order. known_at: only rows with ingested_at <= at_ms.
    /// span_ms 0: no events.
    virtual result<std::vector<join_answer>> join(std::uint32_t set_index, const std::vector<join_probe>& probes,
                                                  bool known_at, std::int64_t span_ms) = 0;
};

/// A join on a connection of its own to `dsn` (the training set's whole run), each chunk in a
/// read-only transaction bounded by statement_timeout_ms (0: none).
result<std::unique_ptr<history_join>> open_postgres_history_join(const config& cfg, const std::string& dsn,
                                                                 std::int64_t statement_timeout_ms);

/// Rows PostgreSQL reads for the caller (a training set's entity rows from a table or a query): each
/// cell as JSON text (numbers and booleans as such, timestamps as RFC 3339 UTC strings, NULL as
/// null, everything else as a string). Read with a cursor in a read-only transaction.
class table_cursor {
public:
    virtual ~table_cursor() = default;
    virtual const std::vector<std::string>& columns() const = 0;
    /// The next row's cells (one per column); false at the end.
    virtual result<bool> next(std::vector<std::string>& cells) = 0;
};

/// Opens a cursor over `query`, or over every row of the table `table` (schema-qualified or not)
/// when query is empty. total: also counts the rows first (for a progress bar), into *total.
result<std::unique_ptr<table_cursor>> open_postgres_cursor(const std::string& dsn, const std::string& query,
                                                           const std::string& table, std::int64_t statement_timeout_ms,
                                                           std::uint64_t* total = nullptr);

}  // namespace sluice
