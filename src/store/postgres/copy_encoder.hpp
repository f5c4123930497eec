#pragma once
// The data the PostgreSQL store sends with COPY ... FROM STDIN, in COPY's two formats: text
// (tab-separated columns, backslash escapes, \N for NULL, one row a line) and binary (a
// signature and header, per row a 16-bit field count and per field a 32-bit length, -1 for NULL,
// then the value in its type's binary send form; a -1 field count ends the data). No libpq here:
// the bytes are a function of the config and the records, and the unit tests check them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config/columns.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/record.hpp"

namespace sluice::pg {

// --- COPY text format ---

/// Appends s escaped for COPY text: backslash, tab, newline and carriage return as \\, \t, \n, \r.
void append_copy_text(std::string& out, std::string_view s);
/// Appends one value as a column of COPY text: \N for NULL, a timestamp (epoch ms) in RFC 3339,
/// a double in its shortest text that reads back the same, a boolean as t or f.
void append_copy_value(std::string& out, field_type type, const value& v);

// --- COPY binary format (every integer big-endian) ---

/// The signature "PGCOPY\n\377\r\n\0", 32-bit flags (0: no OIDs) and a 32-bit header extension
/// length (0).
inline constexpr std::string_view copy_binary_header{"PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19};
/// 2000-01-01T00:00:00Z in epoch ms: timestamptz counts microseconds from there.
inline constexpr std::int64_t pg_epoch_ms = 946684800000;

/// Appends the low `bytes` bytes of v, most significant first.
void put_be(std::string& out, std::uint64_t v, int bytes);
/// A NULL field: length -1.
void put_null(std::string& out);
/// A text field: its length, then its bytes as they are.
void put_text(std::string& out, std::string_view s);
/// A timestamptz field from epoch ms: length 8, then microseconds since 2000-01-01 UTC. False
/// (nothing appended) when the time is outside what 64-bit microseconds hold: the text form then
/// lets PostgreSQL say what is wrong.
bool put_timestamptz(std::string& out, std::int64_t ms);
/// One field in the binary form of its column's type (NULL for an empty value): bigint, double
/// precision (an integer value converted, as PostgreSQL reads the integer's text), boolean (one
/// byte), text, timestamptz, jsonb (version byte 1, then the text). False when the value does
/// not have that type: the batch then goes as text, as it always could.
bool append_binary_value(std::string& out, field_type type, const value& v);

/// A batch as COPY data per feature set (indexed like config::feature_sets; empty when the set
/// has nothing in the batch): rows for history, and rows for the batch's temporary table, which
/// also carry the aggregation columns.
struct batch_copy {
    std::vector<std::string> history, temp;
    bool binary = false;  // COPY's binary format (the fast path, when every value has its column's type)
};

/// Builds the COPY rows of the store's tables from records: key, event time, the set's fields,
/// ingested_at, then the source (topic, partition, offset; NULL where a pushed record has none),
/// and for the temporary table the aggregation values the store writer appended after the fields.
/// Owned by the PostgreSQL store; used on the store writer thread (it holds no mutable state).
class copy_encoder {
public:
    /// cfg outlives the encoder.
    explicit copy_encoder(const config& cfg);

    /// fast: every record for history and only the newest record of each key for the temporary
    /// table (latest's upsert), in the binary format when every value has its column's type and
    /// every time fits a timestamptz, in text otherwise. Not fast: every record for the
    /// temporary table alone, in text.
    batch_copy encode(const write_batch& batch, bool fast) const;

    /// One record as a COPY text row (with its newline); the aggregation columns after the
    /// source when with_aggregations.
    void append_row(std::string& out, const record& r, bool with_aggregations) const;
    /// The aggregation columns of a text row, each after a tab (\N for a value the record lacks).
    void append_aggregations(std::string& out, const record& r) const;
    /// One record as a binary COPY row of history; false when a value does not have its
    /// column's type or a time does not fit a timestamptz (out holds part of a row then).
    bool append_binary_row(std::string& out, const record& r) const;

private:
    /// encode()'s fast path in the binary format; nullopt when a row cannot be binary.
    std::optional<batch_copy> encode_binary(const write_batch& batch, const std::vector<char>& is_newest) const;

    const config& cfg_;
    std::vector<std::vector<latest_column>> columns_;  // per set: fields, then aggregations
};

}  // namespace sluice::pg
