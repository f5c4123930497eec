#include "handlers.hpp"

namespace sluice::serve {

void add_health_routes(router& routes, const serve_context& ctx) {
    routes.add(http::verb::get, "/healthz", "", [](const request_context&, const responder& respond) {
        respond(json_response(http::status::ok, {{"status", "ok"}}));
    });

    routes.add(http::verb::get, "/readyz", "", [health = ctx.health](const request_context&, const responder& respond) {
        std::vector<std::string> reasons, notes;
        if (health != nullptr) {
            reasons = health->not_ready_reasons();
            notes = health->readiness_notes();
        }
        ordered_json body;
        if (reasons.empty()) {
            body["status"] = "ready";
            if (!notes.empty()) body["notes"] = notes;
            respond(json_response(http::status::ok, body));
            return;
        }
        body["status"] = "not_ready";
        body["reasons"] = reasons;
        if (!notes.empty()) body["notes"] = notes;
        respond(json_response(http::status::service_unavailable, body));
    });
}

}  // namespace sluice::serve
