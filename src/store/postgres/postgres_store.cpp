#include <spdlog/spdlog.h>

#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <future>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>

#include "pg_connection.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/newest_of_each_key.hpp"
#include "sluice/store/postgres_store.hpp"

namespace sluice {
namespace {

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

// Appends s in COPY text format (backslash escapes for the delimiter, newlines and backslash).
void append_copy_text(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += c;
        }
    }
}

void append_copy_value(std::string& out, field_type type, const value& v) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                out += "\\N";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp)
                    out += format_rfc3339_ms(x);
                else
                    out += std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                // Shortest text that reads back as the same double (what the JSON text was).
                char buf[32];
                auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
                if (ec == std::errc{} && std::isfinite(x))
                    out.append(buf, end);
                else
                    out += nlohmann::json(x).dump();
            } else if constexpr (std::is_same_v<T, bool>) {
                out += x ? 't' : 'f';
            } else {
                append_copy_text(out, x);
            }
        },
        v);
}

// COPY's binary format (big-endian): a header, per row a 16-bit column count and per column a
// 32-bit length (-1: NULL) and the value in the type's binary form, then a -1 trailer.
constexpr std::string_view copy_binary_header{"PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19};
constexpr std::int64_t pg_epoch_ms = 946684800000;  // 2000-01-01T00:00:00Z, where timestamps count from

void put_be(std::string& out, std::uint64_t v, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
void put_null(std::string& out) { put_be(out, 0xffffffffu, 4); }
void put_text(std::string& out, std::string_view s) {
    put_be(out, s.size(), 4);
    out += s;
}
// False when the time is outside what a timestamptz holds (the text form then lets PostgreSQL
// say so).
bool put_timestamptz(std::string& out, std::int64_t ms) {
    std::int64_t us = 0;
    if (__builtin_sub_overflow(ms, pg_epoch_ms, &us) || __builtin_mul_overflow(us, 1000, &us)) return false;
    put_be(out, 8, 4);
    put_be(out, static_cast<std::uint64_t>(us), 8);
    return true;
}

// One value in the binary form of its column's type; false when the value does not have that
// type (the batch then goes as text, as it always could).
bool append_binary_value(std::string& out, field_type type, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) {
        put_null(out);
        return true;
    }
    switch (type) {
        case field_type::int64:
            if (const auto* i = std::get_if<std::int64_t>(&v)) {
                put_be(out, 8, 4);
                put_be(out, static_cast<std::uint64_t>(*i), 8);
                return true;
            }
            return false;
        case field_type::timestamp:
            if (const auto* i = std::get_if<std::int64_t>(&v)) return put_timestamptz(out, *i);
            return false;
        case field_type::float64: {
            double d = 0;
            if (const auto* x = std::get_if<double>(&v))
                d = *x;
            else if (const auto* i = std::get_if<std::int64_t>(&v))
                d = static_cast<double>(*i);  // as PostgreSQL reads the integer's text
            else
                return false;
            put_be(out, 8, 4);
            put_be(out, std::bit_cast<std::uint64_t>(d), 8);
            return true;
        }
        case field_type::boolean:
            if (const auto* b = std::get_if<bool>(&v)) {
                put_be(out, 1, 4);
                out += *b ? '\1' : '\0';
                return true;
            }
            return false;
        case field_type::string:
            if (const auto* str = std::get_if<std::string>(&v)) {
                put_text(out, *str);
                return true;
            }
            return false;
        case field_type::json:
            if (const auto* str = std::get_if<std::string>(&v)) {
                put_be(out, str->size() + 1, 4);
                out += '\1';  // jsonb's binary form: version 1, then the text
                out += *str;
                return true;
            }
            return false;
    }
    return false;
}

// Decodes one column of a latest row (selected as text; timestamps as epoch ms).
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

/// A fixed set of reader connections handed out one request at a time.
class connection_pool {
public:
    connection_pool(std::size_t n, const std::string& dsn, const std::vector<std::string>& on_connect) {
        for (std::size_t i = 0; i < n; ++i) free_.push_back(std::make_unique<pg::connection>(dsn, on_connect));
    }
    std::unique_ptr<pg::connection> acquire() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !free_.empty(); });
        auto c = std::move(free_.back());
        free_.pop_back();
        return c;
    }
    void release(std::unique_ptr<pg::connection> c) {
        {
            std::lock_guard lock(mutex_);
            free_.push_back(std::move(c));
        }
        cv_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<pg::connection>> free_;
};

/// Writes batches on the store writer thread (one connection) and serves reads from a pool.
class postgres_store final : public durable_store {
public:
    explicit postgres_store(const config& cfg) : cfg_(cfg), pg_(*cfg.postgres), log_(module_logger(log_module::postgres)) {
        const std::string schema = pg::quote_ident(pg_.schema);
        std::vector<std::string> writer_setup;
        std::vector<std::string> reader_setup;
        for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i) {
            const auto& set = cfg.feature_sets[i];
            table t;
            t.history = schema + "." + pg::quote_ident(set.name + "_history");
            t.latest = schema + "." + pg::quote_ident(set.name + "_latest");
            t.temp = pg::quote_ident("sluice_tmp_" + set.name);
            // History has the fields; latest (and the batch's temporary table) also the aggregations.
            // Columns are selected as decode_column reads them: timestamps as epoch ms, json as text.
            auto columns = latest_columns(set);
            std::string cols, agg_cols, excluded, select_cols, history_select;
            for (const auto& c : columns) {
                const auto q = pg::quote_ident(c.name);
                (c.aggregation ? agg_cols : cols) += ", " + q;
                excluded += ", " + q + " = EXCLUDED." + q;
                const std::string expr = c.type == field_type::timestamp ? "(extract(epoch from " + q + ") * 1000)::bigint"
                                                                         : q + (c.type == field_type::json ? "::text" : "");
                select_cols += ", " + expr;
                if (!c.aggregation) history_select += ", " + expr;
            }
            const std::string all_cols = "key, event_time" + cols + ", ingested_at, src_topic, src_partition, src_offset";
            t.copy_sql = "COPY " + t.temp + " (" + all_cols + agg_cols + ") FROM STDIN";
            t.copy_history_sql = "COPY " + t.history + " (" + all_cols + ") FROM STDIN";
            t.copy_binary_sql = t.copy_sql + " (FORMAT binary)";
            t.copy_history_binary_sql = t.copy_history_sql + " (FORMAT binary)";
            t.insert_history_sql = "INSERT INTO " + t.history + " (" + all_cols + ") SELECT " + all_cols + " FROM " +
                                   t.temp + " ON CONFLICT DO NOTHING";
            // The newest event of each key in the batch (the first delivered among equal event times);
            // it replaces the stored row only when it is newer, as in Redis and memory, so a
            // re-delivered message changes nothing.
            t.upsert_latest_sql = "INSERT INTO " + t.latest + " (key, event_time" + cols + agg_cols +
                                  ", ingested_at, updated_at) SELECT DISTINCT ON (key) key, event_time" + cols +
                                  agg_cols +
                                  ", ingested_at, now() FROM " + t.temp +
                                  " ORDER BY key, event_time DESC, src_offset ASC NULLS LAST"
                                  " ON CONFLICT (key) DO UPDATE SET event_time = EXCLUDED.event_time" +
                                  excluded +
                                  ", ingested_at = EXCLUDED.ingested_at, updated_at = EXCLUDED.updated_at WHERE " +
                                  t.latest + ".event_time < EXCLUDED.event_time";
            // The same from rows already reduced to the newest of each key (the fast path).
            t.upsert_newest_sql = "INSERT INTO " + t.latest + " (key, event_time" + cols + agg_cols +
                                  ", ingested_at, updated_at) SELECT key, event_time" + cols + agg_cols +
                                  ", ingested_at, now() FROM " + t.temp +
                                  " ON CONFLICT (key) DO UPDATE SET event_time = EXCLUDED.event_time" + excluded +
                                  ", ingested_at = EXCLUDED.ingested_at, updated_at = EXCLUDED.updated_at WHERE " +
                                  t.latest + ".event_time < EXCLUDED.event_time";
            writer_setup.push_back("CREATE TEMP TABLE IF NOT EXISTS " + t.temp + " (LIKE " + t.history +
                                   ") ON COMMIT DELETE ROWS");
            // The batch has no ids: history gives them on insert.
            writer_setup.push_back("ALTER TABLE " + t.temp + " ALTER COLUMN id DROP NOT NULL");
            for (const auto& a : set.aggregations)
                writer_setup.push_back("ALTER TABLE " + t.temp + " ADD COLUMN IF NOT EXISTS " + pg::quote_ident(a.name) +
                                       " " + sql_type(result_type(set, a)));
            const std::string row = "(extract(epoch from event_time) * 1000)::bigint, "
                                    "(extract(epoch from ingested_at) * 1000)::bigint" + select_cols;
            t.read_latest_stmt = "latest_" + std::to_string(i);
            reader_setup.push_back("PREPARE " + t.read_latest_stmt + " (text) AS SELECT " + row + " FROM " + t.latest +
                                   " WHERE key = $1");
            t.history_stmt = "history_" + std::to_string(i);
            reader_setup.push_back("PREPARE " + t.history_stmt + " (text, bigint, bigint, bigint, bigint, bigint) AS SELECT " +
                                   "(extract(epoch from event_time) * 1000)::bigint, "
                                   "(extract(epoch from ingested_at) * 1000)::bigint" + history_select + ", id FROM " +
                                   t.history +
                                   " WHERE key = $1 AND event_time >= to_timestamp($2 / 1000.0)"
                                   " AND event_time < to_timestamp($3 / 1000.0)"
                                   " AND ($5 < 0 OR (event_time, id) < (to_timestamp($4 / 1000.0), $5))"
                                   " ORDER BY event_time DESC, id DESC LIMIT $6");
            t.scan_latest_stmt = "scan_latest_" + std::to_string(i);
            reader_setup.push_back("PREPARE " + t.scan_latest_stmt + " (bigint, text, bigint) AS SELECT " + row +
                                   ", key FROM " + t.latest +
                                   " WHERE updated_at >= to_timestamp($1 / 1000.0) AND key > $2 ORDER BY key LIMIT $3");
            tables_.push_back(std::move(t));
            columns_.push_back(std::move(columns));
            history_select_.push_back(std::move(history_select));
        }
        dead_letters_ = schema + ".dead_letters";
        offsets_ = schema + ".consumer_offsets";
        writer_ = std::make_unique<pg::connection>(pg_.dsn, writer_setup);
        if (pg_.parallel_latest) latest_writer_ = std::make_unique<pg::connection>(pg_.dsn, writer_setup);
        readers_ = std::make_unique<connection_pool>(static_cast<std::size_t>(pg_.pool_size), pg_.dsn, reader_setup);
    }

    status prepare() override {
        // Tables must exist before the writer's temp tables can copy their shape.
        pg::connection admin(pg_.dsn, {});
        if (auto s = admin.exec("BEGIN"); !s) return fail(s.message());
        std::vector<std::string> ddl;
        ddl.push_back("SELECT pg_advisory_xact_lock(hashtext('sluice.schema'))");
        const std::string schema = pg::quote_ident(pg_.schema);
        ddl.push_back("CREATE SCHEMA IF NOT EXISTS " + schema);
        for (std::size_t i = 0; i < cfg_.feature_sets.size(); ++i) {
            const auto& set = cfg_.feature_sets[i];
            const auto& t = tables_[i];
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
                const std::string col = pg::quote_ident(c.name) + " " + sql_type(c.type);
                if (!c.aggregation) ddl.push_back("ALTER TABLE " + t.history + " ADD COLUMN IF NOT EXISTS " + col);
                ddl.push_back("ALTER TABLE " + t.latest + " ADD COLUMN IF NOT EXISTS " + col);
            }
            ddl.push_back("CREATE UNIQUE INDEX IF NOT EXISTS " + pg::quote_ident(set.name + "_history_src") + " ON " +
                          t.history + " (src_topic, src_partition, src_offset)");
            ddl.push_back("CREATE INDEX IF NOT EXISTS " + pg::quote_ident(set.name + "_history_key_time") + " ON " +
                          t.history + " (key, event_time DESC)");
        }
        ddl.push_back("CREATE TABLE IF NOT EXISTS " + offsets_ +
                      " (group_id text NOT NULL, topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,"
                      " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (group_id, topic, partition))");
        ddl.push_back("CREATE TABLE IF NOT EXISTS " + dead_letters_ +
                      " (id bigserial PRIMARY KEY, feature_set text NOT NULL, src_topic text, src_partition int,"
                      " src_offset bigint, payload bytea, error text NOT NULL, received_at timestamptz NOT NULL)");
        ddl.push_back("CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_src ON " + dead_letters_ +
                      " (src_topic, src_partition, src_offset)");
        for (const auto& sql : ddl) {
            if (auto s = admin.exec(sql); !s) {
                (void)admin.exec("ROLLBACK");
                return fail("creating tables: " + s.message());
            }
        }
        if (auto s = admin.exec("COMMIT"); !s) return fail(s.message());
        log_->info("schema {} ready ({} feature sets)", pg_.schema, cfg_.feature_sets.size());
        return ok();
    }

    status write(const write_batch& batch) override {
        // Without records there is nothing for latest to do in parallel.
        auto s = latest_writer_ && !batch.records.empty() ? write_split(batch) : write_once(batch, /*fast=*/true);
        if (!s && writer_->connected() && writer_->last_sqlstate() == pg::unique_violation) {
            // Some rows are in history already (a re-delivery past the stored offsets, or another
            // instance wrote them): redo the batch the safe way, which skips exactly those rows.
            (void)writer_->exec("ROLLBACK");
            log_->info("batch of {} records holds rows already in history; writing it again without them",
                       batch.records.size());
            s = write_once(batch, /*fast=*/false);
        }
        if (!s) {
            if (writer_->connected()) (void)writer_->exec("ROLLBACK");
            return fail(s.message());
        }
        return ok();
    }

    result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) override {
        using R = result<std::optional<latest_entry>>;
        auto conn = readers_->acquire();
        auto r = conn->exec_prepared(tables_[set_index].read_latest_stmt, {key.c_str()});
        readers_->release(std::move(conn));
        if (!r) {
            healthy_.store(false);
            return R::failure(r.message());
        }
        healthy_.store(true);
        PGresult* res = r.value().get();
        if (PQntuples(res) == 0) return std::optional<latest_entry>{};
        latest_entry e = decode_latest(set_index, res, 0);
        e.key = key;
        return std::optional<latest_entry>{std::move(e)};
    }

    result<std::vector<latest_entry>> scan_latest(std::uint32_t set_index, std::int64_t since_ms,
                                                  const std::string& after_key, std::size_t limit) override {
        using R = result<std::vector<latest_entry>>;
        const std::string since = std::to_string(since_ms);
        const std::string lim = std::to_string(limit);
        auto conn = readers_->acquire();
        auto r = conn->exec_prepared(tables_[set_index].scan_latest_stmt, {since.c_str(), after_key.c_str(), lim.c_str()});
        readers_->release(std::move(conn));
        if (!r) return R::failure(r.message());
        PGresult* res = r.value().get();
        const int key_col = static_cast<int>(columns_[set_index].size()) + 2;
        std::vector<latest_entry> out;
        out.reserve(static_cast<std::size_t>(PQntuples(res)));
        for (int row = 0; row < PQntuples(res); ++row) {
            out.push_back(decode_latest(set_index, res, row));
            out.back().key.assign(PQgetvalue(res, row, key_col), static_cast<std::size_t>(PQgetlength(res, row, key_col)));
        }
        return out;
    }

    result<history_slice> read_as_of(std::uint32_t set_index, const std::string& key, std::int64_t at_ms,
                                     std::int64_t span_ms) override {
        using R = result<history_slice>;
        const std::string at = std::to_string(at_ms);
        const std::string from = std::to_string(at_ms - span_ms);
        const std::string row = "(extract(epoch from event_time) * 1000)::bigint, "
                                "(extract(epoch from ingested_at) * 1000)::bigint" + history_select_[set_index];
        auto conn = readers_->acquire();
        // Among equal event times the first delivered counts, as in latest.
        auto newest = conn->exec_params("SELECT " + row + " FROM " + tables_[set_index].history +
                                            " WHERE key = $1 AND event_time <= to_timestamp($2::bigint / 1000.0)"
                                            " ORDER BY event_time DESC, src_offset ASC NULLS LAST LIMIT 1",
                                        {key.c_str(), at.c_str()});
        result<pg::result_ptr> window = result<pg::result_ptr>::failure("not read");
        if (newest && span_ms > 0)
            window = conn->exec_params("SELECT " + row + " FROM " + tables_[set_index].history +
                                           " WHERE key = $1 AND event_time <= to_timestamp($2::bigint / 1000.0)"
                                           " AND event_time > to_timestamp($3::bigint / 1000.0) ORDER BY event_time",
                                       {key.c_str(), at.c_str(), from.c_str()});
        readers_->release(std::move(conn));
        if (!newest) return R::failure(newest.message());
        if (span_ms > 0 && !window) return R::failure(window.message());
        history_slice out;
        auto decode_fields = [&](PGresult* res, int r) {
            latest_entry e = decode_latest(set_index, res, r, /*fields_only=*/true);
            e.key = key;
            return e;
        };
        if (PQntuples(newest.value().get()) > 0) out.newest = decode_fields(newest.value().get(), 0);
        if (span_ms > 0) {
            PGresult* res = window.value().get();
            for (int r = 0; r < PQntuples(res); ++r) {
                auto e = decode_fields(res, r);
                out.events.emplace_back(e.event_time_ms, std::move(e.values));
            }
        }
        return out;
    }

    result<std::vector<history_row>> read_history(std::uint32_t set_index, const std::string& key,
                                                  std::int64_t from_ms, std::int64_t to_ms, std::size_t limit,
                                                  std::int64_t after_time_ms, std::int64_t after_id) override {
        using R = result<std::vector<history_row>>;
        const std::string from = std::to_string(from_ms), to = std::to_string(to_ms),
                          after_time = std::to_string(after_time_ms), after = std::to_string(after_id),
                          lim = std::to_string(limit);
        auto conn = readers_->acquire();
        auto r = conn->exec_prepared(tables_[set_index].history_stmt,
                                     {key.c_str(), from.c_str(), to.c_str(), after_time.c_str(), after.c_str(), lim.c_str()});
        readers_->release(std::move(conn));
        if (!r) {
            healthy_.store(false);
            return R::failure(r.message());
        }
        healthy_.store(true);
        PGresult* res = r.value().get();
        const int id_col = static_cast<int>(cfg_.feature_sets[set_index].fields.size()) + 2;
        std::vector<history_row> out;
        out.reserve(static_cast<std::size_t>(PQntuples(res)));
        for (int row = 0; row < PQntuples(res); ++row) {
            history_row h;
            h.entry = decode_latest(set_index, res, row, /*fields_only=*/true);
            h.entry.key = key;
            h.id = std::atoll(PQgetvalue(res, row, id_col));
            out.push_back(std::move(h));
        }
        return out;
    }

    status for_each_history(std::uint32_t set_index, const history_scan& scan, const history_visitor& fn) override {
        const auto& set = cfg_.feature_sets[set_index];
        // A connection of its own, rows streamed one at a time (the history can be large).
        pg::connection conn(pg_.dsn, {});
        if (auto s = conn.ensure(); !s) return s;
        std::string sql = "SELECT key, (extract(epoch from event_time) * 1000)::bigint" + history_select_[set_index] +
                          ", coalesce(src_partition, -1) FROM " + tables_[set_index].history +
                          " WHERE event_time >= to_timestamp(" + std::to_string(scan.since_ms) + " / 1000.0)";
        if (scan.partition >= 0) {
            char* topic = PQescapeLiteral(conn.raw(), scan.topic.c_str(), scan.topic.size());
            if (!topic) return status::failure(std::string("reading history: ") + PQerrorMessage(conn.raw()));
            sql += std::string(" AND src_topic = ") + topic + " AND src_partition = " + std::to_string(scan.partition) +
                   " AND src_offset >= " + std::to_string(scan.from_offset) + " AND src_offset < " +
                   std::to_string(scan.to_offset) + " ORDER BY src_offset";
            PQfreemem(topic);
        } else {
            sql += " ORDER BY event_time, src_partition, src_offset";
        }
        if (!PQsendQuery(conn.raw(), sql.c_str()) || !PQsetSingleRowMode(conn.raw()))
            return status::failure(std::string("reading history: ") + PQerrorMessage(conn.raw()));
        std::vector<value> values(set.fields.size());
        status outcome;
        while (PGresult* raw = PQgetResult(conn.raw())) {
            pg::result_ptr res(raw);
            const auto st = PQresultStatus(raw);
            if (st == PGRES_SINGLE_TUPLE) {
                for (std::size_t i = 0; i < set.fields.size(); ++i) {
                    const int col = static_cast<int>(i) + 2;
                    values[i] = PQgetisnull(raw, 0, col)
                                    ? value{}
                                    : decode_column(set.fields[i].type, PQgetvalue(raw, 0, col), PQgetlength(raw, 0, col));
                }
                const int partition_col = static_cast<int>(set.fields.size()) + 2;
                fn(std::string(PQgetvalue(raw, 0, 0), static_cast<std::size_t>(PQgetlength(raw, 0, 0))),
                   std::atoll(PQgetvalue(raw, 0, 1)), values, static_cast<std::int32_t>(std::atol(PQgetvalue(raw, 0, partition_col))));
            } else if (st != PGRES_TUPLES_OK && outcome.ok()) {
                outcome = status::failure(std::string("reading history: ") + PQresultErrorMessage(raw));
            }
        }
        return outcome;
    }

    result<std::int64_t> last_update_ms() override {
        std::string sql = "SELECT coalesce(max(t), 0) FROM (";
        for (std::size_t i = 0; i < tables_.size(); ++i)
            sql += (i ? " UNION ALL " : "") + std::string("SELECT (extract(epoch from max(updated_at)) * 1000)::bigint AS t FROM ") +
                   tables_[i].latest;
        sql += ") s";
        auto conn = readers_->acquire();
        auto r = conn->exec(sql);
        readers_->release(std::move(conn));
        if (!r) return result<std::int64_t>::failure(r.message());
        return static_cast<std::int64_t>(std::atoll(PQgetvalue(r.value().get(), 0, 0)));
    }

    result<std::vector<partition_offset>> read_offsets(const std::string& group_id) override {
        using R = result<std::vector<partition_offset>>;
        auto conn = readers_->acquire();
        auto r = conn->exec_params("SELECT topic, partition, next_offset FROM " + offsets_ + " WHERE group_id = $1",
                                   {group_id.c_str()});
        readers_->release(std::move(conn));
        if (!r) return R::failure(r.message());
        std::vector<partition_offset> out;
        PGresult* res = r.value().get();
        for (int i = 0; i < PQntuples(res); ++i)
            out.push_back({PQgetvalue(res, i, 0), std::atoi(PQgetvalue(res, i, 1)), std::atoll(PQgetvalue(res, i, 2))});
        return out;
    }

    bool healthy() const override { return healthy_.load(); }

    status ping() override {
        auto r = writer_->exec("SELECT 1");
        if (!r) return fail(r.message());
        return ok();
    }

private:
    struct table {
        std::string history, latest, temp, copy_sql, copy_history_sql, copy_binary_sql, copy_history_binary_sql,
            insert_history_sql, upsert_latest_sql,
            upsert_newest_sql, read_latest_stmt, scan_latest_stmt, history_stmt;
    };

    // A row selected as: event time ms, ingested ms, then one column per latest column (fields,
    // then aggregations); a history row has the fields only (fields_only).
    latest_entry decode_latest(std::uint32_t set_index, PGresult* res, int row, bool fields_only = false) const {
        const auto& columns = columns_[set_index];
        const std::size_t count = fields_only ? cfg_.feature_sets[set_index].fields.size() : columns.size();
        auto cell = [&](field_type t, int col) { return decode_column(t, PQgetvalue(res, row, col), PQgetlength(res, row, col)); };
        latest_entry e;
        e.event_time_ms = std::get<std::int64_t>(cell(field_type::int64, 0));
        e.ingested_at_ms = std::get<std::int64_t>(cell(field_type::int64, 1));
        e.values.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const int col = static_cast<int>(i) + 2;
            if (PQgetisnull(res, row, col))
                e.values.emplace_back();
            else
                e.values.push_back(cell(columns[i].type, col));
        }
        return e;
    }

    status ok() {
        healthy_.store(true);
        return status::success();
    }
    status fail(const std::string& message) {
        healthy_.store(false);
        return status::failure(message);
    }

    // One record as a COPY row: key, event time, fields, ingested_at, source; then the
    // aggregations (the store writer appends them after the fields) when with_aggregations.
    void append_row(std::string& out, const record& r, bool with_aggregations) const {
        const auto& set = cfg_.feature_sets[r.set_index];
        append_copy_text(out, r.key);
        out += '\t';
        out += format_rfc3339_ms(r.event_time_ms);
        for (std::size_t i = 0; i < set.fields.size(); ++i) {
            out += '\t';
            append_copy_value(out, set.fields[i].type, r.values[i]);
        }
        out += '\t';
        out += format_rfc3339_ms(r.ingested_at_ms);
        if (r.source.from_kafka()) {
            out += '\t';
            append_copy_text(out, r.source.topic);
            out += '\t' + std::to_string(r.source.partition) + '\t' + std::to_string(r.source.offset);
        } else if (!r.source.topic.empty()) {  // pushed over HTTP: the source is named, no offset
            out += '\t';
            append_copy_text(out, r.source.topic);
            out += "\t\\N\t\\N";
        } else {
            out += "\t\\N\t\\N\t\\N";
        }
        if (with_aggregations) append_aggregations(out, r);
        out += '\n';
    }

    // The aggregation columns of a row (the store writer appends their values after the fields).
    void append_aggregations(std::string& out, const record& r) const {
        const auto& columns = columns_[r.set_index];
        for (std::size_t i = cfg_.feature_sets[r.set_index].fields.size(); i < columns.size(); ++i) {
            out += '\t';
            if (i < r.values.size())
                append_copy_value(out, columns[i].type, r.values[i]);
            else
                out += "\\N";
        }
    }

    // A batch as COPY text per set: history rows, and the temporary table's rows (with the
    // aggregations). fast: every record for history and only the newest record of each key for
    // the temporary table (latest's upsert); otherwise every record for the temporary table alone.
    struct batch_text {
        std::vector<std::string> history, temp;
        bool binary = false;  // COPY's binary format (the fast path, when every value has its column's type)
    };
    static const std::string& history_copy(const table& t, const batch_text& text) {
        return text.binary ? t.copy_history_binary_sql : t.copy_history_sql;
    }
    static const std::string& temp_copy(const table& t, const batch_text& text) {
        return text.binary ? t.copy_binary_sql : t.copy_sql;
    }
    batch_text format_batch(const write_batch& batch, bool fast) const {
        const std::size_t sets = cfg_.feature_sets.size();
        batch_text text{std::vector<std::string>(sets), std::vector<std::string>(sets)};
        if (!fast) {
            for (const auto& r : batch.records) append_row(text.temp[r.set_index], r, /*with_aggregations=*/true);
            return text;
        }
        std::vector<char> is_newest(batch.records.size(), 0);
        for (const record* r : newest_of_each_key(batch.records)) is_newest[static_cast<std::size_t>(r - batch.records.data())] = 1;
        if (auto binary = format_binary(batch, is_newest)) return std::move(*binary);
        // Each row is formatted once: the newest of its key is copied on for latest, with the
        // aggregations after it.
        for (std::size_t i = 0; i < batch.records.size(); ++i) {
            const record& r = batch.records[i];
            auto& history = text.history[r.set_index];
            const std::size_t start = history.size();
            append_row(history, r, /*with_aggregations=*/false);
            if (!is_newest[i]) continue;
            auto& temp = text.temp[r.set_index];
            temp.append(history, start, history.size() - start - 1);  // without its newline
            append_aggregations(temp, r);
            temp += '\n';
        }
        return text;
    }

    // The fast path's text in COPY's binary format (is_newest marks the newest record of each
    // key); nullopt when a value does not have its column's type or a time is out of
    // timestamptz's range.
    std::optional<batch_text> format_binary(const write_batch& batch, const std::vector<char>& is_newest) const {
        const std::size_t sets = cfg_.feature_sets.size();
        batch_text text{std::vector<std::string>(sets), std::vector<std::string>(sets), /*binary=*/true};
        for (std::size_t i = 0; i < batch.records.size(); ++i) {
            const record& r = batch.records[i];
            auto& history = text.history[r.set_index];
            if (history.empty()) history = copy_binary_header;
            const std::size_t start = history.size();
            if (!append_binary_row(history, r)) return std::nullopt;
            if (!is_newest[i]) continue;
            // The same row for the temporary table, with the aggregations after it.
            auto& temp = text.temp[r.set_index];
            if (temp.empty()) temp = copy_binary_header;
            const std::size_t row = temp.size();
            temp.append(history, start, history.size() - start);
            const auto& columns = columns_[r.set_index];
            const std::size_t fields = cfg_.feature_sets[r.set_index].fields.size();
            std::string count;
            put_be(count, 6 + columns.size(), 2);
            temp.replace(row, 2, count);
            for (std::size_t c = fields; c < columns.size(); ++c) {
                if (c >= r.values.size())
                    put_null(temp);
                else if (!append_binary_value(temp, columns[c].type, r.values[c]))
                    return std::nullopt;
            }
        }
        for (std::size_t i = 0; i < sets; ++i) {
            if (!text.history[i].empty()) put_be(text.history[i], 0xffff, 2);
            if (!text.temp[i].empty()) put_be(text.temp[i], 0xffff, 2);
        }
        return text;
    }

    // One record as a binary COPY row of history: key, event time, fields, ingested_at, source.
    bool append_binary_row(std::string& out, const record& r) const {
        const auto& set = cfg_.feature_sets[r.set_index];
        put_be(out, 6 + set.fields.size(), 2);
        put_text(out, r.key);
        if (!put_timestamptz(out, r.event_time_ms)) return false;
        for (std::size_t i = 0; i < set.fields.size(); ++i) {
            if (!append_binary_value(out, set.fields[i].type, i < r.values.size() ? r.values[i] : value{})) return false;
        }
        if (!put_timestamptz(out, r.ingested_at_ms)) return false;
        if (r.source.topic.empty()) {
            put_null(out);
        } else {
            put_text(out, r.source.topic);
        }
        if (r.source.from_kafka()) {
            put_be(out, 4, 4);
            put_be(out, static_cast<std::uint32_t>(r.source.partition), 4);
            put_be(out, 8, 4);
            put_be(out, static_cast<std::uint64_t>(r.source.offset), 8);
        } else {
            put_null(out);
            put_null(out);
        }
        return true;
    }

    // fast: COPY straight into history, and only the newest record of each key into the temporary
    // table for the latest upsert; a row already in history fails the batch with unique_violation
    // (write() then redoes it safe). Safe: every record into the temporary table, history takes
    // those it does not hold yet (ON CONFLICT DO NOTHING), latest the newest of each key.
    // One transaction on the writer connection.
    status write_once(const write_batch& batch, bool fast) {
        if (auto s = writer_->exec("BEGIN"); !s) return status::failure(s.message());
        const batch_text text = format_batch(batch, fast);
        for (std::size_t i = 0; i < text.temp.size(); ++i) {
            if (text.temp[i].empty()) continue;
            const auto& t = tables_[i];
            if (fast) {
                if (auto s = writer_->copy_in(history_copy(t, text), text.history[i]); !s) return s;
            } else {
                if (auto s = writer_->copy_in(t.copy_sql, text.temp[i]); !s) return s;
                if (auto r = writer_->exec(t.insert_history_sql); !r) return status::failure(r.message());
            }
        }
        if (auto s = upsert_latest(*writer_, text, fast); !s) return s;
        if (auto s = write_dead_letters_and_offsets(batch); !s) return s;
        if (auto r = writer_->exec("COMMIT"); !r) return status::failure(r.message());
        return status::success();
    }

    // The fast path on two connections at once: the latest connection copies the newest rows and
    // upserts latest while the writer connection copies history and writes the dead letters and
    // offsets. Latest commits first, then history with the offsets. A failure before the first
    // commit rolls both back (write() redoes a unique_violation in one transaction). A crash or
    // failure between the two commits leaves latest ahead of history with the offsets not stored:
    // the batch is written again and its upsert changes nothing, since latest only takes a newer
    // event.
    status write_split(const write_batch& batch) {
        const batch_text text = format_batch(batch, /*fast=*/true);
        auto latest = std::async(std::launch::async, [&]() -> status {
            // Latest's commit need not wait for its WAL flush: history's commit right after it
            // flushes the WAL up to its own commit record, which comes later. A crash before that
            // loses at most both (the batch is consumed again) or history alone (latest ahead).
            if (auto r = latest_writer_->exec("BEGIN; SET LOCAL synchronous_commit TO off"); !r)
                return status::failure(r.message());
            return upsert_latest(*latest_writer_, text, /*fast=*/true);
        });
        status history = [&]() -> status {
            if (auto r = writer_->exec("BEGIN"); !r) return status::failure(r.message());
            for (std::size_t i = 0; i < text.history.size(); ++i) {
                if (text.history[i].empty()) continue;
                if (auto s = writer_->copy_in(history_copy(tables_[i], text), text.history[i]); !s) return s;
            }
            return write_dead_letters_and_offsets(batch);
        }();
        status upserted = latest.get();
        if (history && upserted) {
            if (auto r = latest_writer_->exec("COMMIT"); !r) {
                upserted = status::failure(r.message());
            } else {
                if (auto c = writer_->exec("COMMIT"); !c) return status::failure(c.message());
                return status::success();
            }
        }
        if (latest_writer_->connected()) (void)latest_writer_->exec("ROLLBACK");
        // The history side's error first: write() looks at its SQLSTATE for a re-delivery.
        return history ? upserted : history;
    }

    // Latest's upsert from the batch's temporary rows, on `conn`, in its open transaction.
    status upsert_latest(pg::connection& conn, const batch_text& text, bool fast) {
        for (std::size_t i = 0; i < text.temp.size(); ++i) {
            if (text.temp[i].empty()) continue;
            const auto& t = tables_[i];
            if (fast) {
                if (auto s = conn.copy_in(temp_copy(t, text), text.temp[i]); !s) return s;
            }
            if (auto r = conn.exec(fast ? t.upsert_newest_sql : t.upsert_latest_sql); !r)
                return status::failure(r.message());
        }
        return status::success();
    }

    // The batch's dead letters and Kafka offsets, on the writer connection in its transaction.
    status write_dead_letters_and_offsets(const write_batch& batch) {
        for (const auto& d : batch.dead_letters) {
            const std::string partition = std::to_string(d.source.partition);
            const std::string offset = std::to_string(d.source.offset);
            const std::string received = format_rfc3339_ms(d.received_at_ms);
            const bool kafka = d.source.from_kafka();
            std::vector<const char*> values = {cfg_.feature_sets[d.set_index].name.c_str(),
                                               d.source.topic.empty() ? nullptr : d.source.topic.c_str(),
                                               kafka ? partition.c_str() : nullptr,
                                               kafka ? offset.c_str() : nullptr,
                                               d.payload.data(),
                                               d.error.c_str(),
                                               received.c_str()};
            std::vector<int> lengths = {0, 0, 0, 0, static_cast<int>(d.payload.size()), 0, 0};
            std::vector<int> formats = {0, 0, 0, 0, 1, 0, 0};
            auto r = writer_->exec_params("INSERT INTO " + dead_letters_ +
                                              " (feature_set, src_topic, src_partition, src_offset, payload, error,"
                                              " received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                                          values, lengths, formats);
            if (!r) return status::failure(r.message());
        }
        // Every partition's offset in one statement. GREATEST: a revoked owner's last in-flight
        // batch must not move the offset back.
        if (!batch.offsets.empty()) {
            std::string topics = "{", partitions = "{", nexts = "{";
            for (std::size_t i = 0; i < batch.offsets.size(); ++i) {
                const auto& o = batch.offsets[i];
                const char* sep = i ? "," : "";
                topics += sep;
                topics += '"';
                for (char c : o.topic) {
                    if (c == '"' || c == '\\') topics += '\\';
                    topics += c;
                }
                topics += '"';
                partitions += sep + std::to_string(o.partition);
                nexts += sep + std::to_string(o.next_offset);
            }
            topics += '}';
            partitions += '}';
            nexts += '}';
            auto r = writer_->exec_params(
                "INSERT INTO " + offsets_ +
                    " (group_id, topic, partition, next_offset, updated_at) SELECT $1, topic, partition, next_offset, now()"
                    " FROM unnest($2::text[], $3::int[], $4::bigint[]) AS o (topic, partition, next_offset)"
                    " ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset ="
                    " GREATEST(" + offsets_ + ".next_offset, EXCLUDED.next_offset),"
                    " updated_at = now()",
                {cfg_.kafka.group_id.c_str(), topics.c_str(), partitions.c_str(), nexts.c_str()});
            if (!r) return status::failure(r.message());
        }
        return status::success();
    }

    const config& cfg_;
    const postgres_config& pg_;
    std::shared_ptr<spdlog::logger> log_;
    std::vector<table> tables_;
    std::vector<std::vector<latest_column>> columns_;  // per set
    std::vector<std::string> history_select_;          // per set: ", <field columns as selected>"
    std::string dead_letters_, offsets_;
    std::unique_ptr<pg::connection> writer_;
    std::unique_ptr<pg::connection> latest_writer_;  // postgres.parallel_latest
    std::unique_ptr<connection_pool> readers_;
    std::atomic<bool> healthy_{false};
};

}  // namespace

durable_store_ptr make_postgres_store(const config& cfg) { return std::make_unique<postgres_store>(cfg); }

}  // namespace sluice
