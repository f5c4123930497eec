// GET / (the status page) and GET /openapi.json (the API's description): files of
// src/serve/assets/ compiled into the binary, served as they are and open to anyone (the page
// asks for an API key itself when the catalog needs one).

#include <spdlog/spdlog.h>

#include "../assets/embedded_assets.hpp"
#include "handlers.hpp"

namespace sluice::serve {

namespace {

// The asset as a response, or 500 if the build left it out (a packaging mistake, not a request's).
response asset_response(std::string_view name, std::string_view content_type, bool no_cache) {
    const std::string_view body = embedded_asset(name);
    if (body.empty()) {
        http_logger()->error("http: the embedded asset '{}' is missing from this build", name);
        return error_response(http::status::internal_server_error, "internal_error", "internal error");
    }
    response res{http::status::ok, 11};
    res.set(http::field::content_type, content_type);
    if (no_cache) res.set(http::field::cache_control, "no-cache");
    res.body().assign(body.data(), body.size());
    return res;
}

}  // namespace

void add_static_routes(router& routes, const serve_context&) {
    routes.add(http::verb::get, "/", "", [](const request_context&, const responder& respond) {
        // no-cache: an upgraded daemon serves its own page at once.
        respond(asset_response("status.html", "text/html; charset=utf-8", /*no_cache=*/true));
    });
    routes.add(http::verb::get, "/openapi.json", "", [](const request_context&, const responder& respond) {
        respond(asset_response("openapi.json", "application/json", /*no_cache=*/false));
    });
}

}  // namespace sluice::serve
