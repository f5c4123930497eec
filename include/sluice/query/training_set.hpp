#pragma once
// Point-in-time training sets (POST /v1/training-sets, `sluice export`): entity rows in (NDJSON,
// CSV or a PostgreSQL query), each joined with the history of the asked feature sets as it was at
// the row's timestamp, rows out (NDJSON or CSV) in input order. Streamed in, joined in chunks,
// streamed out: memory stays bounded whatever the number of rows.
//
// A row's value of a set's feature is read from the history row with the greatest event time <= the
// row's timestamp (among equal event times the first delivered, as latest and as_of do); with
// as_known_at, only among the rows that had also arrived (ingested_at) by then. It is null, with the
// status NOT_FOUND, when there is none, and EXPIRED when that row is older than the set's TTL.
// Aggregations are aggregate_events over the key's history up to the timestamp: the tile
// definition the online path and as_of use.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sluice/config/config.hpp"
#include "sluice/core/result.hpp"
#include "sluice/store/history_join.hpp"

namespace sluice {

enum class table_format { ndjson, csv };
const char* content_type_of(table_format f);
/// "ndjson" | "csv", or a content type ("application/x-ndjson", "text/csv", with parameters).
std::optional<table_format> table_format_from(std::string_view text);

/// What a training set asks for. The HTTP route takes it as query parameters (entity rows in the
/// body) or as a JSON object (rows inline or from PostgreSQL); the CLI from its flags.
struct training_request {
    std::vector<std::string> features;  // "set:field", "set:aggregation", "set@2:field"
    bool full_feature_names = false;    // columns "set__field" (Feast's naming) instead of "field"
    bool as_known_at = false;           // only records that had arrived by the row's timestamp
    bool statuses = false;              // a "<column>__status" column after each feature
    std::string timestamp_column = "event_timestamp";  // Feast's entity_df column name
    table_format output = table_format::ndjson;
};

/// Reads the JSON form ({"features": [...], "full_feature_names": true, ...}); keys it does not
/// know are errors (entity_rows / entity_query / entity_table are the caller's). An error names
/// the key.
result<training_request> training_request_from_json(const nlohmann::json& body, table_format default_output);

/// One cell of an entity row's column: JSON text (a number, true/false, "a string", null) as the
/// row gave it. CSV cells are numbers when they read as JSON numbers, null when empty, else strings.
using cell = std::string;

struct entity_row {
    std::vector<cell> entities;  // one per plan entity column, as given
    std::vector<std::string> keys;  // the same as key text ("u1" for "u1" and for u1, "42" for 42)
    std::int64_t at_ms = 0;
    std::vector<cell> extra;     // pass-through columns, in the order of extra_columns()
};

/// Entity rows from somewhere: NDJSON, CSV, a PostgreSQL query. next() fills `row` and returns true,
/// false at the end, or a failure naming the row (1-based) and the column.
class entity_reader {
public:
    virtual ~entity_reader() = default;
    virtual result<bool> next(entity_row& row) = 0;
    /// Pass-through columns (labels, ...), known once the first row (or the header) is read.
    virtual const std::vector<std::string>& extra_columns() const = 0;
    /// Rows read so far.
    virtual std::uint64_t rows() const = 0;
};

/// Bytes of the input: fills buf with up to cap bytes; 0 at the end; a failure ends it.
using byte_source = std::function<result<std::size_t>(char* buf, std::size_t cap)>;

/// The columns a plan needs from each row: the entity columns (each set's key field; sets with the
/// same key field share one) and the timestamp column. Everything else passes through.
struct entity_columns {
    std::vector<std::string> entities;
    std::string timestamp;
};

/// NDJSON: one object per line; the first row fixes the pass-through columns (a later row
/// may leave one out: null; a column the first row lacked is an error). Timestamps: RFC 3339 or
/// epoch ms (numbers or numeric strings). Blank lines are skipped. max_line_bytes bounds a line.
std::unique_ptr<entity_reader> ndjson_entity_reader(byte_source in, entity_columns columns,
                                                    std::size_t max_line_bytes = 1 << 20);
/// CSV (RFC 4180: quotes, "" inside quotes, CRLF or LF): a header row, then the rows.
std::unique_ptr<entity_reader> csv_entity_reader(byte_source in, entity_columns columns,
                                                 std::size_t max_line_bytes = 1 << 20);

/// Rows of a table_cursor (a PostgreSQL table or query, sluice/store/history_join.hpp).
std::unique_ptr<entity_reader> cursor_entity_reader(std::unique_ptr<table_cursor> cursor, entity_columns columns);

/// One requested feature, resolved.
struct training_feature {
    std::size_t part = 0;     // index into training_plan::parts
    std::size_t column = 0;   // index into latest_columns(set): fields, then aggregations
    std::string output_name;  // "spend" or "user_activity__spend"
    field_type type = field_type::string;
};

/// A set the training set reads: its index in the config, the entity column its keys come from,
/// and whether any of its aggregations is asked (then history windows are read too).
struct training_part {
    std::uint32_t set_index = 0;
    std::size_t entity = 0;  // index into entity_columns::entities
    bool aggregations = false;
};

struct training_plan {
    training_request request;
    entity_columns columns;
    std::vector<training_part> parts;
    std::vector<training_feature> features;  // in the order asked
};

/// Resolves the request against the config: every feature named must exist; output names must be
/// distinct (else use full_feature_names). resolve maps a set name ("s" or "s@2") to its index, or -1.
result<training_plan> plan_training_set(const config& cfg, const training_request& request,
                                        const std::function<int(std::string_view)>& resolve);

/// How far an export has come (rows written, and the input's total when known).
struct training_progress {
    std::uint64_t rows = 0;
    std::optional<std::uint64_t> total;
    std::uint64_t not_found = 0;  // feature cells null because their set had no row for the key by then
    std::uint64_t expired = 0;    // ... because the row was older than the set's TTL
    double seconds = 0;
};

/// Where the rows go: write() takes the next piece of output (false: the receiver has gone, stop).
struct training_sink {
    std::function<bool(std::string_view)> write;
    std::function<void(const training_progress&)> progress;  // after each chunk; may be empty
};

struct training_options {
    std::size_t chunk_rows = 5000;  // entity rows joined per round trip
    std::optional<std::uint64_t> total_rows;  // for the progress (ETA), when known in advance
};

/// Runs the export: the header (CSV), then each chunk of rows joined and written. Returns the
/// progress at the end, or the first failure (the input's, the join's, or "the receiver has gone").
result<training_progress> run_training_set(const config& cfg, const training_plan& plan, entity_reader& rows,
                                           history_join& join, const training_sink& out,
                                           const training_options& options);

}  // namespace sluice
