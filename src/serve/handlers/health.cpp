#include "handlers.hpp"

namespace sluice::serve {

void add_health_routes(router& routes, const serve_context& ctx) {
    routes.add(http::verb::get, "/healthz", "", [](const request_context&, const responder& respond) {
        respond(json_response(http::status::ok, {{"status", "ok"}}));
    });

    routes.add(http::verb::get, "/readyz", "", [health = ctx.health](const request_context&, const responder& respond) {
        std::vector<std::string> reasons;
        if (health != nullptr) reasons = health->not_ready_reasons();
        if (reasons.empty()) {
            respond(json_response(http::status::ok, {{"status", "ready"}}));
            return;
        }
        ordered_json body;
        body["status"] = "not_ready";
        body["reasons"] = reasons;
        respond(json_response(http::status::service_unavailable, body));
    });
}

}  // namespace sluice::serve
