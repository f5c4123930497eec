#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connection_pool.hpp"
#include "copy_encoder.hpp"
#include "pg_connection.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/store/postgres_store.hpp"
#include "sql.hpp"

namespace sluice {
namespace {

// A failed result<U> as a failed result<T>, with its message and kind.
template <class T, class U>
result<T> carried(const result<U>& failed) {
    return result<T>::failure(failed.message(), failed.kind());
}

/// The durable store on PostgreSQL: writes batches on the store writer thread (its own
/// connection, and a second one for latest with postgres.parallel_latest), serves reads from a
/// pool of reader connections on the lookup threads, and streams history on a connection of its
/// own. Made by make_postgres_store(); owned by the app, which keeps it past the writer and the
/// readers.
class postgres_store final : public durable_store {
public:
    explicit postgres_store(const config& cfg)
        : cfg_(cfg), pg_(*cfg.postgres), log_(module_logger(log_module::postgres)), sql_(pg::make_store_sql(cfg)),
          encoder_(cfg) {
        for (const auto& set : cfg.feature_sets) columns_.push_back(latest_columns(set));
        writer_ = std::make_unique<pg::connection>(pg_.dsn, sql_.writer_setup);
        // More lanes: batches in flight at once, one connection each (lane 0 is the writer's).
        for (std::int64_t i = 1; i < cfg.pipeline.batches_in_flight; ++i)
            lanes_.push_back(std::make_unique<pg::connection>(pg_.dsn, sql_.writer_setup));
        if (pg_.parallel_latest) latest_writer_ = std::make_unique<pg::connection>(pg_.dsn, sql_.writer_setup);
        readers_ = std::make_unique<pg::connection_pool>(static_cast<std::size_t>(pg_.pool_size), pg_.dsn,
                                                         sql_.reader_setup, health_);
    }

    status prepare() override {
        // Tables must exist before the writer's temp tables can copy their shape.
        pg::connection admin(pg_.dsn, {});
        if (auto r = admin.exec("BEGIN"); !r) return health_.noted(r.as_status());
        for (const auto& sql : sql_.schema_ddl) {
            if (auto r = admin.exec(sql); !r) {
                (void)admin.exec("ROLLBACK");
                return health_.noted(status::failure("creating tables: " + r.message(), r.kind()));
            }
        }
        if (auto r = admin.exec("COMMIT"); !r) return health_.noted(r.as_status());
        log_->info("schema {} ready ({} feature sets)", pg_.schema, cfg_.feature_sets.size());
        return health_.noted(status::success());
    }

    status write(const write_batch& batch) override {
        return write_with_redo(*writer_, batch, [&](bool fast) {
            // Without records there is nothing for latest to do in parallel.
            return fast && latest_writer_ && !batch.records.empty() ? write_split(batch) : write_once(batch, fast);
        });
    }

    std::size_t write_lanes() const override { return 1 + lanes_.size(); }

    status write_in_lane(const write_batch& batch, std::size_t lane, const write_order& order) override {
        pg::connection& conn = lane == 0 ? *writer_ : *lanes_.at(lane - 1);
        return write_with_redo(conn, batch, [&](bool fast) { return write_ordered(conn, batch, fast, order); });
    }

    // Each read leases a reader connection for its statements only: the lease (a temporary, or
    // a block) gives it back before the rows are decoded.

    result<std::optional<latest_entry>> read_latest(std::uint32_t set_index, const std::string& key) override {
        auto r = readers_->acquire().exec_prepared(sql_.tables[set_index].read_latest_stmt, {key.c_str()});
        if (!r) return carried<std::optional<latest_entry>>(r);
        PGresult* res = r.value().get();
        if (PQntuples(res) == 0) return std::optional<latest_entry>{};
        latest_entry e = decode_latest(set_index, res, 0);
        e.key = key;
        return std::optional<latest_entry>{std::move(e)};
    }

    result<std::vector<latest_entry>> scan_latest(std::uint32_t set_index, std::int64_t since_ms,
                                                  const std::string& after_key, std::size_t limit) override {
        const std::string since = std::to_string(since_ms);
        const std::string lim = std::to_string(limit);
        auto r = readers_->acquire().exec_prepared(sql_.tables[set_index].scan_latest_stmt,
                                                   {since.c_str(), after_key.c_str(), lim.c_str()});
        if (!r) return carried<std::vector<latest_entry>>(r);
        PGresult* res = r.value().get();
        const int key_col = static_cast<int>(columns_[set_index].size()) + 2;  // after the times and columns
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
        const std::string at = std::to_string(at_ms);
        const std::string from = std::to_string(at_ms - span_ms);
        const auto& t = sql_.tables[set_index];
        result<pg::result_ptr> newest = result<pg::result_ptr>::failure("not read");
        result<pg::result_ptr> window = result<pg::result_ptr>::failure("not read");
        {
            auto conn = readers_->acquire();
            newest = conn.exec_params(t.as_of_newest_sql, {key.c_str(), at.c_str()});
            if (newest && span_ms > 0) window = conn.exec_params(t.as_of_window_sql, {key.c_str(), at.c_str(), from.c_str()});
        }
        if (!newest) return carried<history_slice>(newest);
        if (span_ms > 0 && !window) return carried<history_slice>(window);
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
        const std::string from = std::to_string(from_ms), to = std::to_string(to_ms),
                          after_time = std::to_string(after_time_ms), after = std::to_string(after_id),
                          lim = std::to_string(limit);
        auto r = readers_->acquire().exec_prepared(
            sql_.tables[set_index].history_stmt,
            {key.c_str(), from.c_str(), to.c_str(), after_time.c_str(), after.c_str(), lim.c_str()});
        if (!r) return carried<std::vector<history_row>>(r);
        PGresult* res = r.value().get();
        const int id_col = static_cast<int>(cfg_.feature_sets[set_index].fields.size()) + 2;  // after the fields
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
        // A connection of its own, rows streamed one at a time (the history can be large).
        pg::connection conn(pg_.dsn, {});
        return health_.noted(stream_history(conn, set_index, scan, fn));
    }

    result<std::int64_t> last_update_ms() override {
        auto r = readers_->acquire().exec(sql_.last_update_sql);
        if (!r) return carried<std::int64_t>(r);
        return static_cast<std::int64_t>(std::atoll(PQgetvalue(r.value().get(), 0, 0)));
    }

    result<std::vector<partition_offset>> read_offsets(const std::string& group_id) override {
        auto r = readers_->acquire().exec_params(sql_.read_offsets_sql, {group_id.c_str()});
        if (!r) return carried<std::vector<partition_offset>>(r);
        std::vector<partition_offset> out;
        PGresult* res = r.value().get();
        for (int i = 0; i < PQntuples(res); ++i)
            out.push_back({PQgetvalue(res, i, 0), std::atoi(PQgetvalue(res, i, 1)), std::atoll(PQgetvalue(res, i, 2))});
        return out;
    }

    bool healthy() const override { return health_.healthy(); }

    // On a reader connection: the writer's connections belong to the threads writing batches.
    status ping() override { return health_.noted(readers_->acquire().exec("SELECT 1").as_status()); }

private:
    // A row selected as: event time ms, ingested ms, then one column per latest column (fields,
    // then aggregations); a history row has the fields only (fields_only).
    latest_entry decode_latest(std::uint32_t set_index, PGresult* res, int row, bool fields_only = false) const {
        const auto& columns = columns_[set_index];
        const std::size_t count = fields_only ? cfg_.feature_sets[set_index].fields.size() : columns.size();
        auto cell = [&](field_type t, int col) { return pg::decode_column(t, PQgetvalue(res, row, col), PQgetlength(res, row, col)); };
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

    // for_each_history's query on conn, in single-row mode.
    status stream_history(pg::connection& conn, std::uint32_t set_index, const history_scan& scan,
                          const history_visitor& fn) {
        const auto& set = cfg_.feature_sets[set_index];
        if (auto s = conn.ensure(); !s) return s;
        std::string topic;
        if (scan.partition >= 0) {
            char* literal = PQescapeLiteral(conn.raw(), scan.topic.c_str(), scan.topic.size());
            if (!literal) return status::failure(std::string("reading history: ") + PQerrorMessage(conn.raw()));
            topic = literal;
            PQfreemem(literal);
        }
        const std::string sql = pg::history_scan_sql(sql_.tables[set_index], scan, topic);
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
                                    : pg::decode_column(set.fields[i].type, PQgetvalue(raw, 0, col), PQgetlength(raw, 0, col));
                }
                const int partition_col = static_cast<int>(set.fields.size()) + 2;
                fn(std::string(PQgetvalue(raw, 0, 0), static_cast<std::size_t>(PQgetlength(raw, 0, 0))),
                   std::atoll(PQgetvalue(raw, 0, 1)), values, static_cast<std::int32_t>(std::atol(PQgetvalue(raw, 0, partition_col))));
            } else if (st != PGRES_TUPLES_OK && outcome.ok()) {
                // Classified like every other statement's failure: by SQLSTATE, retryable when the
                // connection was lost.
                const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
                const bool lost = PQstatus(conn.raw()) != CONNECTION_OK;
                outcome = status::failure(std::string("reading history: ") + PQresultErrorMessage(raw),
                                          lost ? error_kind::retryable : pg::kind_of_sqlstate(state ? state : ""));
            }
        }
        return outcome;
    }

    // One attempt the fast way (attempt(true)); when history holds some of its rows already (a
    // unique violation: only with postgres.history_unique_index), the batch again the safe way,
    // which skips exactly those rows. A failed attempt is rolled back on conn.
    status write_with_redo(pg::connection& conn, const write_batch& batch, const std::function<status(bool fast)>& attempt) {
        auto s = attempt(/*fast=*/true);
        if (!s && conn.connected() && conn.last_sqlstate() == pg::unique_violation) {
            (void)conn.exec("ROLLBACK");
            log_->info("batch of {} records holds rows already in history; writing it again without them",
                       batch.records.size());
            s = attempt(/*fast=*/false);
        }
        if (!s && conn.connected()) (void)conn.exec("ROLLBACK");
        return health_.noted(std::move(s));
    }

    static const std::string& history_copy(const pg::table_sql& t, const pg::batch_copy& copy) {
        return copy.binary ? t.copy_history_binary_sql : t.copy_history_sql;
    }
    static const std::string& temp_copy(const pg::table_sql& t, const pg::batch_copy& copy) {
        return copy.binary ? t.copy_binary_sql : t.copy_sql;
    }

    // fast: COPY straight into history, and only the newest record of each key into the temporary
    // table for the latest upsert; a row already in history fails the batch with unique_violation
    // (write() then redoes it safe). Safe: every record into the temporary table, history takes
    // those it does not hold yet (ON CONFLICT DO NOTHING), latest the newest of each key.
    // One transaction on the writer connection.
    status write_once(const write_batch& batch, bool fast) {
        if (auto r = writer_->exec("BEGIN"); !r) return r.as_status();
        if (auto s = fence_offsets(*writer_, batch); !s) return s;
        const pg::batch_copy copy = encoder_.encode(batch, fast);
        if (auto s = write_history(*writer_, copy, fast); !s) return s;
        if (auto s = upsert_latest(*writer_, copy, fast); !s) return s;
        if (auto s = write_dead_letters(*writer_, batch); !s) return s;
        if (auto r = writer_->exec("COMMIT"); !r) return r.as_status();
        return status::success();
    }

    // One transaction on a lane's connection, with batches before it in flight on other lanes:
    // history's rows and the newest rows of each key are copied at once (they take no lock another
    // batch waits for); latest's upsert, the dead letters and the offsets wait for the batch's
    // turn, so a batch never holds latest rows an earlier one still has to upsert (a wait between
    // the two would be a deadlock PostgreSQL could not see), and its offsets continue from those
    // the earlier batches stored (their row locks keep its commit after theirs).
    status write_ordered(pg::connection& conn, const write_batch& batch, bool fast, const write_order& order) {
        if (auto r = conn.exec("BEGIN"); !r) return r.as_status();
        const pg::batch_copy copy = encoder_.encode(batch, fast);
        if (auto s = write_history(conn, copy, fast); !s) return s;
        if (fast) {
            if (auto s = copy_newest(conn, copy); !s) return s;
        }
        if (!order.turn()) return status::failure("the write was given up while it waited for its turn");
        for (std::size_t i = 0; i < copy.temp.size(); ++i) {
            if (copy.temp[i].empty()) continue;
            const auto& t = sql_.tables[i];
            if (auto r = conn.exec(fast ? t.upsert_newest_sql : t.upsert_latest_sql); !r) return r.as_status();
        }
        if (auto s = write_dead_letters(conn, batch); !s) return s;
        if (auto s = fence_offsets(conn, batch, /*after_earlier_commits=*/true); !s) return s;
        order.passed();
        if (auto r = conn.exec("COMMIT"); !r) return r.as_status();
        return status::success();
    }

    // History's rows: straight in (fast), or through the temporary table, skipping rows history
    // holds already (safe).
    status write_history(pg::connection& conn, const pg::batch_copy& copy, bool fast) {
        for (std::size_t i = 0; i < copy.temp.size(); ++i) {
            if (copy.temp[i].empty()) continue;
            const auto& t = sql_.tables[i];
            if (fast) {
                if (auto s = conn.copy_in(history_copy(t, copy), copy.history[i]); !s) return s;
            } else {
                if (auto s = conn.copy_in(t.copy_sql, copy.temp[i]); !s) return s;
                if (auto r = conn.exec(t.insert_history_sql); !r) return r.as_status();
            }
        }
        return status::success();
    }

    // The fast path's newest rows of each key into the temporary table.
    status copy_newest(pg::connection& conn, const pg::batch_copy& copy) {
        for (std::size_t i = 0; i < copy.temp.size(); ++i) {
            if (copy.temp[i].empty()) continue;
            if (auto s = conn.copy_in(temp_copy(sql_.tables[i], copy), copy.temp[i]); !s) return s;
        }
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
        const pg::batch_copy copy = encoder_.encode(batch, /*fast=*/true);
        auto latest = std::async(std::launch::async, [&]() -> status {
            // Latest's commit need not wait for its WAL flush: history's commit right after it
            // flushes the WAL up to its own commit record, which comes later. A crash before that
            // loses at most both (the batch is consumed again) or history alone (latest ahead).
            if (auto r = latest_writer_->exec("BEGIN; SET LOCAL synchronous_commit TO off"); !r) return r.as_status();
            return upsert_latest(*latest_writer_, copy, /*fast=*/true);
        });
        status history = [&]() -> status {
            if (auto r = writer_->exec("BEGIN"); !r) return r.as_status();
            if (auto s = fence_offsets(*writer_, batch); !s) return s;
            for (std::size_t i = 0; i < copy.history.size(); ++i) {
                if (copy.history[i].empty()) continue;
                if (auto s = writer_->copy_in(history_copy(sql_.tables[i], copy), copy.history[i]); !s) return s;
            }
            return write_dead_letters(*writer_, batch);
        }();
        status upserted = latest.get();
        if (history && upserted) {
            if (auto r = latest_writer_->exec("COMMIT"); !r) {
                upserted = r.as_status();
            } else {
                if (auto c = writer_->exec("COMMIT"); !c) return c.as_status();
                return status::success();
            }
        }
        if (latest_writer_->connected()) (void)latest_writer_->exec("ROLLBACK");
        // The history side's error first: write() looks at its SQLSTATE for a re-delivery.
        return history ? upserted : history;
    }

    // Latest's upsert from the batch's temporary rows, on `conn`, in its open transaction.
    status upsert_latest(pg::connection& conn, const pg::batch_copy& copy, bool fast) {
        for (std::size_t i = 0; i < copy.temp.size(); ++i) {
            if (copy.temp[i].empty()) continue;
            const auto& t = sql_.tables[i];
            if (fast) {
                if (auto s = conn.copy_in(temp_copy(t, copy), copy.temp[i]); !s) return s;
            }
            if (auto r = conn.exec(fast ? t.upsert_newest_sql : t.upsert_latest_sql); !r) return r.as_status();
        }
        return status::success();
    }

    // The batch's Kafka offsets (first in write_once's transaction, last in write_ordered's): a
    // partition another writer moved since this batch's expected offset fails the batch
    // (not_owned), and the row locks taken here order the commits of writers of one partition.
    // after_earlier_commits: first wait for the writers holding the rows (a batch before this one
    // in flight), so the fence compares with what they committed rather than with what this
    // statement's snapshot would show.
    status fence_offsets(pg::connection& conn, const write_batch& batch, bool after_earlier_commits = false) {
        if (batch.offsets.empty()) return status::success();
        std::string topics = "{", partitions = "{", nexts = "{", expected = "{";
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
            expected += sep + std::to_string(o.expected);
        }
        topics += '}';
        partitions += '}';
        nexts += '}';
        expected += '}';
        if (after_earlier_commits) {
            if (auto l = conn.exec_params(sql_.lock_offsets_sql, {cfg_.kafka.group_id.c_str(), topics.c_str(), partitions.c_str()}); !l)
                return l.as_status();
        }
        auto r = conn.exec_params(sql_.fence_offsets_sql, {cfg_.kafka.group_id.c_str(), topics.c_str(),
                                                               partitions.c_str(), nexts.c_str(), expected.c_str()});
        if (!r) return r.as_status();
        const auto moved = std::atoll(PQgetvalue(r.value().get(), 0, 0));
        if (moved == static_cast<long long>(batch.offsets.size())) return status::success();
        return status::failure("fenced: another writer stored offsets of " +
                                   std::to_string(static_cast<long long>(batch.offsets.size()) - moved) + " of the " +
                                   std::to_string(batch.offsets.size()) +
                                   " partitions since this batch was read; it is rolled back",
                               error_kind::not_owned);
    }

    // The batch's dead letters, on the writer connection in its transaction.
    status write_dead_letters(pg::connection& conn, const write_batch& batch) {
        for (const auto& d : batch.dead_letters) {
            const std::string partition = std::to_string(d.source.partition);
            const std::string offset = std::to_string(d.source.offset);
            const std::string received = format_rfc3339_ms(d.received_at_ms);
            const bool kafka = d.source.from_kafka();
            const std::string set_name = cfg_.feature_sets[d.set_index].display_name();
            std::vector<const char*> values = {set_name.c_str(),
                                               d.source.topic.empty() ? nullptr : d.source.topic.c_str(),
                                               kafka ? partition.c_str() : nullptr,
                                               kafka ? offset.c_str() : nullptr,
                                               d.payload.data(),
                                               d.error.c_str(),
                                               received.c_str()};
            std::vector<int> lengths = {0, 0, 0, 0, static_cast<int>(d.payload.size()), 0, 0};
            std::vector<int> formats = {0, 0, 0, 0, 1, 0, 0};
            auto r = conn.exec_params(d.reason == dead_letter_reason::quarantined ? sql_.insert_quarantine_sql
                                                                                 : sql_.insert_dead_letter_sql,
                                      values, lengths, formats);
            if (!r) return r.as_status();
        }
        return status::success();
    }

    const config& cfg_;
    const postgres_config& pg_;
    std::shared_ptr<spdlog::logger> log_;
    const pg::store_sql sql_;
    const pg::copy_encoder encoder_;
    std::vector<std::vector<latest_column>> columns_;  // per set: how a latest row's columns decode
    pg::store_health health_;
    std::unique_ptr<pg::connection> writer_;
    std::unique_ptr<pg::connection> latest_writer_;  // postgres.parallel_latest
    std::vector<std::unique_ptr<pg::connection>> lanes_;  // write lanes 1.. (pipeline.batches_in_flight)
    std::unique_ptr<pg::connection_pool> readers_;   // leases health_: declared after it
};

}  // namespace

durable_store_ptr make_postgres_store(const config& cfg) { return std::make_unique<postgres_store>(cfg); }

}  // namespace sluice
