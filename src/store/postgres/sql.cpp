#include "sql.hpp"

#include <charconv>
#include <cstdlib>

#include "pg_connection.hpp"
#include "sluice/config/columns.hpp"

namespace sluice::pg {

const char* sql_type(field_type t) {
    switch (t) {
        case field_type::int64: return "bigint";
        case field_type::float64: return "double precision";
        case field_type::boolean: return "boolean";
        case field_type::string: return "text";
        case field_type::timestamp: return "timestamptz";
        case field_type::json: return "jsonb";
    }
    return "text";
}

value decode_column(field_type type, const char* text, int len) {
    std::string_view s(text, static_cast<std::size_t>(len));
    switch (type) {
        case field_type::int64:
        case field_type::timestamp: {
            std::int64_t i = 0;
            std::from_chars(s.data(), s.data() + s.size(), i);
            return i;
        }
        case field_type::float64: return std::strtod(text, nullptr);
        case field_type::boolean: return s == "t";
        case field_type::string:
        case field_type::json: return std::string(s);
    }
    return {};
}

namespace {

// One feature set's tables and statements; its connection setup goes to sql.
table_sql make_table_sql(const std::string& schema, const feature_set_config& set, std::size_t index, store_sql& sql) {
    table_sql t;
    t.history = schema + "." + quote_ident(set.storage_name() + "_history");
    t.latest = schema + "." + quote_ident(set.storage_name() + "_latest");
    t.temp = quote_ident("sluice_tmp_" + set.storage_name());
    // History has the fields; latest (and the batch's temporary table) also the aggregations.
    // Columns are selected as the store decodes them: timestamps as epoch ms, json as text.
    const auto columns = latest_columns(set);
    std::string cols, agg_cols, excluded, select_cols;
    for (const auto& c : columns) {
        const auto q = quote_ident(c.name);
        (c.aggregation ? agg_cols : cols) += ", " + q;
        excluded += ", " + q + " = EXCLUDED." + q;
        const std::string expr = c.type == field_type::timestamp ? "(extract(epoch from " + q + ") * 1000)::bigint"
                                                                 : q + (c.type == field_type::json ? "::text" : "");
        select_cols += ", " + expr;
        if (!c.aggregation) t.history_select += ", " + expr;
    }
    const std::string all_cols = "key, event_time" + cols + ", ingested_at, src_topic, src_partition, src_offset";
    t.copy_sql = "COPY " + t.temp + " (" + all_cols + agg_cols + ") FROM STDIN";
    t.copy_history_sql = "COPY " + t.history + " (" + all_cols + ") FROM STDIN";
    t.copy_binary_sql = t.copy_sql + " (FORMAT binary)";
    t.copy_history_binary_sql = t.copy_history_sql + " (FORMAT binary)";
    t.insert_history_sql = "INSERT INTO " + t.history + " (" + all_cols + ") SELECT " + all_cols + " FROM " + t.temp +
                           " ON CONFLICT DO NOTHING";
    // The newest event of each key in the batch (the first delivered among equal event times);
    // it replaces the stored row only when it is newer, as in Redis and memory, so a
    // re-delivered message changes nothing.
    t.upsert_latest_sql = "INSERT INTO " + t.latest + " (key, event_time" + cols + agg_cols +
                          ", ingested_at, updated_at) SELECT DISTINCT ON (key) key, event_time" + cols + agg_cols +
                          ", ingested_at, now() FROM " + t.temp +
                          " ORDER BY key, event_time DESC, src_offset ASC NULLS LAST"
                          " ON CONFLICT (key) DO UPDATE SET event_time = EXCLUDED.event_time" +
                          excluded + ", ingested_at = EXCLUDED.ingested_at, updated_at = EXCLUDED.updated_at WHERE " +
                          t.latest + ".event_time < EXCLUDED.event_time";
    // The same from rows already reduced to the newest of each key (the fast path), in key order:
    // two batches in flight that share keys lock them in the same order.
    t.upsert_newest_sql = "INSERT INTO " + t.latest + " (key, event_time" + cols + agg_cols +
                          ", ingested_at, updated_at) SELECT key, event_time" + cols + agg_cols +
                          ", ingested_at, now() FROM " + t.temp +
                          " ORDER BY key ON CONFLICT (key) DO UPDATE SET event_time = EXCLUDED.event_time" + excluded +
                          ", ingested_at = EXCLUDED.ingested_at, updated_at = EXCLUDED.updated_at WHERE " + t.latest +
                          ".event_time < EXCLUDED.event_time";
    sql.writer_setup.push_back("CREATE TEMP TABLE IF NOT EXISTS " + t.temp + " (LIKE " + t.history +
                               ") ON COMMIT DELETE ROWS");
    // The batch has no ids: history gives them on insert.
    sql.writer_setup.push_back("ALTER TABLE " + t.temp + " ALTER COLUMN id DROP NOT NULL");
    for (const auto& a : set.aggregations)
        sql.writer_setup.push_back("ALTER TABLE " + t.temp + " ADD COLUMN IF NOT EXISTS " + quote_ident(a.name) + " " +
                                   sql_type(result_type(set, a)));
    const std::string times = "(extract(epoch from event_time) * 1000)::bigint, "
                              "(extract(epoch from ingested_at) * 1000)::bigint";
    const std::string row = times + select_cols;
    t.read_latest_stmt = "latest_" + std::to_string(index);
    sql.reader_setup.push_back("PREPARE " + t.read_latest_stmt + " (text) AS SELECT " + row + " FROM " + t.latest +
                               " WHERE key = $1");
    t.history_stmt = "history_" + std::to_string(index);
    sql.reader_setup.push_back("PREPARE " + t.history_stmt + " (text, bigint, bigint, bigint, bigint, bigint) AS SELECT " +
                               times + t.history_select + ", id FROM " + t.history +
                               " WHERE key = $1 AND event_time >= to_timestamp($2 / 1000.0)"
                               " AND event_time < to_timestamp($3 / 1000.0)"
                               " AND ($5 < 0 OR (event_time, id) < (to_timestamp($4 / 1000.0), $5))"
                               " ORDER BY event_time DESC, id DESC LIMIT $6");
    t.scan_latest_stmt = "scan_latest_" + std::to_string(index);
    sql.reader_setup.push_back("PREPARE " + t.scan_latest_stmt + " (bigint, text, bigint) AS SELECT " + row +
                               ", key FROM " + t.latest +
                               " WHERE updated_at >= to_timestamp($1 / 1000.0) AND key > $2 ORDER BY key LIMIT $3");
    // Among equal event times the first delivered counts, as in latest.
    const std::string history_row = times + t.history_select;
    t.as_of_newest_sql = "SELECT " + history_row + " FROM " + t.history +
                         " WHERE key = $1 AND event_time <= to_timestamp($2::bigint / 1000.0)"
                         " ORDER BY event_time DESC, src_offset ASC NULLS LAST LIMIT 1";
    t.as_of_window_sql = "SELECT " + history_row + " FROM " + t.history +
                         " WHERE key = $1 AND event_time <= to_timestamp($2::bigint / 1000.0)"
                         " AND event_time > to_timestamp($3::bigint / 1000.0) ORDER BY event_time, src_offset, id";
    return t;
}

// Creates or migrates the schema (idempotent: every instance runs it at start).
std::vector<std::string> make_schema_ddl(const config& cfg, const std::string& schema, const std::vector<table_sql>& tables,
                                         const std::string& offsets, const std::string& dead_letters) {
    std::vector<std::string> ddl;
    ddl.push_back("SELECT pg_advisory_xact_lock(hashtext('sluice.schema'))");
    ddl.push_back("CREATE SCHEMA IF NOT EXISTS " + schema);
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i) {
        const auto& set = cfg.feature_sets[i];
        const auto& t = tables[i];
        ddl.push_back("CREATE TABLE IF NOT EXISTS " + t.history +
                      " (key text COLLATE \"C\" NOT NULL, event_time timestamptz NOT NULL,"
                      " ingested_at timestamptz NOT NULL, src_topic text, src_partition int, src_offset bigint,"
                      " id bigserial NOT NULL)");
        // Tables made before rows had ids get them now (a one-time rewrite of the table).
        ddl.push_back("ALTER TABLE " + t.history + " ADD COLUMN IF NOT EXISTS id bigserial NOT NULL");
        ddl.push_back("CREATE TABLE IF NOT EXISTS " + t.latest +
                      " (key text COLLATE \"C\" PRIMARY KEY, event_time timestamptz NOT NULL,"
                      " ingested_at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())");
        ddl.push_back("ALTER TABLE " + t.latest + " SET (fillfactor = 70)");
        for (const auto& c : latest_columns(set)) {
            const std::string col = quote_ident(c.name) + " " + sql_type(c.type);
            if (!c.aggregation) ddl.push_back("ALTER TABLE " + t.history + " ADD COLUMN IF NOT EXISTS " + col);
            ddl.push_back("ALTER TABLE " + t.latest + " ADD COLUMN IF NOT EXISTS " + col);
        }
        // Each message is in history once because a batch commits only on the offset it continues
        // from (the offsets' fencing). The unique index on the Kafka source is a second guard, at an
        // index entry per row; without it a block-range index keeps a partition's rows by offset
        // findable (a partition taken over is caught up from them) at almost no cost per row.
        const std::string unique_src = quote_ident(set.storage_name() + "_history_src");
        if (cfg.postgres->history_unique_index) {
            ddl.push_back("CREATE UNIQUE INDEX IF NOT EXISTS " + unique_src + " ON " + t.history +
                          " (src_topic, src_partition, src_offset)");
        } else {
            ddl.push_back("DROP INDEX IF EXISTS " + schema + "." + unique_src);
        }
        ddl.push_back("CREATE INDEX IF NOT EXISTS " + quote_ident(set.storage_name() + "_history_src_range") + " ON " +
                      t.history + " USING brin (src_offset)");
        ddl.push_back("CREATE INDEX IF NOT EXISTS " + quote_ident(set.storage_name() + "_history_key_time") + " ON " + t.history +
                      " (key, event_time DESC)");
    }
    ddl.push_back("CREATE TABLE IF NOT EXISTS " + offsets +
                  " (group_id text NOT NULL, topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,"
                  " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (group_id, topic, partition))");
    ddl.push_back("CREATE TABLE IF NOT EXISTS " + dead_letters +
                  " (id bigserial PRIMARY KEY, feature_set text NOT NULL, src_topic text, src_partition int,"
                  " src_offset bigint, payload bytea, error text NOT NULL, received_at timestamptz NOT NULL)");
    // Per feature set: two versions of a set read the same messages, and may both reject one.
    ddl.push_back("CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_set_src ON " + dead_letters +
                  " (feature_set, src_topic, src_partition, src_offset)");
    ddl.push_back("DROP INDEX IF EXISTS " + schema + ".dead_letters_src");
    // Records held by an expectation of severity quarantine, until an admin releases them.
    ddl.push_back("CREATE TABLE IF NOT EXISTS " + schema +
                  ".quarantine (id bigserial PRIMARY KEY, feature_set text NOT NULL, src_topic text,"
                  " src_partition int, src_offset bigint, payload bytea NOT NULL, rule text NOT NULL,"
                  " quarantined_at timestamptz NOT NULL, claim text, claimed_at timestamptz,"
                  " released_at timestamptz, released_by text)");
    ddl.push_back("CREATE UNIQUE INDEX IF NOT EXISTS quarantine_set_src ON " + schema +
                  ".quarantine (feature_set, src_topic, src_partition, src_offset)");
    return ddl;
}

}  // namespace

store_sql make_store_sql(const config& cfg) {
    store_sql sql;
    const std::string schema = quote_ident(cfg.postgres->schema);
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i)
        sql.tables.push_back(make_table_sql(schema, cfg.feature_sets[i], i, sql));
    const std::string dead_letters = schema + ".dead_letters";
    const std::string offsets = schema + ".consumer_offsets";
    sql.schema_ddl = make_schema_ddl(cfg, schema, sql.tables, offsets, dead_letters);
    sql.insert_dead_letter_sql = "INSERT INTO " + dead_letters +
                                 " (feature_set, src_topic, src_partition, src_offset, payload, error,"
                                 " received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
    sql.insert_quarantine_sql = "INSERT INTO " + schema +
                                ".quarantine (feature_set, src_topic, src_partition, src_offset, payload, rule,"
                                " quarantined_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
    // Fencing: a partition's offset moves from the stored offset the batch continues from
    // (expected >= 0), or is created where none is stored (expected -1); a batch written without
    // fencing (expected -2) only ever moves it forward. A row another writer holds locked is
    // waited for and then checked again as that writer committed it, so of two writers of one
    // partition only the first to commit counts; the other's statement counts fewer rows than it
    // sent and its transaction rolls back.
    const std::string o = "o (topic, partition, next_offset, expected)";
    sql.fence_offsets_sql =
        "WITH o AS (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS " + o + "), "
        "moved AS (UPDATE " + offsets + " AS t SET next_offset = o.next_offset, updated_at = now() FROM o"
        " WHERE t.group_id = $1 AND t.topic = o.topic AND t.partition = o.partition AND o.expected >= 0"
        " AND t.next_offset = o.expected RETURNING 1), "
        "created AS (INSERT INTO " + offsets + " (group_id, topic, partition, next_offset, updated_at)"
        " SELECT $1, topic, partition, next_offset, now() FROM o WHERE o.expected = -1 ON CONFLICT DO NOTHING"
        " RETURNING 1), "
        "forward AS (INSERT INTO " + offsets + " AS t (group_id, topic, partition, next_offset, updated_at)"
        " SELECT $1, topic, partition, next_offset, now() FROM o WHERE o.expected < -1"
        " ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset ="
        " GREATEST(t.next_offset, EXCLUDED.next_offset), updated_at = now() RETURNING 1) "
        "SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM created) + (SELECT count(*) FROM forward)";
    // Waits for the writers holding these partitions' rows (a batch before this one in flight
    // that has stored its offsets and not committed yet) so that the fence, a statement of its
    // own after it, compares with what they committed.
    sql.lock_offsets_sql = "SELECT 1 FROM " + offsets + " AS t JOIN unnest($2::text[], $3::int[]) AS o (topic, partition)"
                           " ON t.topic = o.topic AND t.partition = o.partition WHERE t.group_id = $1"
                           " ORDER BY t.topic, t.partition FOR UPDATE OF t";
    sql.last_update_sql = "SELECT coalesce(max(t), 0) FROM (";
    for (std::size_t i = 0; i < sql.tables.size(); ++i)
        sql.last_update_sql += (i ? " UNION ALL " : "") +
                               std::string("SELECT (extract(epoch from max(updated_at)) * 1000)::bigint AS t FROM ") +
                               sql.tables[i].latest;
    sql.last_update_sql += ") s";
    sql.read_offsets_sql = "SELECT topic, partition, next_offset FROM " + offsets + " WHERE group_id = $1";
    return sql;
}

std::string history_scan_sql(const table_sql& t, const history_scan& scan, const std::string& topic_literal) {
    std::string sql = "SELECT key, (extract(epoch from event_time) * 1000)::bigint" + t.history_select +
                      ", coalesce(src_partition, -1) FROM " + t.history + " WHERE event_time >= to_timestamp(" +
                      std::to_string(scan.since_ms) + " / 1000.0)";
    if (scan.partition >= 0) {
        sql += " AND src_topic = " + topic_literal + " AND src_partition = " + std::to_string(scan.partition) +
               " AND src_offset >= " + std::to_string(scan.from_offset) + " AND src_offset < " +
               std::to_string(scan.to_offset) + " ORDER BY src_offset";
    } else {
        sql += " ORDER BY event_time, src_partition, src_offset";
    }
    return sql;
}

}  // namespace sluice::pg
