// The quarantine table's review and release (see sluice/store/quarantine.hpp).

#include "sluice/store/quarantine.hpp"

#include <mutex>

#include "pg_connection.hpp"
#include "sluice/core/record.hpp"

namespace sluice {

struct quarantine_table::impl {
    explicit impl(const postgres_config& pg)
        : schema(pg::quote_ident(pg.schema)), conn(pg.dsn, {"SET client_min_messages = warning"}) {}
    std::string schema;
    std::mutex mutex;
    pg::connection conn;
};

quarantine_table::quarantine_table(const postgres_config& pg) : impl_(std::make_unique<impl>(pg)) {}
quarantine_table::~quarantine_table() = default;

result<nlohmann::json> quarantine_table::list(const feature_set_config& set, bool released, std::int64_t limit) {
    using R = result<nlohmann::json>;
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    auto r = d.conn.exec_params(
        "SELECT id, rule, src_topic, src_partition, src_offset, (extract(epoch from quarantined_at) * 1000)::bigint,"
        " convert_from(payload, 'UTF8'), released_by, (extract(epoch from released_at) * 1000)::bigint FROM " +
            d.schema + ".quarantine WHERE feature_set = $1 AND (released_at IS NOT NULL) = $2 ORDER BY id DESC LIMIT $3",
        {set.display_name().c_str(), released ? "true" : "false", std::to_string(limit).c_str()});
    if (!r) return R::failure(r.message());
    nlohmann::json rows = nlohmann::json::array();
    PGresult* p = r.value().get();
    const auto text = [p](int row, int col) -> nlohmann::json {
        return PQgetisnull(p, row, col) ? nlohmann::json(nullptr) : nlohmann::json(PQgetvalue(p, row, col));
    };
    const auto number = [p](int row, int col) -> nlohmann::json {
        return PQgetisnull(p, row, col) ? nlohmann::json(nullptr) : nlohmann::json(std::strtoll(PQgetvalue(p, row, col), nullptr, 10));
    };
    for (int i = 0; i < PQntuples(p); ++i)
        rows.push_back({{"id", number(i, 0)},
                        {"rule", text(i, 1)},
                        {"src_topic", text(i, 2)},
                        {"src_partition", number(i, 3)},
                        {"src_offset", number(i, 4)},
                        {"quarantined_at_ms", number(i, 5)},
                        {"payload", text(i, 6)},
                        {"released_by", text(i, 7)},
                        {"released_at_ms", number(i, 8)}});
    return rows;
}

result<std::vector<std::pair<std::int64_t, std::string>>> quarantine_table::claim(const feature_set_config& set,
                                                                                  const std::vector<std::int64_t>& ids,
                                                                                  const std::string& token,
                                                                                  std::int64_t limit) {
    using R = result<std::vector<std::pair<std::int64_t, std::string>>>;
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    const std::string name = set.display_name();
    // Claims of a release that did not finish (the daemon stopped between the write and the
    // confirmation): released when the record reached history with the quarantine as its source.
    const std::string history = d.schema + "." + pg::quote_ident(set.storage_name() + "_history");
    if (auto r = d.conn.exec_params(
            "UPDATE " + d.schema + ".quarantine q SET released_at = now(), released_by = coalesce(released_by, 'recovered'),"
            " claim = NULL WHERE feature_set = $1 AND released_at IS NULL AND claim IS NOT NULL"
            " AND claimed_at < now() - interval '5 minutes' AND EXISTS (SELECT 1 FROM " + history +
                " h WHERE h.src_topic = $2 || q.id::text)",
            {name.c_str(), std::string(quarantine_topic).c_str()});
        !r)
        return R::failure(r.message());
    if (auto r = d.conn.exec_params("UPDATE " + d.schema + ".quarantine SET claim = NULL, claimed_at = NULL"
                                    " WHERE feature_set = $1 AND released_at IS NULL AND claim IS NOT NULL"
                                    " AND claimed_at < now() - interval '5 minutes'",
                                    {name.c_str()});
        !r)
        return R::failure(r.message());
    std::string id_list = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) id_list += (i ? "," : "") + std::to_string(ids[i]);
    id_list += "}";
    auto r = d.conn.exec_params(
        "UPDATE " + d.schema + ".quarantine SET claim = $2, claimed_at = now() WHERE id IN (SELECT id FROM " + d.schema +
            ".quarantine WHERE feature_set = $1 AND released_at IS NULL AND claim IS NULL"
            " AND (cardinality($3::bigint[]) = 0 OR id = ANY($3::bigint[])) ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, payload",
        {name.c_str(), token.c_str(), id_list.c_str(), std::to_string(limit).c_str()}, {}, {0, 0, 0, 0});
    if (!r) return R::failure(r.message());
    std::vector<std::pair<std::int64_t, std::string>> rows;
    PGresult* p = r.value().get();
    for (int i = 0; i < PQntuples(p); ++i) {
        std::size_t length = 0;
        unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(p, i, 1)), &length);
        rows.emplace_back(std::strtoll(PQgetvalue(p, i, 0), nullptr, 10),
                          bytes ? std::string(reinterpret_cast<const char*>(bytes), length) : std::string());
        PQfreemem(bytes);
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

status quarantine_table::confirm(const std::string& token, const std::string& actor) {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    auto r = d.conn.exec_params("UPDATE " + d.schema +
                                    ".quarantine SET released_at = now(), released_by = $2, claim = NULL WHERE claim = $1",
                                {token.c_str(), actor.c_str()});
    return r ? status::success() : r.as_status();
}

status quarantine_table::unclaim(const std::string& token) {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    auto r = d.conn.exec_params("UPDATE " + d.schema + ".quarantine SET claim = NULL, claimed_at = NULL WHERE claim = $1",
                                {token.c_str()});
    return r ? status::success() : r.as_status();
}

}  // namespace sluice
