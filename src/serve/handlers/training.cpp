// POST /v1/training-sets: a point-in-time training set, streamed. Two forms:
//   - the entity rows as the body (Content-Type application/x-ndjson or text/csv), read as they
//     arrive; the request in query parameters: features=s:a,s:b&as_known_at=true&...
//   - a JSON body: {"features": [...], ..., and one of "entity_rows": [{...}, ...] (inline, within
//     the ordinary body limit), "entity_query": "SELECT ..." or "entity_table": "schema.table"}. A
//     query or a table runs as the daemon's PostgreSQL role, so it needs the admin scope.
// The output format: "format" (ndjson | csv), else the Accept header, else NDJSON.

#include <string>

#include "common.hpp"
#include "handlers.hpp"

namespace sluice::serve {

namespace {

std::optional<bool> flag(std::string_view v) {
    if (v == "true" || v == "1" || v.empty()) return true;
    if (v == "false" || v == "0") return false;
    return std::nullopt;
}

// The request of the streamed form, from the query parameters.
result<training_request> request_from_query(const request_context& rc, table_format output) {
    using out_t = result<training_request>;
    training_request r;
    r.output = output;
    for (const auto& [name, v] : rc.query) {
        if (name == "features" || name == "feature") {
            std::size_t start = 0;
            while (start <= v.size()) {
                const auto comma = v.find(',', start);
                const std::string f = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                if (!f.empty()) r.features.push_back(f);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        } else if (name == "full_feature_names" || name == "as_known_at" || name == "statuses") {
            const auto b = flag(v);
            if (!b) return out_t::failure("query parameter " + name + " must be true or false", error_kind::permanent);
            (name == "full_feature_names" ? r.full_feature_names : name == "as_known_at" ? r.as_known_at : r.statuses) = *b;
        } else if (name == "timestamp_column") {
            if (v.empty()) return out_t::failure("query parameter timestamp_column is empty", error_kind::permanent);
            r.timestamp_column = v;
        } else if (name == "format") {
            const auto f = table_format_from(v);
            if (!f) return out_t::failure("query parameter format must be ndjson or csv", error_kind::permanent);
            r.output = *f;
        } else {
            return out_t::failure("unknown query parameter \"" + name + "\"", error_kind::permanent);
        }
    }
    if (r.features.empty())
        return out_t::failure("name the features: ?features=set:field,set:aggregation", error_kind::permanent);
    return r;
}

void training_set(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
                  const std::shared_ptr<answer_stream>& out) {
    if (ctx.training == nullptr)
        return out->refuse(503, "unavailable", "training sets are read from history, and PostgreSQL is not configured");
    // The output format: the query's or the body's "format", else Accept.
    table_format output = table_format::ndjson;
    if (auto accept = rc.req[http::field::accept]; accept.find("text/csv") != std::string_view::npos)
        output = table_format::csv;
    const auto body_type = table_format_from(rc.req[http::field::content_type]);

    training_request request;
    training_input input;
    if (body_type) {
        auto r = request_from_query(rc, output);
        if (!r) return out->refuse(400, "bad_request", r.message());
        request = std::move(r.value());
        input.from = training_input::kind::body;
        input.format = *body_type;
    } else {
        if (auto bad = check_content_type(rc.req, {"application/json"}))
            return out->refuse(415, "unsupported_media_type",
                               "send the entity rows as application/x-ndjson or text/csv (the request in query "
                               "parameters), or a JSON request (application/json)");
        const auto doc = nlohmann::json::parse(rc.req.body(), nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) return out->refuse(400, "bad_request", "the body is not valid JSON");
        auto r = training_request_from_json(doc, output);
        if (!r) return out->refuse(400, "bad_request", r.message());
        request = std::move(r.value());
        const int sources = int(doc.contains("entity_rows")) + int(doc.contains("entity_query")) +
                            int(doc.contains("entity_table"));
        if (sources != 1)
            return out->refuse(400, "bad_request",
                               "give the entity rows as exactly one of \"entity_rows\", \"entity_query\", \"entity_table\"");
        if (doc.contains("entity_rows")) {
            const auto& rows = doc["entity_rows"];
            if (!rows.is_array()) return out->refuse(400, "bad_request", "\"entity_rows\" must be an array of objects");
            input.from = training_input::kind::inline_rows;
            input.format = table_format::ndjson;
            for (const auto& row : rows) {
                if (!row.is_object())
                    return out->refuse(400, "bad_request", "\"entity_rows\" must be an array of objects");
                input.text += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                input.text += '\n';
            }
        } else {
            const bool query = doc.contains("entity_query");
            const auto& v = doc[query ? "entity_query" : "entity_table"];
            if (!v.is_string() || v.get_ref<const std::string&>().empty())
                return out->refuse(400, "bad_request", std::string("\"") + (query ? "entity_query" : "entity_table") +
                                                           "\" must be a non-empty string");
            if (rc.has_scope && !rc.has_scope("admin"))
                return out->refuse(403, "forbidden",
                                   "entity rows from a PostgreSQL query or table need a key with the admin scope (they "
                                   "run as the daemon's role); send the rows in the body instead");
            input.from = query ? training_input::kind::query : training_input::kind::table;
            input.text = v.get<std::string>();
        }
    }
    auto plan = plan_training_set(*ctx.cfg, request, [&](std::string_view name) {
        const set_view* v = catalog.find(name);
        return v == nullptr ? -1 : static_cast<int>(v->index);
    });
    if (!plan) return out->refuse(400, "bad_request", plan.message());
    ctx.training->start(std::make_shared<const config>(*ctx.cfg), std::move(plan.value()), std::move(input), out,
                        rc.api_key_name.empty() ? std::string("anonymous") : rc.api_key_name, rc.request_id);
}

}  // namespace

void add_training_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add_streamed(http::verb::post, "/v1/training-sets", "read",
                        [ctx, catalog](const request_context& rc, std::shared_ptr<answer_stream> out) {
                            training_set(ctx, *catalog, rc, out);
                        });
}

}  // namespace sluice::serve
