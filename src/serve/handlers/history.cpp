// GET /v1/features/{set}/{key}/history?from=&to=&limit=&cursor=: a key's records by event time,
// newest first, in pages. The cursor names the last row of a page (its event time and row id), so
// paging is stable while new rows arrive.

#include <exception>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

constexpr std::size_t default_limit = 100;
constexpr std::size_t max_limit = 10000;
constexpr std::int64_t far_future_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z

std::string encode_cursor(const history_cursor& c) {
    return std::to_string(c.event_time_ms) + "_" + std::to_string(c.id);
}

std::optional<history_cursor> decode_cursor(std::string_view text) {
    const auto sep = text.find('_');
    if (sep == std::string_view::npos) return std::nullopt;
    auto t = parse_non_negative(text.substr(0, sep));
    auto id = parse_non_negative(text.substr(sep + 1));
    if (!t || !id) return std::nullopt;
    return history_cursor{*t, *id};
}

void get_history(const serve_context& ctx, const set_catalog& catalog, const request_context& rc,
                 const responder& respond) {
    const set_view* view = catalog.find(rc.param("set"));
    if (!view) return respond(unknown_set(rc.param("set")));
    history_request req;
    req.set_index = view->index;
    req.key = rc.param("key");
    req.from_ms = 0;
    req.to_ms = far_future_ms;
    req.limit = default_limit;
    if (const std::string* t = rc.query_value("from")) {
        auto v = parse_time(*t);
        if (!v) return respond(bad_request("from must be an RFC 3339 time or epoch milliseconds"));
        req.from_ms = *v;
    }
    if (const std::string* t = rc.query_value("to")) {
        auto v = parse_time(*t);
        if (!v) return respond(bad_request("to must be an RFC 3339 time or epoch milliseconds"));
        req.to_ms = *v;
    }
    if (req.to_ms < req.from_ms) return respond(bad_request("to must not be before from"));
    if (const std::string* l = rc.query_value("limit")) {
        auto v = parse_non_negative(*l);
        if (!v || *v < 1 || *v > static_cast<std::int64_t>(max_limit))
            return respond(bad_request("limit must be an integer from 1 to " + std::to_string(max_limit)));
        req.limit = static_cast<std::size_t>(*v);
    }
    if (const std::string* c = rc.query_value("cursor")) {
        req.after = decode_cursor(*c);
        if (!req.after) return respond(bad_request("cursor is not one this server gave out (use next_cursor as it is)"));
    }
    if (ctx.history == nullptr)
        return respond(error_response(http::status::service_unavailable, "store_unavailable",
                                      "history needs PostgreSQL, which is not configured"));

    const std::string key = req.key;
    std::vector<std::size_t> fields;  // history keeps the fields, not the aggregations
    for (std::size_t i = 0; i < view->columns.size(); ++i)
        if (!view->columns[i].aggregation) fields.push_back(i);
    ctx.history->get_history(std::move(req), [view, key, fields, respond](result<history_page> r) {
        try {
            if (!r.ok())
                return respond(error_response(http::status::service_unavailable, "store_unavailable", r.message()));
            ordered_json records = ordered_json::array();
            for (const auto& e : r.value().records) {
                ordered_json item;
                item["event_time"] = format_rfc3339_ms(e.event_time_ms);
                item["ingested_at"] = format_rfc3339_ms(e.ingested_at_ms);
                item["values"] = render_values(*view, fields, e);
                records.push_back(std::move(item));
            }
            ordered_json body;
            body["feature_set"] = view->set->name;
            body["key"] = key;
            body["records"] = std::move(records);
            body["next_cursor"] = r.value().next ? ordered_json(encode_cursor(*r.value().next)) : ordered_json(nullptr);
            respond(json_response(http::status::ok, body));
        } catch (const std::exception& ex) {
            http_logger()->error("http: rendering history of {}/{} failed: {}", view->set->name, key, ex.what());
            respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
        }
    });
}

}  // namespace

void add_history_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add(http::verb::get, "/v1/features/{set}/{key}/history", "read",
               [ctx, catalog](const request_context& rc, const responder& respond) {
                   get_history(ctx, *catalog, rc, respond);
               });
}

}  // namespace sluice::serve
