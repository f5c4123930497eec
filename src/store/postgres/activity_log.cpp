// The activity log (see sluice/store/activity_log.hpp): its table and append-only trigger, the
// bounded buffer record() fills, the writer thread that empties it in order, the per-minute
// aggregation of auth failures, reads for the admin API and pruning by retention.

#include "sluice/store/activity_log.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "pg_connection.hpp"

#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"

namespace sluice {
namespace {

using steady = std::chrono::steady_clock;

constexpr std::size_t max_batch_rows = 500;        // buffered rows per INSERT
constexpr std::size_t max_summary_clients = 1000;  // distinct client addresses counted per minute
constexpr std::size_t max_summary_reasons = 10;    // distinct reasons named per summary row
constexpr std::int64_t prune_batch_rows = 1000;
constexpr const char* other_clients = "other";
constexpr const char* other_reasons = "(other)";
constexpr auto retry_interval = std::chrono::seconds(1);
constexpr auto prune_interval = std::chrono::hours(1);
constexpr auto prune_pause = std::chrono::milliseconds(200);  // between batches of one prune
constexpr auto prune_retry = std::chrono::minutes(1);         // after a prune that failed
constexpr std::int64_t minute_ms = 60000;

// Text as PostgreSQL takes it: valid UTF-8 (an invalid byte becomes U+FFFD) without NUL bytes. A
// row PostgreSQL refuses would otherwise stop the log behind it forever.
std::string clean_text(std::string_view s) {
    if (std::all_of(s.begin(), s.end(), [](char c) { return c != 0 && static_cast<unsigned char>(c) < 0x80; }))
        return std::string(s);
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) {
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += s[i++];
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0, min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1Fu;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0Fu;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07u;
            min = 0x10000;
        }
        bool ok = len != 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            ok = (d & 0xC0) == 0x80;
            cp = (cp << 6) | (d & 0x3Fu);
        }
        if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
        if (!ok) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        out.append(s.substr(i, len));
        i += len;
    }
    return out;
}

// The detail as jsonb takes it: invalid UTF-8 replaced, and \u0000 (which jsonb refuses) as U+FFFD.
std::string detail_text(const nlohmann::json& detail) {
    if (detail.is_null()) return "{}";
    std::string s = detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    // In a dumped document a backslash only ever starts an escape inside a string.
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && s.compare(i + 2, 4, "0000") == 0) s.replace(i + 2, 4, "fffd");
        ++i;
    }
    return s;
}

// A row ready for the INSERT: cleaned once when recorded, not on every retry.
struct stored_row {
    std::int64_t at_ms = 0;
    std::string actor, action, target, outcome, request_id, client, detail;
};

stored_row to_stored(const activity_event& e) {
    return {e.at_ms,          clean_text(e.actor),      clean_text(e.action), clean_text(e.target),
            clean_text(e.outcome), clean_text(e.request_id), clean_text(e.client), detail_text(e.detail)};
}

stored_row dropped_row(std::uint64_t rows, std::int64_t at_ms) {
    return {at_ms, "system", "activity_dropped", "activity", "dropped", "", "",
            nlohmann::json{{"rows", rows}}.dump()};
}

std::string value_at(PGresult* r, int row, int col) {
    return PQgetisnull(r, row, col) ? std::string() : std::string(PQgetvalue(r, row, col));
}

std::int64_t int_at(PGresult* r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

// epoch ms (a bigint parameter) as timestamptz, exactly.
std::string at_param(std::size_t n) {
    return "timestamptz 'epoch' + $" + std::to_string(n) + "::bigint * interval '1 millisecond'";
}

}  // namespace

// Owned by activity_log. record() and auth_failure() run on any thread and only touch the buffer
// and the minute's counts under mutex_; the writer thread owns writer_conn_; query(), prune_once()
// and prepare() share admin_conn_ under admin_mutex_.
struct activity_log::impl {
    impl(const postgres_config& pg, const activity_config& c)
        : cfg(c), table(pg::quote_ident(pg.schema) + ".activity"), schema(pg::quote_ident(pg.schema)),
          writer_conn(pg.dsn, {"SET statement_timeout = '15s'"}), admin_conn(pg.dsn, {}),
          log(module_logger(log_module::postgres)) {}

    // One buffered row; a gap of dropped rows just before it is written as a row of its own first.
    struct entry {
        stored_row row;
        std::uint64_t seq = 0;
        std::uint64_t dropped_before = 0;
        std::int64_t dropped_at_ms = 0;  // when the first of those was dropped
    };

    // Failures of one client address beyond the minute's allowance.
    struct client_count {
        std::uint64_t count = 0;
        std::map<std::string, std::uint64_t> reasons;
    };

    // What one INSERT carries, and what its commit takes off the buffer.
    struct batch {
        std::vector<stored_row> rows;
        std::size_t entries = 0;
        std::uint64_t last_seq = 0;
        std::uint64_t trailing_gap = 0;  // a gap after the buffer's last row, written at the end
    };

    const activity_config cfg;
    const std::string table, schema;
    pg::connection writer_conn;
    std::mutex admin_mutex;
    pg::connection admin_conn;
    std::shared_ptr<spdlog::logger> log;

    std::mutex mutex;
    std::condition_variable wake;     // the writer: rows arrived, or stop
    std::condition_variable written;  // flush(): a commit
    std::deque<entry> buffer;
    std::uint64_t next_seq = 0, written_seq = 0;
    std::uint64_t gap = 0;            // rows dropped since the buffer's last row
    std::int64_t gap_at_ms = 0;
    std::int64_t minute_start_ms = 0;
    std::int64_t minute_rows = 0;     // auth failures written as rows of their own this minute
    std::map<std::string, client_count> minute_counts;
    activity_figures counts;          // buffered is filled in by figures()
    bool failing = false;             // warned about the outage already
    bool prune_failing = false;
    bool stopping = false;
    steady::time_point stop_deadline;
    steady::time_point next_prune;
    std::thread thread;

    std::size_t capacity() const { return static_cast<std::size_t>(std::max<std::int64_t>(cfg.buffer_rows, 1)); }
    bool drained_locked() const { return buffer.empty() && gap == 0; }

    void record_locked(activity_event e) {
        ++counts.recorded;
        if (e.at_ms == 0) e.at_ms = now_ms();
        if (buffer.size() >= capacity()) {
            ++counts.dropped;
            if (gap++ == 0) gap_at_ms = e.at_ms;
            return;
        }
        buffer.push_back({to_stored(e), ++next_seq, gap, gap_at_ms});
        gap = 0;
        wake.notify_one();
    }

    // Ends the minute of the counts when `now` is in another one (or when forced, at stop): one
    // summary row per client address.
    void roll_minute_locked(std::int64_t now, bool force) {
        const std::int64_t minute = now - ((now % minute_ms) + minute_ms) % minute_ms;
        if (!force && minute == minute_start_ms) return;
        for (auto& [client, c] : minute_counts) {
            nlohmann::json reasons = nlohmann::json::object();
            for (const auto& [reason, n] : c.reasons) reasons[clean_text(reason)] = n;
            activity_event e;
            e.at_ms = now;
            e.actor = "anonymous";
            e.action = "auth_failures";
            e.target = "http";
            e.outcome = "refused";
            e.client = client;
            e.detail = {{"count", c.count}, {"minute", format_rfc3339_ms(minute_start_ms)}, {"reasons", std::move(reasons)}};
            record_locked(std::move(e));
        }
        minute_counts.clear();
        if (minute != minute_start_ms) {
            minute_start_ms = minute;
            minute_rows = 0;
        }
    }

    batch take_batch_locked() {
        batch b;
        b.entries = std::min(buffer.size(), max_batch_rows);
        b.rows.reserve(b.entries + 1);
        for (std::size_t i = 0; i < b.entries; ++i) {
            const entry& en = buffer[i];
            if (en.dropped_before > 0) b.rows.push_back(dropped_row(en.dropped_before, en.dropped_at_ms));
            b.rows.push_back(en.row);
            b.last_seq = en.seq;
        }
        if (b.entries == buffer.size() && gap > 0) {
            b.trailing_gap = gap;
            b.rows.push_back(dropped_row(gap, gap_at_ms));
        }
        return b;
    }

    // After the batch's commit. Rows recorded meanwhile only went to the back; a gap written as
    // the trailing row is no longer owed (it went on growing, or was handed to the next row).
    void commit_locked(const batch& b) {
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(b.entries));
        if (b.entries > 0) written_seq = b.last_seq;
        if (b.trailing_gap > 0) {
            if (!buffer.empty())
                buffer.front().dropped_before -= b.trailing_gap;
            else
                gap -= b.trailing_gap;
        }
        counts.written += b.rows.size();
        written.notify_all();
    }

    status insert(const std::vector<stored_row>& rows) {
        std::string sql = "INSERT INTO " + table + " (at, actor, action, target, outcome, request_id, client, detail) VALUES ";
        std::vector<std::string> values;
        values.reserve(rows.size() * 8);
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const std::size_t n = i * 8;
            sql += i ? ", (" : "(";
            sql += at_param(n + 1);
            for (std::size_t k = 2; k <= 7; ++k) sql += ", $" + std::to_string(n + k);
            sql += ", $" + std::to_string(n + 8) + "::jsonb)";
            const stored_row& r = rows[i];
            values.push_back(std::to_string(r.at_ms));
            for (const std::string* s : {&r.actor, &r.action, &r.target, &r.outcome, &r.request_id, &r.client, &r.detail})
                values.push_back(*s);
        }
        std::vector<const char*> params;
        params.reserve(values.size());
        for (const auto& v : values) params.push_back(v.c_str());
        return writer_conn.exec_params(sql, params).as_status();
    }

    result<std::int64_t> prune(pg::connection& conn, std::int64_t batch_rows) {
        const std::string limit = std::to_string(std::max<std::int64_t>(batch_rows, 1));
        auto r = conn.exec_params("DELETE FROM " + table + " WHERE id IN (SELECT id FROM " + table +
                                      " WHERE at < now() - interval '" + std::to_string(cfg.retention_days) +
                                      " days' ORDER BY id LIMIT $1::bigint)",
                                  {limit.c_str()});
        if (!r) return result<std::int64_t>::failure(r.as_status());
        const std::int64_t n = std::strtoll(PQcmdTuples(r.value().get()), nullptr, 10);
        if (n > 0) {
            std::lock_guard lock(mutex);
            counts.pruned += static_cast<std::uint64_t>(n);
        }
        return n;
    }

    // A statement on the admin connection, once more when the connection had been lost (a server
    // restarted since the last use leaves a connection that fails once).
    template <class F>
    auto on_admin(F&& f) {
        std::lock_guard lock(admin_mutex);
        auto r = f(admin_conn);
        if (!r && !admin_conn.connected()) r = f(admin_conn);
        return r;
    }

    // One step of pruning, when it is due: a batch, then again after a pause until a batch comes
    // back short. Runs on the writer thread without the mutex.
    void prune_step() {
        auto n = prune(writer_conn, prune_batch_rows);
        const auto now = steady::now();
        std::lock_guard lock(mutex);
        if (!n) {
            next_prune = now + prune_retry;
            if (!prune_failing)
                log->warn("activity log: pruning rows older than {} days failed, retrying every minute: {}",
                          cfg.retention_days, n.message());
            prune_failing = true;
            return;
        }
        prune_failing = false;
        next_prune = n.value() == prune_batch_rows ? now + prune_pause : now + prune_interval;
    }

    void run() {
        std::unique_lock lock(mutex);
        next_prune = steady::now();
        for (;;) {
            roll_minute_locked(now_ms(), false);
            if (stopping && (drained_locked() || steady::now() >= stop_deadline)) break;
            if (!buffer.empty() || gap > 0) {
                batch b = take_batch_locked();
                lock.unlock();
                const status s = insert(b.rows);
                lock.lock();
                if (!s) {
                    counts.last_error = s.message();
                    if (!failing)
                        log->warn("activity log: cannot write to PostgreSQL, keeping up to {} rows and retrying"
                                  " every second: {}",
                                  capacity(), s.message());
                    failing = true;
                    // Rows arriving do not shorten the pause; stop() does (for a last attempt).
                    const bool was_stopping = stopping;
                    auto until = steady::now() + retry_interval;
                    if (stopping) until = std::min(until, stop_deadline);
                    wake.wait_until(lock, until, [&] { return stopping != was_stopping; });
                    continue;
                }
                commit_locked(b);
                counts.last_error.clear();
                if (failing) log->info("activity log: writing again ({} rows waiting)", buffer.size());
                failing = false;
            }
            // Between writes too, so that steady traffic does not starve it.
            if (!stopping && steady::now() >= next_prune) {
                lock.unlock();
                prune_step();
                lock.lock();
                continue;
            }
            if (!buffer.empty() || gap > 0) continue;
            // Idle: at least once a second, for the end of the minute.
            const auto until = std::min(steady::now() + std::chrono::seconds(1), next_prune);
            wake.wait_until(lock, until, [&] { return stopping || !buffer.empty() || gap > 0; });
        }
    }

    result<activity_page> query(const activity_query& q) {
        using R = result<activity_page>;
        std::vector<std::string> values, where;
        const auto param = [&](std::string v) {
            values.push_back(std::move(v));
            return values.size();
        };
        if (q.since_ms != 0) where.push_back("at >= " + at_param(param(std::to_string(q.since_ms))));
        if (q.until_ms != 0) where.push_back("at < " + at_param(param(std::to_string(q.until_ms))));
        if (!q.actor.empty()) where.push_back("actor = $" + std::to_string(param(clean_text(q.actor))));
        if (!q.action.empty()) where.push_back("action = $" + std::to_string(param(clean_text(q.action))));
        if (q.before_id > 0) where.push_back("id < $" + std::to_string(param(std::to_string(q.before_id))) + "::bigint");
        const std::int64_t limit = std::clamp<std::int64_t>(q.limit, 1, 1000);
        std::string sql =
            "SELECT id, floor(extract(epoch from at) * 1000)::bigint, actor, action, target, outcome, request_id, client,"
            " detail::text FROM " + table;
        for (std::size_t i = 0; i < where.size(); ++i) sql += (i ? " AND " : " WHERE ") + where[i];
        sql += " ORDER BY id DESC LIMIT " + std::to_string(limit + 1);
        std::vector<const char*> params;
        for (const auto& v : values) params.push_back(v.c_str());
        auto r = on_admin([&](pg::connection& c) { return c.exec_params(sql, params); });
        if (!r) return R::failure(r.as_status());
        PGresult* res = r.value().get();
        activity_page page;
        const int n = std::min<int>(PQntuples(res), static_cast<int>(limit));
        page.rows.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            activity_row row;
            row.id = int_at(res, i, 0);
            row.event.at_ms = int_at(res, i, 1);
            row.event.actor = value_at(res, i, 2);
            row.event.action = value_at(res, i, 3);
            row.event.target = value_at(res, i, 4);
            row.event.outcome = value_at(res, i, 5);
            row.event.request_id = value_at(res, i, 6);
            row.event.client = value_at(res, i, 7);
            row.event.detail = nlohmann::json::parse(value_at(res, i, 8), nullptr, false);
            if (row.event.detail.is_discarded()) row.event.detail = nlohmann::json::object();
            page.rows.push_back(std::move(row));
        }
        if (PQntuples(res) > limit && !page.rows.empty()) page.next_before_id = page.rows.back().id;
        return page;
    }

    status prepare() {
        const std::string days = std::to_string(cfg.retention_days);
        const std::string guard = schema + ".activity_append_only()";
        const std::string ddl[] = {
            // "already exists, skipping" on every start is no news.
            "SET LOCAL client_min_messages = warning",
            "SELECT pg_advisory_xact_lock(hashtext('sluice.schema'))",
            "CREATE SCHEMA IF NOT EXISTS " + schema,
            "CREATE TABLE IF NOT EXISTS " + table +
                " (id bigserial PRIMARY KEY, at timestamptz NOT NULL, actor text NOT NULL, action text NOT NULL,"
                " target text NOT NULL, outcome text NOT NULL, request_id text NOT NULL DEFAULT '',"
                " client text NOT NULL DEFAULT '', detail jsonb NOT NULL DEFAULT '{}')",
            "CREATE INDEX IF NOT EXISTS activity_at ON " + table + " (at)",
            "CREATE INDEX IF NOT EXISTS activity_actor_id ON " + table + " (actor, id)",
            "CREATE INDEX IF NOT EXISTS activity_action_id ON " + table + " (action, id)",
            // The retention is part of the body: made again by every prepare, so it follows the config.
            "CREATE OR REPLACE FUNCTION " + guard +
                " RETURNS trigger LANGUAGE plpgsql AS $guard$\n"
                "BEGIN\n"
                "  IF TG_OP = 'DELETE' THEN\n"
                "    IF OLD.at < now() - interval '" + days + " days' THEN\n"
                "      RETURN OLD;\n"
                "    END IF;\n"
                "    RAISE EXCEPTION 'the activity log is append-only: row % is younger than the retention of " +
                days + " days and cannot be deleted', OLD.id USING ERRCODE = 'insufficient_privilege';\n"
                "  END IF;\n"
                "  RAISE EXCEPTION 'the activity log is append-only: % refused', TG_OP"
                " USING ERRCODE = 'insufficient_privilege';\n"
                "END\n"
                "$guard$",
        };
        // Made when missing only: replacing a trigger would lock the table against the writers.
        const std::pair<const char*, std::string> triggers[] = {
            {"activity_append_only", "BEFORE UPDATE OR DELETE ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + guard},
            {"activity_no_truncate", "BEFORE TRUNCATE ON " + table + " FOR EACH STATEMENT EXECUTE FUNCTION " + guard},
        };
        std::lock_guard lock(admin_mutex);
        pg::connection& c = admin_conn;
        auto begin = c.exec("BEGIN");
        if (!begin && !c.connected()) begin = c.exec("BEGIN");
        if (!begin) return begin.as_status();
        const auto fail = [&](const status& s) {
            (void)c.exec("ROLLBACK");
            return status::failure("creating the activity log: " + s.message(), s.kind());
        };
        for (const auto& sql : ddl)
            if (auto r = c.exec(sql); !r) return fail(r.as_status());
        for (const auto& [name, definition] : triggers) {
            auto exists = c.exec_params("SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2",
                                        {table.c_str(), name});
            if (!exists) return fail(exists.as_status());
            if (PQntuples(exists.value().get()) > 0) continue;
            if (auto r = c.exec(std::string("CREATE TRIGGER ") + name + " " + definition); !r) return fail(r.as_status());
        }
        if (auto r = c.exec("COMMIT"); !r) return r.as_status();
        return status::success();
    }
};

activity_log::activity_log(const postgres_config& pg, const activity_config& cfg)
    : impl_(std::make_unique<impl>(pg, cfg)) {}

activity_log::~activity_log() {
    if (impl_->thread.joinable() && !stop(std::chrono::seconds(2)))
        impl_->log->warn("activity log: {} rows were not written before the end", figures().buffered);
}

status activity_log::prepare() { return impl_->prepare(); }

void activity_log::start() {
    auto& d = *impl_;
    if (d.thread.joinable()) return;
    {
        std::lock_guard lock(d.mutex);
        d.stopping = false;
    }
    d.thread = std::thread([&d] { d.run(); });
}

bool activity_log::stop(std::chrono::milliseconds timeout) {
    auto& d = *impl_;
    std::unique_lock lock(d.mutex);
    // The open minute's counts are written now rather than lost.
    d.roll_minute_locked(now_ms(), true);
    if (!d.thread.joinable()) return d.drained_locked();
    d.stopping = true;
    d.stop_deadline = steady::now() + timeout;
    d.wake.notify_all();
    lock.unlock();
    d.thread.join();
    lock.lock();
    d.stopping = false;
    return d.drained_locked();
}

void activity_log::record(activity_event e) {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    d.record_locked(std::move(e));
}

void activity_log::auth_failure(const std::string& client, const std::string& route, const std::string& reason,
                                const std::string& request_id) {
    auto& d = *impl_;
    const std::int64_t now = now_ms();
    std::lock_guard lock(d.mutex);
    d.roll_minute_locked(now, false);
    if (d.minute_rows < d.cfg.auth_failures_per_minute) {
        ++d.minute_rows;
        activity_event e;
        e.at_ms = now;
        e.actor = "anonymous";
        e.action = "auth_failure";
        e.target = route;
        e.outcome = "refused";
        e.request_id = request_id;
        e.client = client;
        e.detail = {{"reason", reason}};
        d.record_locked(std::move(e));
        return;
    }
    auto it = d.minute_counts.find(client);
    if (it == d.minute_counts.end()) {
        const bool full = d.minute_counts.size() - d.minute_counts.count(other_clients) >= max_summary_clients;
        it = d.minute_counts.try_emplace(full ? other_clients : client).first;
    }
    auto& c = it->second;
    ++c.count;
    auto reason_it = c.reasons.find(reason);
    if (reason_it == c.reasons.end())
        reason_it = c.reasons.try_emplace(c.reasons.size() < max_summary_reasons ? reason : other_reasons).first;
    ++reason_it->second;
}

result<activity_page> activity_log::query(const activity_query& q) { return impl_->query(q); }

result<std::int64_t> activity_log::prune_once(std::int64_t batch) {
    auto& d = *impl_;
    return d.on_admin([&](pg::connection& c) { return d.prune(c, batch); });
}

bool activity_log::flush(std::chrono::milliseconds timeout) {
    auto& d = *impl_;
    std::unique_lock lock(d.mutex);
    const std::uint64_t target = d.next_seq;
    return d.written.wait_for(lock, timeout, [&] {
        // A gap after the last row is owed too: its row is written once the buffer is empty.
        return d.written_seq >= target && !(d.buffer.empty() && d.gap > 0);
    });
}

activity_figures activity_log::figures() const {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    activity_figures f = d.counts;
    f.buffered = d.buffer.size();
    return f;
}

}  // namespace sluice
