#pragma once
// The API's resources, one file each; every file adds its routes to the router.

#include "../http/router.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

/// GET /healthz, GET /readyz (public: no API key needed).
void add_health_routes(router& routes, const serve_context& ctx);

/// GET /v1/features/{set}/{key} (scope "read").
void add_feature_routes(router& routes, const serve_context& ctx);

}  // namespace sluice::serve
