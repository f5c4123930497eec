// The registry of definitions (see sluice/store/registry.hpp): its tables, the environment's
// claim on the schema, and the check of a config against both and against the tables.

#include "sluice/store/registry.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "pg_connection.hpp"
#include "sql.hpp"

#include "sluice/config/columns.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"

namespace sluice {
namespace {

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

std::string user_name() {
    if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_name) return pw->pw_name;
    if (const char* u = std::getenv("USER")) return u;
    return "uid " + std::to_string(geteuid());
}

// How information_schema names the column type the store makes for a field type.
const char* catalog_type(field_type t) {
    switch (t) {
        case field_type::int64: return "bigint";
        case field_type::float64: return "double precision";
        case field_type::boolean: return "boolean";
        case field_type::string: return "text";
        case field_type::timestamp: return "timestamp with time zone";
        case field_type::json: return "jsonb";
    }
    return "text";
}

std::string value_at(PGresult* r, int row, int col) {
    return PQgetisnull(r, row, col) ? std::string() : std::string(PQgetvalue(r, row, col));
}

std::int64_t int_at(PGresult* r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

}  // namespace

struct definition_registry::impl {
    explicit impl(const config& c)
        : cfg(c), schema(pg::quote_ident(c.postgres->schema)), conn(c.postgres->dsn, {}),
          log(module_logger(log_module::postgres)) {}

    const config& cfg;
    std::string schema;
    pg::connection conn;
    std::shared_ptr<spdlog::logger> log;

    std::string table(const char* name) const { return schema + "." + name; }

    status ensure_tables() {
        const std::string ddl[] = {
            "CREATE SCHEMA IF NOT EXISTS " + schema,
            "CREATE TABLE IF NOT EXISTS " + table("environment") +
                " (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), environment text NOT NULL,"
                " claimed_at timestamptz NOT NULL DEFAULT now(), host text, os_user text)",
            "CREATE TABLE IF NOT EXISTS " + table("registry") +
                " (feature_set text NOT NULL, version bigint NOT NULL, revision bigint NOT NULL, spec text NOT NULL,"
                " spec_sha256 text NOT NULL, environment text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),"
                " host text, os_user text, config_path text, config_sha256 text, change text,"
                " PRIMARY KEY (feature_set, version, revision))",
            "CREATE TABLE IF NOT EXISTS " + table("registry_versions") +
                " (feature_set text NOT NULL, version bigint NOT NULL, state text NOT NULL,"
                " state_since timestamptz NOT NULL DEFAULT now(), live_since timestamptz,"
                " PRIMARY KEY (feature_set, version))",
        };
        for (const auto& sql : ddl)
            if (auto r = conn.exec(sql); !r) return r.as_status();
        return status::success();
    }

    // Whether the registry's tables exist yet (a read-only plan must not make them).
    result<bool> has_tables() {
        auto r = conn.exec_params("SELECT to_regclass($1) IS NOT NULL", {(cfg.postgres->schema + ".registry_versions").c_str()});
        if (!r) return result<bool>::failure(r.message(), r.kind());
        return std::string(PQgetvalue(r.value().get(), 0, 0)) == "t";
    }

    result<registry_snapshot> read_snapshot() {
        registry_snapshot snap;
        auto exists = has_tables();
        if (!exists) return result<registry_snapshot>::failure(exists.message(), exists.kind());
        if (!exists.value()) return snap;
        auto owner = conn.exec("SELECT environment FROM " + table("environment"));
        if (!owner) return result<registry_snapshot>::failure(owner.message(), owner.kind());
        if (PQntuples(owner.value().get()) > 0) snap.owner = value_at(owner.value().get(), 0, 0);
        auto rows = conn.exec(
            "SELECT DISTINCT ON (r.feature_set, r.version) r.feature_set, r.version, r.revision, r.spec, r.spec_sha256,"
            " coalesce(v.state, 'live'), (extract(epoch from r.recorded_at) * 1000)::bigint,"
            " coalesce((extract(epoch from v.live_since) * 1000)::bigint, 0) FROM " +
            table("registry") + " r LEFT JOIN " + table("registry_versions") +
            " v USING (feature_set, version) ORDER BY r.feature_set, r.version, r.revision DESC");
        if (!rows) return result<registry_snapshot>::failure(rows.message(), rows.kind());
        PGresult* r = rows.value().get();
        for (int i = 0; i < PQntuples(r); ++i) {
            registered_definition d;
            d.set = value_at(r, i, 0);
            d.version = int_at(r, i, 1);
            d.revision = int_at(r, i, 2);
            d.spec = value_at(r, i, 3);
            d.sha256 = value_at(r, i, 4);
            if (!parse_definition_state(value_at(r, i, 5), d.state)) d.state = definition_state::live;
            d.recorded_at_ms = int_at(r, i, 6);
            d.live_since_ms = int_at(r, i, 7);
            snap.definitions.push_back(std::move(d));
        }
        return snap;
    }

    // The tables' columns against the definition of each set new to the registry: a type that
    // differs is breaking.
    status check_columns(definition_plan& plan) {
        auto rows = conn.exec_params(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1",
            {cfg.postgres->schema.c_str()});
        if (!rows) return rows.as_status();
        std::map<std::string, std::map<std::string, std::string>> tables;
        PGresult* r = rows.value().get();
        for (int i = 0; i < PQntuples(r); ++i) tables[value_at(r, i, 0)][value_at(r, i, 1)] = value_at(r, i, 2);
        for (std::size_t s = 0; s < cfg.feature_sets.size(); ++s) {
            const auto& set = cfg.feature_sets[s];
            // A set the registry knows is judged by its recorded spec; the tables speak only for
            // those it has no row for (tables made before the registry existed).
            if (plan.sets[s].action != plan_action::added) continue;
            for (const char* suffix : {"_history", "_latest"}) {
                const auto t = tables.find(set.storage_name() + suffix);
                if (t == tables.end()) continue;
                for (const auto& c : latest_columns(set)) {
                    const auto col = t->second.find(c.name);
                    if (col == t->second.end() || col->second == catalog_type(c.type)) continue;
                    plan.sets[s].changes.push_back({"column " + c.name + " of " + t->first,
                                                    col->second + " -> " + catalog_type(c.type), true,
                                                    "the table holds the old type"});
                }
            }
        }
        return status::success();
    }

    result<definition_plan> make_plan() {
        auto snap = read_snapshot();
        if (!snap) return result<definition_plan>::failure(snap.message(), snap.kind());
        if (!snap.value().owner.empty() && snap.value().owner != cfg.environment)
            return result<definition_plan>::failure(
                "schema " + cfg.postgres->schema + " belongs to environment " + snap.value().owner +
                    "; this config is for environment " + cfg.environment +
                    " (give it a schema of its own, or set \"environment\": \"" + snap.value().owner + "\")",
                error_kind::permanent);
        definition_plan plan = plan_definitions(cfg, snap.value().definitions);
        if (auto s = check_columns(plan); !s) return result<definition_plan>::failure(s.message(), s.kind());
        return plan;
    }
};

definition_registry::definition_registry(const config& cfg) : impl_(std::make_unique<impl>(cfg)) {}
definition_registry::~definition_registry() = default;

result<registry_snapshot> definition_registry::read() {
    auto& d = *impl_;
    if (auto r = d.conn.exec("BEGIN READ ONLY"); !r) return result<registry_snapshot>::failure(r.message(), r.kind());
    auto snap = d.read_snapshot();
    (void)d.conn.exec("ROLLBACK");
    return snap;
}

result<definition_plan> definition_registry::plan() {
    auto& d = *impl_;
    if (auto r = d.conn.exec("BEGIN READ ONLY"); !r) return result<definition_plan>::failure(r.message(), r.kind());
    auto plan = d.make_plan();
    (void)d.conn.exec("ROLLBACK");
    return plan;
}

result<definition_plan> definition_registry::check_before_start() {
    auto& d = *impl_;
    using R = result<definition_plan>;
    const auto fail = [&](const std::string& message, error_kind kind) {
        (void)d.conn.exec("ROLLBACK");
        return R::failure(message, kind);
    };
    if (auto r = d.conn.exec("BEGIN"); !r) return R::failure(r.message(), r.kind());
    // The same lock as the tables' DDL: instances starting together take turns.
    if (auto r = d.conn.exec("SELECT pg_advisory_xact_lock(hashtext('sluice.schema'))"); !r)
        return fail(r.message(), r.kind());
    if (auto s = d.ensure_tables(); !s) return fail("creating the registry: " + s.message(), s.kind());
    auto plan = d.make_plan();
    if (!plan) return fail(plan.message(), plan.kind());
    if (plan.value().breaking()) {
        std::string message = "the config holds breaking changes without a new version:";
        for (const auto& reason : plan.value().breaking_reasons()) message += "\n  " + reason;
        message += "\nraise the set's \"version\" to build it anew from the topic (see `sluice plan`)";
        return fail(message, error_kind::permanent);
    }
    const std::string host = host_name(), user = user_name();
    if (auto r = d.conn.exec_params("INSERT INTO " + d.table("environment") +
                                        " (environment, host, os_user) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                    {d.cfg.environment.c_str(), host.c_str(), user.c_str()});
        !r)
        return fail(r.message(), r.kind());
    if (auto r = d.conn.exec("COMMIT"); !r) return R::failure(r.message(), r.kind());
    return plan;
}

status definition_registry::record(const definition_plan& plan) {
    auto& d = *impl_;
    const std::string host = host_name(), user = user_name();
    if (auto r = d.conn.exec("BEGIN"); !r) return r.as_status();
    const auto fail = [&](const status& s) {
        (void)d.conn.exec("ROLLBACK");
        return s;
    };
    for (const auto& p : plan.sets) {
        const std::string version = std::to_string(p.version);
        if (p.action == plan_action::retired) {
            if (auto s = set_state(p.set, p.version, definition_state::retired); !s) return fail(s);
            continue;
        }
        const int index = [&] {
            for (std::size_t i = 0; i < d.cfg.feature_sets.size(); ++i)
                if (d.cfg.feature_sets[i].name == p.set && d.cfg.feature_sets[i].version == p.version)
                    return static_cast<int>(i);
            return -1;
        }();
        if (index < 0) continue;
        const auto& set = d.cfg.feature_sets[static_cast<std::size_t>(index)];
        if (p.action != plan_action::unchanged) {
            const std::string spec = canonical_spec(set), hash = spec_hash(spec);
            std::string change = to_string(p.action);
            for (const auto& c : p.changes) change += "; " + c.subject + ": " + c.change;
            auto r = d.conn.exec_params(
                "INSERT INTO " + d.table("registry") +
                    " (feature_set, version, revision, spec, spec_sha256, environment, host, os_user, config_path,"
                    " config_sha256, change) SELECT $1, $2, coalesce(max(revision), 0) + 1, $3, $4, $5, $6, $7, $8,"
                    " $9, $10 FROM " + d.table("registry") + " WHERE feature_set = $1 AND version = $2",
                {p.set.c_str(), version.c_str(), spec.c_str(), hash.c_str(), d.cfg.environment.c_str(), host.c_str(),
                 user.c_str(), d.cfg.origin.path.c_str(), d.cfg.origin.sha256.c_str(), change.c_str()});
            if (!r) return fail(r.as_status());
        }
        // A version is built by a backfill in a consumer group of its own before it serves (a new
        // version, or a retired one back: it catches up from where it stopped); version 1 runs in
        // the daemon's group and is live at once. A version's state is otherwise left as it is.
        const bool own_group = p.version != 1;
        std::string sql;
        definition_state state = definition_state::live;
        switch (p.action) {
            case plan_action::new_version:
            case plan_action::added:
            case plan_action::revived:
                state = own_group && p.action != plan_action::added ? definition_state::backfilling : definition_state::live;
                sql = " ON CONFLICT (feature_set, version) DO UPDATE SET state = EXCLUDED.state, state_since = now(),"
                      " live_since = CASE WHEN EXCLUDED.state = 'live' THEN now() ELSE v.live_since END";
                break;
            default: sql = " ON CONFLICT (feature_set, version) DO NOTHING"; break;
        }
        auto r = d.conn.exec_params("INSERT INTO " + d.table("registry_versions") +
                                        " AS v (feature_set, version, state, live_since) VALUES ($1, $2, $3,"
                                        " CASE WHEN $3 = 'live' THEN now() END)" + sql,
                                    {p.set.c_str(), version.c_str(), to_string(state)});
        if (!r) return fail(r.as_status());
    }
    if (auto r = d.conn.exec("COMMIT"); !r) return r.as_status();
    return status::success();
}

status definition_registry::set_state(const std::string& set, std::int64_t version, definition_state state) {
    auto& d = *impl_;
    const std::string v = std::to_string(version);
    auto r = d.conn.exec_params("UPDATE " + d.table("registry_versions") +
                                    " SET state = $3, state_since = now(), live_since = CASE WHEN $3 = 'live' THEN"
                                    " coalesce(live_since, now()) ELSE live_since END"
                                    " WHERE feature_set = $1 AND version = $2 AND state <> $3",
                                {set.c_str(), v.c_str(), to_string(state)});
    if (r) d.log->info("registry: {}@{} is {}", set, version, to_string(state));
    return r.as_status();
}

status definition_registry::drop_version(const std::string& set, std::int64_t version) {
    auto& d = *impl_;
    const std::string v = std::to_string(version);
    if (auto r = d.conn.exec("BEGIN"); !r) return r.as_status();
    const auto fail = [&](const status& s) {
        (void)d.conn.exec("ROLLBACK");
        return s;
    };
    auto state = d.conn.exec_params("SELECT state FROM " + d.table("registry_versions") +
                                        " WHERE feature_set = $1 AND version = $2 FOR UPDATE",
                                    {set.c_str(), v.c_str()});
    if (!state) return fail(state.as_status());
    if (PQntuples(state.value().get()) == 0)
        return fail(status::failure("the registry has no version " + v + " of feature set " + set, error_kind::permanent));
    const std::string now = value_at(state.value().get(), 0, 0);
    if (now != "retired")
        return fail(status::failure(set + "@" + v + " is " + now +
                                        ": only a retired version (one no longer in the config) can be dropped",
                                    error_kind::permanent));
    feature_set_config named;
    named.name = set;
    named.version = version;
    const std::string storage = named.storage_name();
    for (const char* suffix : {"_history", "_latest"})
        if (auto r = d.conn.exec("DROP TABLE IF EXISTS " + d.schema + "." + pg::quote_ident(storage + suffix)); !r)
            return fail(r.as_status());
    // Its consumer group's offsets go too: a version added again later is built anew. (Version 1
    // reads in the daemon's group, from the topic its newest spec names.)
    auto spec = d.conn.exec_params("SELECT spec FROM " + d.table("registry") +
                                       " WHERE feature_set = $1 AND version = $2 ORDER BY revision DESC LIMIT 1",
                                   {set.c_str(), v.c_str()});
    if (!spec) return fail(spec.as_status());
    if (PQntuples(spec.value().get()) > 0) {
        const auto parsed = nlohmann::json::parse(value_at(spec.value().get(), 0, 0), nullptr, false);
        const std::string topic = parsed.is_object() ? parsed.value("topic", "") : "";
        const std::string group = version == 1 ? d.cfg.kafka.group_id : d.cfg.kafka.group_id + "." + storage;
        if (auto r = d.conn.exec_params("DELETE FROM " + d.table("consumer_offsets") + " WHERE group_id = $1 AND topic = $2",
                                        {group.c_str(), topic.c_str()});
            !r)
            return fail(r.as_status());
    }
    if (auto r = d.conn.exec_params("UPDATE " + d.table("registry_versions") +
                                        " SET state = 'dropped', state_since = now() WHERE feature_set = $1 AND version = $2",
                                    {set.c_str(), v.c_str()});
        !r)
        return fail(r.as_status());
    if (auto r = d.conn.exec("COMMIT"); !r) return r.as_status();
    d.log->info("registry: {}@{} dropped", set, version);
    return status::success();
}

result<definition_registry::ingest_counts> definition_registry::counts_since(const feature_set_config& set,
                                                                          std::int64_t window_ms) {
    auto& d = *impl_;
    using R = result<ingest_counts>;
    const std::string since = std::to_string(window_ms);
    const std::string history = d.schema + "." + pg::quote_ident(set.storage_name() + "_history");
    const std::string name = set.display_name();
    auto exists = d.conn.exec_params("SELECT to_regclass($1) IS NOT NULL",
                                     {(d.cfg.postgres->schema + "." + set.storage_name() + "_history").c_str()});
    if (!exists) return R::failure(exists.message(), exists.kind());
    if (std::string(PQgetvalue(exists.value().get(), 0, 0)) != "t")
        return R::failure("no table " + set.storage_name() + "_history in schema " + d.cfg.postgres->schema,
                          error_kind::permanent);
    auto r = d.conn.exec_params("SELECT (SELECT count(*) FROM " + history +
                                    " WHERE ingested_at > now() - make_interval(secs => $1::bigint / 1000.0)),"
                                    " (SELECT count(*) FROM " + d.table("dead_letters") +
                                    " WHERE feature_set = $2 AND received_at > now() - make_interval(secs => $1::bigint / 1000.0))",
                                {since.c_str(), name.c_str()});
    if (!r) return R::failure(r.message(), r.kind());
    ingest_counts c;
    c.records = int_at(r.value().get(), 0, 0);
    c.dead_letters = int_at(r.value().get(), 0, 1);
    return c;
}

}  // namespace sluice
