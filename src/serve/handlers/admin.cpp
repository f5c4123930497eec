// The admin routes (scope "admin"): POST /v1/admin/reload, GET /v1/admin/config and
// GET /v1/admin/activity. Each request to them is itself a row of the activity log (dispatch.cpp).

#include <exception>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

response unavailable(const char* what) {
    return error_response(http::status::service_unavailable, "unavailable", what);
}

void reload(const serve_context& ctx, const request_context& rc, const responder& respond) {
    if (ctx.admin == nullptr) return respond(unavailable("live reload is not available"));
    ctx.admin->reload(rc.api_key_name.empty() ? "anonymous" : rc.api_key_name, rc.request_id,
                      [respond](reload_outcome o) {
                          try {
                              ordered_json body = o.json();
                              if (o.ok()) return respond(json_response(http::status::ok, body));
                              // The usual error envelope, and the whole account beside it.
                              ordered_json refused;
                              refused["error"] = {{"code", "reload_refused"}, {"message", o.reason}};
                              refused["reload"] = std::move(body);
                              respond(json_response(http::status::unprocessable_entity, refused));
                          } catch (const std::exception& e) {
                              http_logger()->error("http: rendering a reload's answer failed: {}", e.what());
                              respond(error_response(http::status::internal_server_error, "internal_error",
                                                     "internal error"));
                          }
                      });
}

void show_config(const serve_context& ctx, const responder& respond) {
    if (ctx.admin == nullptr) return respond(unavailable("the running config is not available"));
    const auto cfg = ctx.admin->running();
    ordered_json body;
    body["path"] = cfg->origin.path;
    body["sha256"] = cfg->origin.sha256;
    body["loaded_at"] = cfg->origin.loaded_at_ms > 0 ? ordered_json(format_rfc3339_ms(cfg->origin.loaded_at_ms))
                                                     : ordered_json(nullptr);
    ordered_json pending = ordered_json::array();
    for (const auto& c : ctx.admin->pending_restart())
        pending.push_back({{"path", c.path}, {"change", c.change}, {"note", c.note}});
    body["pending_restart"] = std::move(pending);
    body["config"] = config_to_json(*cfg);
    respond(json_response(http::status::ok, body));
}

// GET /v1/admin/activity's query string.
result<activity_query> read_query(const request_context& rc) {
    using R = result<activity_query>;
    activity_query q;
    if (const auto* v = rc.query_value("since")) {
        auto t = parse_time(*v);
        if (!t) return R::failure("since: expected RFC 3339 or epoch milliseconds, got '" + *v + "'");
        q.since_ms = *t;
    }
    if (const auto* v = rc.query_value("until")) {
        auto t = parse_time(*v);
        if (!t) return R::failure("until: expected RFC 3339 or epoch milliseconds, got '" + *v + "'");
        q.until_ms = *t;
    }
    if (const auto* v = rc.query_value("limit")) {
        auto n = parse_non_negative(*v);
        if (!n || *n < 1 || *n > 1000) return R::failure("limit: expected 1..1000, got '" + *v + "'");
        q.limit = *n;
    }
    if (const auto* v = rc.query_value("cursor")) {
        auto n = parse_non_negative(*v);
        if (!n || *n < 1) return R::failure("cursor: expected the next_cursor of an earlier answer, got '" + *v + "'");
        q.before_id = *n;
    }
    if (const auto* v = rc.query_value("actor")) q.actor = *v;
    if (const auto* v = rc.query_value("action")) q.action = *v;
    return q;
}

void activity(const serve_context& ctx, const request_context& rc, const responder& respond) {
    if (ctx.activity == nullptr)
        return respond(unavailable("the activity log needs PostgreSQL (no \"postgres\" section in the config)"));
    auto q = read_query(rc);
    if (!q) return respond(bad_request(q.message()));
    off_io_thread(
        ctx,
        [recorder = ctx.activity, q = q.value(), respond] {
            try {
                auto page = recorder->query(q);
                if (!page)
                    return respond(error_response(http::status::service_unavailable, "store_unavailable",
                                                  "reading the activity log: " + page.message()));
                ordered_json events = ordered_json::array();
                for (const auto& row : page.value().rows) {
                    const auto& e = row.event;
                    ordered_json j;
                    j["id"] = row.id;
                    j["at"] = format_rfc3339_ms(e.at_ms);
                    j["actor"] = e.actor;
                    j["action"] = e.action;
                    j["target"] = e.target;
                    j["outcome"] = e.outcome;
                    j["request_id"] = e.request_id;
                    j["client"] = e.client;
                    j["detail"] = e.detail;
                    events.push_back(std::move(j));
                }
                ordered_json body;
                body["events"] = std::move(events);
                const auto& next = page.value().next_before_id;
                body["next_cursor"] = next ? ordered_json(std::to_string(*next)) : ordered_json(nullptr);
                respond(json_response(http::status::ok, body));
            } catch (const std::exception& e) {
                http_logger()->error("http: reading the activity log failed: {}", e.what());
                respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
            }
        },
        respond);
}

}  // namespace

void add_admin_routes(router& routes, const serve_context& ctx) {
    routes.add(http::verb::post, "/v1/admin/reload", "admin",
               [ctx](const request_context& rc, const responder& respond) { reload(ctx, rc, respond); });
    routes.add(http::verb::get, "/v1/admin/config", "admin",
               [ctx](const request_context&, const responder& respond) { show_config(ctx, respond); });
    routes.add(http::verb::get, "/v1/admin/activity", "admin",
               [ctx](const request_context& rc, const responder& respond) { activity(ctx, rc, respond); });
}

}  // namespace sluice::serve
