#pragma once
// The SQL text of the PostgreSQL store: the schema it creates and migrates at start, what each
// connection runs as it connects (the writer's temporary tables, the readers' prepared
// statements), and the statements of the write and read paths. Built once from the config; the
// store runs them.

#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/ports/durable_store.hpp"

namespace sluice::pg {

/// PostgreSQL's column type for a field type.
const char* sql_type(field_type t);

/// The tables of one feature set and the statements on them. Columns are selected as the store
/// decodes them: timestamps as epoch ms (bigint), json as text.
struct table_sql {
    std::string history, latest, temp;  // qualified names; temp is the writer's temporary table
    /// COPY into the temporary table (history's columns, then the aggregations) or into history,
    /// in text or binary.
    std::string copy_sql, copy_history_sql, copy_binary_sql, copy_history_binary_sql;
    /// The safe path: history takes the temporary rows it does not hold yet.
    std::string insert_history_sql;
    /// Latest from the temporary rows: the newest of each key (upsert_latest_sql), or rows
    /// already reduced to it (upsert_newest_sql, the fast path); a row replaces the stored one
    /// only when its event is newer.
    std::string upsert_latest_sql, upsert_newest_sql;
    /// Names of the statements prepared on reader connections (reader_setup).
    std::string read_latest_stmt, scan_latest_stmt, history_stmt;
    /// As-of reads: the newest row at or before a moment ($1 key, $2 ms), and the rows in a
    /// window before it ($3 ms, exclusive).
    std::string as_of_newest_sql, as_of_window_sql;
    /// ", <field column as selected>" for each field of the set.
    std::string history_select;
};

/// All the statements of the store.
struct store_sql {
    std::vector<table_sql> tables;          // per feature set, in config order
    std::vector<std::string> writer_setup;  // run by a writer connection each time it connects
    std::vector<std::string> reader_setup;  // run by a reader connection each time it connects
    /// Creates or migrates the schema, in order, in one transaction (the first takes a lock
    /// that serializes instances starting together).
    std::vector<std::string> schema_ddl;
    /// $1 feature set, $2 topic, $3 partition, $4 offset, $5 payload (binary), $6 error,
    /// $7 received at; a dead letter already stored is left as it is.
    std::string insert_dead_letter_sql;
    std::string insert_quarantine_sql;  // a dead letter of reason quarantined goes here instead
    /// $1 group, then text[], int[], bigint[] and bigint[] arrays of topic, partition, next
    /// offset and expected stored offset (partition_offset::expected); answers how many
    /// partitions moved: fewer than sent means another writer holds one of them.
    std::string fence_offsets_sql;
    /// $1 group, text[] and int[] of topic and partition: locks those offset rows (waiting for
    /// their writers' commits), in order.
    std::string lock_offsets_sql;
    /// The newest updated_at of any latest row, epoch ms (0 when none).
    std::string last_update_sql;
    /// The offsets a consumer group stored ($1 group): topic, partition, next offset.
    std::string read_offsets_sql;
};

/// Builds every statement from the config (the schema from postgres.schema).
store_sql make_store_sql(const config& cfg);

/// Decodes one selected column (as text; timestamps selected as epoch ms, json as text).
value decode_column(field_type type, const char* text, int len);

/// The query for_each_history streams: key, event time (ms), the fields, the partition (-1 for
/// none). topic_literal: scan.topic quoted as a literal (PQescapeLiteral); used only when
/// scan.partition >= 0.
std::string history_scan_sql(const table_sql& t, const history_scan& scan, const std::string& topic_literal);

}  // namespace sluice::pg
