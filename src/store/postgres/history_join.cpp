// The point-in-time join of training sets on PostgreSQL, and the cursor that reads entity rows
// from a table or a query. Each runs on a connection of its own for the whole export, so a long
// export never holds one of the readers the live lookups use.
//
// The join sends a chunk of probes as two arrays and lets PostgreSQL walk the (key, event_time)
// index once per probe (LATERAL ... ORDER BY event_time DESC LIMIT 1): measured against a
// sort-merge of the chunk's keys' whole history, see BENCHMARKS.md "Training sets".

#include <algorithm>
#include <optional>
#include <string_view>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pg_connection.hpp"
#include "sluice/config/columns.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/history_join.hpp"
#include "sql.hpp"

namespace sluice {
namespace {

// A text[] literal: every element quoted, '"' and '\' escaped.
void append_array_text(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}

// The statements of one set: the newest row per probe; and, for aggregations, the same with each
// probe's window in one pass: per aggregated field an array of its values, in event time, then
// delivery, order (an aggregation's "last" is the last delivered). One statement per chunk walks each
// probe's key once for both (two statements, two passes over the probes, measured 30 % slower).
struct join_sql {
    std::string newest, newest_known, with_window, with_window_known;
    std::vector<latest_column> fields;
    std::vector<std::size_t> window_fields;  // indexes into fields of the aggregated ones, in array order
};

// A column as the store decodes it (sql.cpp's rule): timestamps as epoch ms, json as text.
std::string selected(const latest_column& c) {
    const auto q = pg::quote_ident(c.name);
    if (c.type == field_type::timestamp) return "(extract(epoch from " + q + ") * 1000)::bigint";
    return q + (c.type == field_type::json ? "::text" : "");
}

join_sql make_join_sql(const feature_set_config& set, const pg::table_sql& t) {
    join_sql j;
    for (auto& c : latest_columns(set))
        if (!c.aggregation) j.fields.push_back(std::move(c));
    for (const auto& a : set.aggregations)
        if (std::find(j.window_fields.begin(), j.window_fields.end(), a.field_index) == j.window_fields.end())
            j.window_fields.push_back(a.field_index);
    const std::string probes = " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS p(key, at, i) ";
    const std::string at = "to_timestamp(p.at / 1000.0)";
    const std::string row = "SELECT (extract(epoch from event_time) * 1000)::bigint AS event_ms,"
                            " (extract(epoch from ingested_at) * 1000)::bigint AS ingested_ms" +
                            t.history_select + " FROM " + t.history + " WHERE key = p.key AND event_time <= " + at;
    const std::string known = " AND ingested_at <= " + at;
    // Among equal event times the first delivered counts, as in latest and as_of.
    const std::string newest_order = " ORDER BY event_time DESC, src_offset ASC NULLS LAST LIMIT 1) h";
    j.newest = "SELECT p.i, h.*" + probes + "CROSS JOIN LATERAL (" + row + newest_order;
    j.newest_known = "SELECT p.i, h.*" + probes + "CROSS JOIN LATERAL (" + row + known + newest_order;
    const std::string order = " ORDER BY event_time, src_offset, id)";
    std::string arrays = "SELECT array_agg((extract(epoch from event_time) * 1000)::bigint" + order;
    for (std::size_t f : j.window_fields) arrays += ", array_agg(" + selected(j.fields[f]) + order;
    arrays += " FROM " + t.history + " WHERE key = p.key AND event_time <= " + at +
              " AND event_time > to_timestamp((p.at - $3::bigint) / 1000.0)";
    auto with_window = [&](const std::string& extra) {
        return "SELECT p.i, h.*, w.*" + probes + "LEFT JOIN LATERAL (" + row + extra + newest_order +
               " ON true LEFT JOIN LATERAL (" + arrays + extra + ") w ON true ORDER BY p.i";
    };
    j.with_window = with_window("");
    j.with_window_known = with_window(known);
    return j;
}

// The elements of a PostgreSQL array's text form ({1,2,NULL}, {"a b",c}), of one dimension:
// nullopt for NULL.
std::vector<std::optional<std::string>> array_elements(std::string_view text) {
    std::vector<std::optional<std::string>> out;
    if (text.size() < 2 || text.front() != '{') return out;
    std::size_t i = 1;
    while (i < text.size() && text[i] != '}') {
        std::string item;
        bool quoted = false;
        if (text[i] == '"') {
            quoted = true;
            for (++i; i < text.size() && text[i] != '"'; ++i) {
                if (text[i] == '\\' && i + 1 < text.size()) ++i;
                item += text[i];
            }
            ++i;  // the closing quote
        } else {
            while (i < text.size() && text[i] != ',' && text[i] != '}') item += text[i++];
        }
        if (!quoted && item == "NULL")
            out.emplace_back(std::nullopt);
        else
            out.emplace_back(std::move(item));
        if (i < text.size() && text[i] == ',') ++i;
    }
    return out;
}

class postgres_history_join final : public history_join {
public:
    postgres_history_join(const config& cfg, const std::string& dsn, std::int64_t timeout_ms)
        : conn_(dsn, {}), timeout_ms_(timeout_ms) {
        const pg::store_sql sql = pg::make_store_sql(cfg);
        for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i)
            sets_.push_back(make_join_sql(cfg.feature_sets[i], sql.tables[i]));
    }

    status open() { return conn_.ensure(); }

    result<std::vector<join_answer>> join(std::uint32_t set_index, const std::vector<join_probe>& probes, bool known_at,
                                          std::int64_t span_ms) override {
        using out_t = result<std::vector<join_answer>>;
        if (set_index >= sets_.size()) return out_t::failure("no such feature set");
        const join_sql& j = sets_[set_index];
        keys_.clear();
        times_.clear();
        keys_ += '{';
        times_ += '{';
        for (std::size_t i = 0; i < probes.size(); ++i) {
            if (i > 0) keys_ += ',', times_ += ',';
            append_array_text(keys_, probes[i].key);
            times_ += std::to_string(probes[i].at_ms);
        }
        keys_ += '}';
        times_ += '}';
        const std::string span = std::to_string(span_ms);

        std::vector<join_answer> out(probes.size());
        if (auto s = begin(); !s) return out_t::failure(s.message(), s.kind());
        auto res = span_ms > 0 ? conn_.exec_params(known_at ? j.with_window_known : j.with_window,
                                                   {keys_.c_str(), times_.c_str(), span.c_str()})
                               : conn_.exec_params(known_at ? j.newest_known : j.newest, {keys_.c_str(), times_.c_str()});
        if (!res) return fail<std::vector<join_answer>>(res.message(), res.kind());
        PGresult* r = res.value().get();
        const int window_col = 3 + static_cast<int>(j.fields.size());  // after p.i, the two times and the fields
        for (int row = 0; row < PQntuples(r); ++row) {
            const std::size_t i = static_cast<std::size_t>(std::atoll(PQgetvalue(r, row, 0))) - 1;
            if (i >= out.size()) continue;
            if (!PQgetisnull(r, row, 1)) {  // a LEFT JOIN without a newest row has NULLs here
                latest_entry e = decode_row(r, row, j);
                e.key = std::string(probes[i].key);
                out[i].newest = std::move(e);
            }
            if (span_ms <= 0 || PQgetisnull(r, row, window_col)) continue;
            const auto times = array_elements(std::string_view(PQgetvalue(r, row, window_col),
                                                               static_cast<std::size_t>(PQgetlength(r, row, window_col))));
            auto& events = out[i].events;
            events.resize(times.size());
            for (std::size_t e = 0; e < times.size(); ++e) {
                events[e].first = times[e] ? std::atoll(times[e]->c_str()) : 0;
                events[e].second.assign(j.fields.size(), value{});
            }
            for (std::size_t w = 0; w < j.window_fields.size(); ++w) {
                const int col = window_col + 1 + static_cast<int>(w);
                const auto values = array_elements(std::string_view(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))));
                const auto& field = j.fields[j.window_fields[w]];
                for (std::size_t e = 0; e < values.size() && e < events.size(); ++e)
                    if (values[e])
                        events[e].second[j.window_fields[w]] =
                            pg::decode_column(field.type, values[e]->c_str(), static_cast<int>(values[e]->size()));
            }
        }
        if (auto s = conn_.exec("COMMIT"); !s) return out_t::failure(s.message(), s.kind());
        return out;
    }

private:
    status begin() {
        if (auto s = conn_.exec("BEGIN READ ONLY"); !s) return status::failure(s.message(), s.kind());
        if (timeout_ms_ > 0)
            if (auto s = conn_.exec("SET LOCAL statement_timeout = " + std::to_string(timeout_ms_)); !s)
                return fail<bool>(s.message(), s.kind()).as_status();
        return status::success();
    }

    // A failure inside the transaction: rolled back (or the connection replaced) before it is told.
    template <class T>
    result<T> fail(const std::string& message, error_kind kind) {
        if (!conn_.exec("ROLLBACK")) conn_.reset();
        return result<T>::failure("reading history for a training set: " + message, kind);
    }

    // A row's (event ms, ingested ms, fields...) after its ordinal.
    static latest_entry decode_row(PGresult* res, int r, const join_sql& j) {
        latest_entry e;
        e.event_time_ms = std::atoll(PQgetvalue(res, r, 1));
        e.ingested_at_ms = std::atoll(PQgetvalue(res, r, 2));
        e.values.reserve(j.fields.size());
        for (std::size_t f = 0; f < j.fields.size(); ++f) {
            const int col = static_cast<int>(f) + 3;
            if (PQgetisnull(res, r, col))
                e.values.emplace_back();
            else
                e.values.push_back(pg::decode_column(j.fields[f].type, PQgetvalue(res, r, col), PQgetlength(res, r, col)));
        }
        return e;
    }

    pg::connection conn_;
    std::int64_t timeout_ms_;
    std::vector<join_sql> sets_;
    std::string keys_, times_;
};

// ---- entity rows from PostgreSQL ----

constexpr int fetch_rows = 10000;

// A cell of PostgreSQL's text output as JSON text, by the column's type OID.
void append_cell(std::string& out, Oid type, const char* text, int len) {
    const std::string_view s(text, static_cast<std::size_t>(len));
    switch (type) {
        case 20: case 21: case 23: case 26: case 700: case 701: case 1700:  // integers, floats, numeric
            if (s == "NaN" || s == "Infinity" || s == "-Infinity") break;
            out += s;
            return;
        case 16:  // bool
            out += s == "t" ? "true" : "false";
            return;
        case 114: case 3802:  // json, jsonb
            out += s;
            return;
        case 1114: case 1184: {  // timestamp, timestamptz (the session's TimeZone is UTC): RFC 3339
            std::string t(s);
            if (t.size() > 10 && t[10] == ' ') t[10] = 'T';
            if (t.size() > 3 && t.compare(t.size() - 3, 3, "+00") == 0) t.resize(t.size() - 3);
            t += 'Z';
            out += '"';
            out += t;
            out += '"';
            return;
        }
        default: break;
    }
    append_json_string(out, s);
}

std::string qualified_table(const std::string& table) {
    std::string out;
    std::size_t start = 0;
    while (true) {
        const auto dot = table.find('.', start);
        if (!out.empty()) out += '.';
        out += pg::quote_ident(table.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return out;
}

class postgres_cursor final : public table_cursor {
public:
    postgres_cursor(const std::string& dsn) : conn_(dsn, {}) {}
    ~postgres_cursor() override {
        if (open_) (void)conn_.exec("ROLLBACK");
    }

    status open(const std::string& query, std::int64_t timeout_ms, std::uint64_t* total) {
        if (auto s = conn_.ensure(); !s) return s;
        for (std::string sql : {std::string("BEGIN READ ONLY"), std::string("SET LOCAL TimeZone = 'UTC'"),
                                "SET LOCAL statement_timeout = " + std::to_string(std::max<std::int64_t>(timeout_ms, 0))})
            if (auto r = conn_.exec(sql); !r) return status::failure(r.message(), r.kind());
        open_ = true;
        if (total != nullptr) {
            auto r = conn_.exec("SELECT count(*) FROM (" + query + ") AS entity_rows");
            if (!r) return status::failure("counting the entity rows: " + r.message(), error_kind::permanent);
            *total = static_cast<std::uint64_t>(std::atoll(PQgetvalue(r.value().get(), 0, 0)));
        }
        if (auto r = conn_.exec("DECLARE sluice_entity_rows NO SCROLL CURSOR FOR " + query); !r)
            return status::failure("reading the entity rows: " + r.message(), error_kind::permanent);
        return fetch();
    }

    const std::vector<std::string>& columns() const override { return columns_; }

    result<bool> next(std::vector<std::string>& cells) override {
        if (batch_ && row_ >= PQntuples(batch_.get())) {
            if (PQntuples(batch_.get()) < fetch_rows) return false;
            if (auto s = fetch(); !s) return result<bool>::failure(s.message(), s.kind());
            if (PQntuples(batch_.get()) == 0) return false;
        }
        PGresult* res = batch_.get();
        const int n = PQnfields(res);
        cells.resize(static_cast<std::size_t>(n));
        for (int c = 0; c < n; ++c) {
            auto& cell = cells[static_cast<std::size_t>(c)];
            cell.clear();
            if (PQgetisnull(res, row_, c))
                cell = "null";
            else
                append_cell(cell, PQftype(res, c), PQgetvalue(res, row_, c), PQgetlength(res, row_, c));
        }
        ++row_;
        return true;
    }

private:
    status fetch() {
        auto r = conn_.exec("FETCH " + std::to_string(fetch_rows) + " FROM sluice_entity_rows");
        if (!r) return status::failure("reading the entity rows: " + r.message(), r.kind());
        batch_ = std::move(r.value());
        row_ = 0;
        if (columns_.empty())
            for (int c = 0; c < PQnfields(batch_.get()); ++c) columns_.emplace_back(PQfname(batch_.get(), c));
        return status::success();
    }

    pg::connection conn_;
    bool open_ = false;
    pg::result_ptr batch_;
    int row_ = 0;
    std::vector<std::string> columns_;
};

}  // namespace

result<std::unique_ptr<history_join>> open_postgres_history_join(const config& cfg, const std::string& dsn,
                                                                 std::int64_t statement_timeout_ms) {
    auto join = std::make_unique<postgres_history_join>(cfg, dsn, statement_timeout_ms);
    if (auto s = join->open(); !s) return result<std::unique_ptr<history_join>>::failure(s.message(), s.kind());
    return std::unique_ptr<history_join>(std::move(join));
}

result<std::unique_ptr<table_cursor>> open_postgres_cursor(const std::string& dsn, const std::string& query,
                                                           const std::string& table, std::int64_t statement_timeout_ms,
                                                           std::uint64_t* total) {
    using out_t = result<std::unique_ptr<table_cursor>>;
    if (query.empty() && table.empty()) return out_t::failure("neither a query nor a table names the entity rows");
    const std::string sql = query.empty() ? "SELECT * FROM " + qualified_table(table) : query;
    auto cursor = std::make_unique<postgres_cursor>(dsn);
    if (auto s = cursor->open(sql, statement_timeout_ms, total); !s) return out_t::failure(s.message(), s.kind());
    return std::unique_ptr<table_cursor>(std::move(cursor));
}

}  // namespace sluice
