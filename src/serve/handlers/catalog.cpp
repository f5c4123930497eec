// The catalog (GET /v1/feature-sets[/{set}]): each set's schema, source, TTL and aggregations,
// with live figures; and GET /metrics, every metric in the Prometheus text format.

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
