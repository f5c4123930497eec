// POST /get-online-features: the request and response shapes of Feast's feature server, so a
// Feast client (or code written against it) can read from Sluice unchanged.
//
//   {"features": ["set:field", ...], "entities": {"user_id": [v1, v2, ...]}, "full_feature_names"?: bool}
// → {"metadata": {"feature_names": ["user_id", "field", ...]},
//    "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}
//
// One result per name of feature_names (the entity column first), each with one value per entity
// row. Statuses: PRESENT, NOT_FOUND (no record for the key), NULL_VALUE (a record, but this value
// is null), OUTSIDE_MAX_AGE (the record is older than the set's TTL; its value is null). Several
// feature sets are joined on the one entity column: each is read with the entity values as keys.

#include <atomic>
#include <exception>
#include <mutex>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

constexpr const char* epoch_zero = "1970-01-01T00:00:00Z";

struct wanted_set {
    const set_view* view = nullptr;
    std::vector<std::size_t> columns;       // columns asked for, in request order
    std::vector<std::size_t> result_slots;  // where each goes among the results (after the entity)
};

// The state of one request while its feature sets are read (maybe on several threads).
struct feast_query {
    std::vector<wanted_set> sets;
    std::vector<std::string> keys;
    nlohmann::json entity_values;  // as the client sent them, echoed in the entity column
    ordered_json names;
    std::vector<std::vector<result<std::optional<latest_entry>>>> answers;  // per set
    std::atomic<std::size_t> left{0};
    responder respond;
};

// The answer is written straight into the body: a tree of ordered_json nodes (three arrays per
// feature, one node per value) cost more than the rest of the request together at 250 features.
void answer(feast_query& q) {
    try {
        const std::size_t rows = q.keys.size();
        const std::int64_t now = now_ms();
        // Per set and entity row, once: the entry, its event time as text, whether it is past the TTL.
        struct row_state {
            const latest_entry* entry = nullptr;
            std::string time = epoch_zero;
            bool expired = false;
        };
        std::vector<std::vector<row_state>> state(q.sets.size(), std::vector<row_state>(rows));
        for (std::size_t s = 0; s < q.sets.size(); ++s) {
            const auto ttl = q.sets[s].view->set->ttl_ms;
            for (std::size_t r = 0; r < rows; ++r) {
                const auto& a = q.answers[s][r];
                if (!a.ok())
                    return q.respond(error_response(http::status::service_unavailable, "store_unavailable", a.message()));
                if (!a.value()) continue;
                row_state& st = state[s][r];
                st.entry = &*a.value();
                st.time = format_rfc3339_ms(st.entry->event_time_ms);
                st.expired = ttl > 0 && now - st.entry->event_time_ms > ttl;
            }
        }
        // Which (set, column) fills each result after the entity column.
        std::vector<std::pair<std::size_t, std::size_t>> source(q.names.size());
        for (std::size_t s = 0; s < q.sets.size(); ++s)
            for (std::size_t c = 0; c < q.sets[s].columns.size(); ++c) source[q.sets[s].result_slots[c]] = {s, c};

        const auto list = [&](std::string& out, auto&& item) {
            out += '[';
            for (std::size_t r = 0; r < rows; ++r) {
                if (r) out += ',';
                item(r);
            }
            out += ']';
        };
        std::string out;
        out.reserve(64 + q.names.size() * (64 + rows * 48));
        out += "{\"metadata\":{\"feature_names\":";
        out += dump_json(q.names);
        out += "},\"results\":[{\"values\":";
        out += q.entity_values.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out += ",\"statuses\":";
        list(out, [&](std::size_t) { out += "\"PRESENT\""; });
        out += ",\"event_timestamps\":";
        list(out, [&](std::size_t) { out.append("\"").append(epoch_zero).append("\""); });
        out += '}';
        for (std::size_t slot = 1; slot < source.size(); ++slot) {
            const auto [s, c] = source[slot];
            const wanted_set& w = q.sets[s];
            const std::size_t col = w.columns[c];
            const auto& rs = state[s];
            const auto status = [&](std::size_t r) -> const char* {
                const row_state& st = rs[r];
                if (!st.entry) return "NOT_FOUND";
                if (st.expired) return "OUTSIDE_MAX_AGE";
                if (col >= st.entry->values.size() || std::holds_alternative<std::monostate>(st.entry->values[col]))
                    return "NULL_VALUE";
                return "PRESENT";
            };
            out += ",{\"values\":";
            list(out, [&](std::size_t r) {
                if (status(r)[0] != 'P') out += "null";
                else out += dump_json(render_value(w.view->columns[col].type, rs[r].entry->values[col]));
            });
            out += ",\"statuses\":";
            list(out, [&](std::size_t r) { out.append("\"").append(status(r)).append("\""); });
            out += ",\"event_timestamps\":";
            list(out, [&](std::size_t r) { out.append("\"").append(rs[r].time).append("\""); });
            out += '}';
        }
        out += "]}";
        response res{http::status::ok, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = std::move(out);
        q.respond(std::move(res));
    } catch (const std::exception& ex) {
        http_logger()->error("http: rendering a Feast answer failed: {}", ex.what());
        q.respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
    }
}

void get_online_features(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
                         const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    const auto body = nlohmann::json::parse(rc.req.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) return respond(bad_request("the body must be a JSON object"));
    if (body.contains("feature_service"))
        return respond(bad_request("feature services are not supported; list the features as \"set:field\""));
    const auto features = body.find("features");
    if (features == body.end() || !features->is_array() || features->empty())
        return respond(bad_request("\"features\" must be a non-empty array of \"feature_set:field\" names"));
    const auto entities = body.find("entities");
    if (entities == body.end() || !entities->is_object() || entities->size() != 1)
        return respond(bad_request("\"entities\" must be an object with exactly one entity column, "
                                   "e.g. {\"user_id\": [\"u1\", \"u2\"]}"));
    const std::string entity_name = entities->begin().key();
    const nlohmann::json& entity_values = entities->begin().value();
    if (!entity_values.is_array()) return respond(bad_request("the entity column must be an array of keys"));
    const auto max_rows = static_cast<std::size_t>(ctx.cfg->http.max_lookup_keys);
    if (entity_values.size() > max_rows)
        return respond(error_response(http::status::bad_request, "too_many_keys",
                                      std::to_string(entity_values.size()) + " entity rows; at most " +
                                          std::to_string(max_rows) + " per request (http.max_lookup_keys)"));
    bool full_names = false;
    if (auto f = body.find("full_feature_names"); f != body.end()) {
        if (!f->is_boolean()) return respond(bad_request("\"full_feature_names\" must be true or false"));
        full_names = f->get<bool>();
    }

    auto q = std::make_shared<feast_query>();
    for (const auto& v : entity_values) {
        if (v.is_string())
            q->keys.push_back(v.get<std::string>());
        else if (v.is_number_integer())
            q->keys.push_back(v.dump());
        else
            return respond(bad_request("entity values must be strings or integers"));
    }
    q->entity_values = entity_values;
    q->names.push_back(entity_name);
    std::unordered_set<std::string> seen_names{entity_name};
    std::size_t slot = 1;
    for (const auto& f : *features) {
        if (!f.is_string()) return respond(bad_request("every feature must be a \"feature_set:field\" string"));
        const std::string ref = f.get<std::string>();
        const auto colon = ref.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == ref.size())
            return respond(bad_request("feature '" + ref + "' is not of the form \"feature_set:field\""));
        const std::string set_name = ref.substr(0, colon), field = ref.substr(colon + 1);
        const set_view* view = catalog.find(set_name);
        if (!view) return respond(unknown_set(set_name));
        auto col = view->column_of.find(field);
        if (col == view->column_of.end())
            return respond(error_response(http::status::bad_request, "unknown_field",
                                          "feature set '" + set_name + "' has no field '" + field + "'"));
        const std::string name = full_names ? set_name + "__" + field : field;
        if (!seen_names.insert(name).second)
            return respond(bad_request("feature name '" + name + "' appears twice; ask for it once, or set "
                                       "\"full_feature_names\": true to tell feature sets apart"));
        q->names.push_back(name);
        wanted_set* w = nullptr;
        for (auto& s : q->sets)
            if (s.view == view) w = &s;
        if (!w) {
            q->sets.push_back({view, {}, {}});
            w = &q->sets.back();
        }
        w->columns.push_back(col->second);
        w->result_slots.push_back(slot++);
    }
    if (ctx.reader == nullptr)
        return respond(error_response(http::status::service_unavailable, "store_unavailable", "no feature store is configured"));

    q->respond = respond;
    q->answers.resize(q->sets.size());
    q->left.store(q->sets.size());
    for (std::size_t s = 0; s < q->sets.size(); ++s) {
        ctx.reader->get_latest_many(q->sets[s].view->index, q->keys, std::nullopt,
                                    [q, s](std::vector<result<std::optional<latest_entry>>> a) {
                                        q->answers[s] = std::move(a);
                                        if (q->left.fetch_sub(1, std::memory_order_acq_rel) == 1) answer(*q);
                                    });
    }
}

}  // namespace

void add_feast_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add(http::verb::post, "/get-online-features", "read",
               [ctx, catalog](const request_context& rc, const responder& respond) {
                   get_online_features(ctx, *catalog, rc, respond);
               });
}

}  // namespace sluice::serve
