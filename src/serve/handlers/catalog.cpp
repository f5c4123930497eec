// The catalog (GET /v1/feature-sets[/{set}]): each set's schema, source, TTL and aggregations,
// with live figures; and GET /metrics, every metric in the Prometheus text format.

#include <exception>

#include <spdlog/spdlog.h>

#include "common.hpp"
#include "handlers.hpp"
#include "sluice/core/clock.hpp"

namespace sluice::serve {

namespace {

ordered_json time_or_null(std::int64_t ms) { return ms >= 0 ? ordered_json(format_rfc3339_ms(ms)) : ordered_json(nullptr); }

ordered_json registered(const registered_definition& d) {
    ordered_json out;
    out["version"] = d.version;
    out["state"] = to_string(d.state);
    out["revision"] = d.revision;
    out["spec_sha256"] = d.sha256;
    out["recorded_at"] = time_or_null(d.recorded_at_ms);
    out["live_since"] = d.live_since_ms > 0 ? ordered_json(format_rfc3339_ms(d.live_since_ms)) : ordered_json(nullptr);
    return out;
}

// What the registry knows of the set: this version's revision and hash, and every version of it
// that still exists.
void describe_definition(const serve_context& ctx, const set_view& v, ordered_json& out) {
    const feature_set_config& s = *v.set;
    out["version"] = s.version;
    out["address"] = s.versioned_name();
    // Whether the bare name reads this version now.
    out["serving"] = !ctx.versions || v.index >= ctx.versions->size() ||
                     ctx.versions->resolve(s.name) == static_cast<int>(v.index);
    if (!ctx.definitions) return;
    if (const auto b = ctx.definitions->backfill(v.index)) {
        ordered_json bj;
        bj["state"] = to_string(b->state);
        bj["done"] = b->done;
        bj["to_do"] = b->to_do;
        bj["rate"] = b->rate;
        bj["eta_s"] = b->eta_s >= 0 ? ordered_json(b->eta_s) : ordered_json(nullptr);
        out["backfill"] = std::move(bj);
    }
    ordered_json versions = ordered_json::array();
    for (const auto& d : ctx.definitions->definitions()) {
        if (d.set != s.name) continue;
        if (d.version == s.version) out["definition"] = registered(d);
        if (d.state != definition_state::dropped) versions.push_back(registered(d));
    }
    out["versions"] = std::move(versions);
}

ordered_json describe(const serve_context& ctx, const set_view& v) {
    const feature_set_config& s = *v.set;
    ordered_json out;
    out["name"] = s.name;
    describe_definition(ctx, v, out);
    out["topic"] = s.topic;
    out["key"] = s.key_field;
    out["event_time"] = s.event_time_field;
    out["ttl_ms"] = s.ttl_ms;
    ordered_json fields = ordered_json::array();
    for (const auto& f : s.fields) {
        ordered_json fj;
        fj["name"] = f.name;
        fj["type"] = to_string(f.type);
        fj["required"] = f.required;
        fields.push_back(std::move(fj));
    }
    out["fields"] = std::move(fields);
    ordered_json aggs = ordered_json::array();
    for (const auto& a : s.aggregations) {
        ordered_json aj;
        aj["name"] = a.name;
        aj["field"] = a.field;
        aj["op"] = to_string(a.op);
        aj["window_ms"] = a.window_ms;
        aggs.push_back(std::move(aj));
    }
    out["aggregations"] = std::move(aggs);
    ordered_json figures;
    if (ctx.metrics) {
        const feature_set_figures f = ctx.metrics->figures(v.index);
        figures["records_in"] = f.records_in;
        figures["rejected"] = f.rejected;
        figures["skipped"] = f.skipped;
        figures["last_event_time"] = time_or_null(f.last_event_time_ms);
        figures["last_write_at"] = time_or_null(f.last_write_ms);
        figures["consumer_lag"] = f.consumer_lag >= 0 ? ordered_json(f.consumer_lag) : ordered_json(nullptr);
        figures["freshness_ms"] =
            f.last_event_time_ms >= 0 ? ordered_json(now_ms() - f.last_event_time_ms) : ordered_json(nullptr);
    }
    out["figures"] = std::move(figures);
    return out;
}

// GET /v1/feature-sets/{set}/quality: the windows and expectations, and the gate over [from, to)
// (default: the last hour), which reads PostgreSQL on a lookup thread.
void quality(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    const set_view* v = catalog.find(rc.param("set"));
    if (!v) return respond(unknown_set(rc.param("set")));
    if (ctx.quality == nullptr)
        return respond(error_response(http::status::service_unavailable, "quality_unavailable",
                                      "data quality is off (quality.enabled is false)"));
    if (ctx.versions != nullptr && v->index >= ctx.versions->size())
        return respond(error_response(http::status::service_unavailable, "quality_unavailable",
                                      "feature set " + v->set->name + " was added by a live reload: its quality is "
                                      "watched from the next start"));
    const std::int64_t now = now_ms();
    std::int64_t from = now - 3600 * 1000, to = now + 1;
    if (const auto* f = rc.query_value("from")) {
        auto t = parse_time(*f);
        if (!t) return respond(bad_request("from: expected RFC 3339 or epoch milliseconds, got '" + *f + "'"));
        from = *t;
    }
    if (const auto* t = rc.query_value("to")) {
        auto parsed = parse_time(*t);
        if (!parsed) return respond(bad_request("to: expected RFC 3339 or epoch milliseconds, got '" + *t + "'"));
        to = *parsed;
    }
    auto work = [monitor = ctx.quality, index = v->index, from, to, respond] {
        try {
            ordered_json body = monitor->report(index, from, to);
            auto g = monitor->gate(index, from, to);
            ordered_json gate;
            gate["from"] = format_rfc3339_ms(from);
            gate["to"] = format_rfc3339_ms(to);
            if (g) {
                gate["passed"] = g.value().passed;
                gate["windows"] = g.value().windows;
                gate["failures"] = g.value().failures;
            } else {
                gate["passed"] = nullptr;
                gate["error"] = g.message();
            }
            body["gate"] = std::move(gate);
            respond(json_response(http::status::ok, body));
        } catch (const std::exception& e) {
            http_logger()->error("http: the quality report failed: {}", e.what());
            respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
        }
    };
    off_io_thread(ctx, std::move(work), respond);
}

response no_quarantine() {
    return error_response(http::status::service_unavailable, "quarantine_unavailable",
                          "the quarantine needs PostgreSQL (no \"postgres\" section in the config)");
}

// GET /v1/admin/quarantine/{set}[?released=true&limit=N]: the rows held for review.
void held(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    const set_view* v = catalog.find(rc.param("set"));
    if (!v) return respond(unknown_set(rc.param("set")));
    if (ctx.quarantine == nullptr) return respond(no_quarantine());
    std::int64_t limit = 100;
    if (const auto* l = rc.query_value("limit")) {
        auto n = parse_non_negative(*l);
        if (!n || *n < 1 || *n > 1000) return respond(bad_request("limit: expected 1..1000, got '" + *l + "'"));
        limit = *n;
    }
    const auto* r = rc.query_value("released");
    const bool released = r && *r == "true";
    auto work = [q = ctx.quarantine, index = v->index, name = v->set->display_name(), released, limit, respond] {
        auto rows = q->held(index, released, limit);
        if (!rows)
            return respond(error_response(http::status::service_unavailable, "store_unavailable",
                                          "reading the quarantine: " + rows.message()));
        ordered_json body;
        body["feature_set"] = name;
        body["released"] = released;
        body["rows"] = ordered_json::parse(rows.value().dump());
        respond(json_response(http::status::ok, body));
    };
    off_io_thread(ctx, std::move(work), respond);
}

// POST /v1/admin/quarantine/{set}/release {"ids": [...]} (or {} for every held row, up to 1000).
void release(const serve_context& ctx, const set_catalog& catalog, const request_context& rc, const responder& respond) {
    if (auto bad = check_content_type(rc.req, {"application/json"})) return respond(std::move(*bad));
    const set_view* v = catalog.find(rc.param("set"));
    if (!v) return respond(unknown_set(rc.param("set")));
    if (ctx.quarantine == nullptr) return respond(no_quarantine());
    std::vector<std::int64_t> ids;
    if (!rc.req.body().empty()) {
        const auto doc = nlohmann::json::parse(rc.req.body(), nullptr, false);
        if (!doc.is_object()) return respond(bad_request("the body must be a JSON object: {\"ids\": [1, 2]} or {}"));
        if (doc.contains("ids")) {
            if (!doc["ids"].is_array() || doc["ids"].empty() || doc["ids"].size() > 1000)
                return respond(bad_request("ids: expected a list of 1..1000 quarantine row ids"));
            for (const auto& id : doc["ids"]) {
                if (!id.is_number_integer() || id.get<std::int64_t>() < 1)
                    return respond(bad_request("ids: expected row ids (positive integers), got " + id.dump()));
                ids.push_back(id.get<std::int64_t>());
            }
        }
    }
    ctx.quarantine->release(v->index, std::move(ids), rc.api_key_name.empty() ? "anonymous" : rc.api_key_name,
                            [respond](result<nlohmann::json> r) {
                                if (!r)
                                    return respond(error_response(http::status::service_unavailable, "store_unavailable",
                                                                  r.message()));
                                respond(json_response(http::status::ok, ordered_json::parse(r.value().dump())));
                            });
}

}  // namespace

void add_catalog_routes(router& routes, const serve_context& ctx, const std::shared_ptr<const set_catalog>& catalog) {
    routes.add(http::verb::get, "/v1/feature-sets", "admin",
               [ctx, catalog](const request_context&, const responder& respond) {
                   ordered_json body;
                   body["server_time"] = format_rfc3339_ms(now_ms());
                   body["environment"] = ctx.cfg->environment;
                   if (ctx.admin != nullptr) {
                       // The config running now: what the status page shows beside the environment.
                       const auto running = ctx.admin->running();
                       body["config"] = {{"path", running->origin.path},
                                         {"sha256", running->origin.sha256},
                                         {"loaded_at", running->origin.loaded_at_ms > 0
                                                           ? ordered_json(format_rfc3339_ms(running->origin.loaded_at_ms))
                                                           : ordered_json(nullptr)},
                                         {"pending_restart", ctx.admin->pending_restart().size()}};
                   }
                   ordered_json sets = ordered_json::array();
                   for (const auto& v : catalog->sets()) sets.push_back(describe(ctx, v));
                   body["feature_sets"] = std::move(sets);
                   respond(json_response(http::status::ok, body));
               });
    routes.add(http::verb::get, "/v1/feature-sets/{set}", "admin",
               [ctx, catalog](const request_context& rc, const responder& respond) {
                   const set_view* v = catalog->find(rc.param("set"));
                   if (!v) return respond(unknown_set(rc.param("set")));
                   ordered_json body = describe(ctx, *v);
                   body["environment"] = ctx.cfg->environment;
                   respond(json_response(http::status::ok, body));
               });
    routes.add(http::verb::get, "/v1/feature-sets/{set}/quality", "admin",
               [ctx, catalog](const request_context& rc, const responder& respond) { quality(ctx, *catalog, rc, respond); });
    routes.add(http::verb::get, "/v1/admin/quarantine/{set}", "admin",
               [ctx, catalog](const request_context& rc, const responder& respond) { held(ctx, *catalog, rc, respond); });
    routes.add(http::verb::post, "/v1/admin/quarantine/{set}/release", "admin",
               [ctx, catalog](const request_context& rc, const responder& respond) { release(ctx, *catalog, rc, respond); });
    routes.add(http::verb::get, "/metrics", "admin", [ctx](const request_context&, const responder& respond) {
        if (!ctx.metrics)
            return respond(error_response(http::status::service_unavailable, "metrics_unavailable",
                                          "metrics are not collected"));
        response res{http::status::ok, 11};
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = ctx.metrics->render_metrics();
        respond(std::move(res));
    });
}

}  // namespace sluice::serve
